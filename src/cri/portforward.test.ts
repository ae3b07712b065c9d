import { test } from 'node:test';
import assert from 'node:assert/strict';
import { queryPorts } from './portforward.ts';

test("a port-forward URL's ports: repeated or comma-separated `port` parameters, each from 1 to 65535", () => {
  assert.deepEqual(queryPorts('/portforward/abc?port=80&port=8080'), [80, 8080]);
  assert.deepEqual(queryPorts('/portforward/abc?port=80,443'), [80, 443]);
  assert.deepEqual(queryPorts('/portforward/abc'), []);
  for (const bad of ['0', '65536', 'http', '-1', '8.5']) assert.equal(queryPorts(`/portforward/abc?port=${bad}`), 'invalid', bad);
});
