/**
 * Where `boson controller --etcd` and `boson controller migrate --to-etcd` put the state: URLs from the flag take
 * the prefix and TLS files of the settings also when BOSON_CONTROLLER_ETCD is unset (they were dropped before), the
 * flags win over the settings, and a malformed URL names the flag it came from.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBosonError } from '../../common/index.ts';
import { etcdRequest } from './controller.ts';

const files = { prefix: 'fleet/', caFile: '/etc/boson/etcd-ca.pem', certFile: '/etc/boson/etcd.pem', keyFile: '/etc/boson/etcd-key.pem' };

test('etcdRequest: flag URLs keep the settings’ prefix and TLS files; flags win; errors name the flag', () => {
  assert.equal(etcdRequest({}, undefined, files), undefined, 'no URLs anywhere: SQLite');
  assert.deepEqual(etcdRequest({ etcd: 'https://etcd1:2379' }, undefined, files), { ...files, endpoints: ['https://etcd1:2379'] });
  assert.deepEqual(etcdRequest({ etcd: 'https://etcd1:2379', etcdPrefix: 'other/' }, undefined, files), {
    ...files,
    endpoints: ['https://etcd1:2379'],
    prefix: 'other/',
  });
  const setting = { ...files, endpoints: ['https://etcd0:2379'] };
  assert.deepEqual(etcdRequest({}, setting, files), setting);
  assert.deepEqual(etcdRequest({ etcd: 'https://etcd1:2379,https://etcd2:2379' }, setting, files)!.endpoints, [
    'https://etcd1:2379',
    'https://etcd2:2379',
  ]);
  assert.throws(
    () => etcdRequest({ etcd: 'etcd1:2379' }, undefined, files, '--to-etcd'),
    (err) => isBosonError(err, 'INVALID_ARGUMENT') && /^--to-etcd: "etcd1:2379" is not an etcd client URL/.test((err as Error).message),
  );
  assert.throws(
    () => etcdRequest({ etcdPrefix: 'x/' }, undefined, files),
    (err) => isBosonError(err, 'USAGE'),
  );
});
