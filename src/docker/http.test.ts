/** The Docker API's request parsing: versions in the path, filters, query flags, JSON bodies. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DockerError } from './errors.ts';
import { API_VERSION, flag, parseFilters, parseJsonObject, splitVersion } from './http.ts';

const isBadRequest = (pattern: RegExp) => (err: unknown) => err instanceof DockerError && err.status === 400 && pattern.test(err.message);

test('the /vX.Y prefix: split off, or the current version for a bare path; out of range is 400', () => {
  assert.deepEqual(splitVersion('/v1.41/containers/json'), { version: '1.41', path: '/containers/json' });
  assert.deepEqual(splitVersion('/containers/json'), { version: API_VERSION, path: '/containers/json' });
  assert.deepEqual(splitVersion('/v1.24/_ping'), { version: '1.24', path: '/_ping' });
  assert.throws(() => splitVersion('/v9.99/info'), isBadRequest(/client version 9\.99 is too new\. Maximum supported API version is/));
  assert.throws(
    () => splitVersion('/v1.12/info'),
    isBadRequest(/client version 1\.12 is too old\. Minimum supported API version is 1\.24/),
  );
});

test("filters: both of Docker's JSON shapes; unknown keys and malformed JSON are 400", () => {
  const q = (filters: unknown): URLSearchParams =>
    new URLSearchParams({ filters: typeof filters === 'string' ? filters : JSON.stringify(filters) });
  const allowed = ['status', 'label'];
  assert.deepEqual([...parseFilters(new URLSearchParams(), allowed)], []);
  assert.deepEqual([...parseFilters(q({ status: ['running', 'exited'] }), allowed)], [['status', ['running', 'exited']]]);
  assert.deepEqual([...parseFilters(q({ label: { 'a=b': true, c: false } }), allowed)], [['label', ['a=b']]]);
  assert.deepEqual([...parseFilters(q({ status: 'running' }), allowed)], [['status', ['running']]]);
  assert.throws(() => parseFilters(q({ colour: ['red'] }), allowed), isBadRequest(/^invalid filter 'colour'$/));
  assert.throws(() => parseFilters(q('{'), allowed), isBadRequest(/^invalid filter: \{$/));
  assert.throws(() => parseFilters(q('[1]'), allowed), isBadRequest(/^invalid filter/));
});

test('query flags as Docker reads them', () => {
  const q = new URLSearchParams('a=1&b=true&c=True&d=0&e=false&f=');
  assert.deepEqual(
    ['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((k) => flag(q, k)),
    [true, true, true, false, false, false, false],
  );
  assert.equal(flag(q, 'f', true), true, 'empty means the default');
  assert.equal(flag(q, 'g', true), true);
});

test('JSON bodies: empty and null are {}, anything but an object is 400', () => {
  assert.deepEqual(parseJsonObject(Buffer.from('')), {});
  assert.deepEqual(parseJsonObject(Buffer.from(' null ')), {});
  assert.deepEqual(parseJsonObject(Buffer.from('{"a":1}')), { a: 1 });
  assert.throws(() => parseJsonObject(Buffer.from('{')), isBadRequest(/^invalid JSON: /));
  assert.throws(() => parseJsonObject(Buffer.from('[1]')), isBadRequest(/the body must be a JSON object/));
  assert.throws(() => parseJsonObject(Buffer.from('"x"')), isBadRequest(/the body must be a JSON object/));
});
