import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normaliseReference, parseReference, referenceCandidates } from './reference.ts';
import { rejectsWith } from './test-support.ts';

test('normaliseReference: local-only rules', () => {
  const cases: [string, string][] = [
    ['busybox', 'localhost/busybox:latest'],
    ['busybox:1.36', 'localhost/busybox:1.36'],
    ['ns/app', 'localhost/ns/app:latest'],
    ['localhost/busybox', 'localhost/busybox:latest'],
    ['quay.io/ns/app', 'quay.io/ns/app:latest'],
    ['registry:5000/ns/app:v2', 'registry:5000/ns/app:v2'],
    ['docker.io/library/alpine:3', 'docker.io/library/alpine:3'],
    [`app@sha256:${'a'.repeat(64)}`, `localhost/app@sha256:${'a'.repeat(64)}`],
    [`app:1@sha256:${'b'.repeat(64)}`, `localhost/app:1@sha256:${'b'.repeat(64)}`],
  ];
  for (const [input, want] of cases) {
    assert.equal(normaliseReference(input), want, input);
    assert.equal(normaliseReference(want), want, `idempotent for ${want}`);
  }
});

test('parseReference splits registry, path, tag and digest', () => {
  assert.deepEqual(parseReference('host.example:443/a/b:t'), { domain: 'host.example:443', path: 'a/b', tag: 't', digest: null });
  assert.deepEqual(parseReference('a/b'), { domain: null, path: 'a/b', tag: null, digest: null });
});

test('malformed references are INVALID_ARGUMENT', async () => {
  for (const bad of ['', 'UPPER', 'a:', 'a//b', 'a@sha256:123', ':tag', 'a b', 'a:t@@x', '-x']) {
    await rejectsWith((async () => normaliseReference(bad))(), 'INVALID_ARGUMENT');
  }
});

test('referenceCandidates: bare names try localhost first, then Docker Hub spelling', () => {
  assert.deepEqual(referenceCandidates('busybox'), ['localhost/busybox:latest', 'docker.io/library/busybox:latest']);
  assert.deepEqual(referenceCandidates('ns/app:2'), ['localhost/ns/app:2', 'docker.io/ns/app:2']);
  assert.deepEqual(referenceCandidates('quay.io/x/y'), ['quay.io/x/y:latest']);
});
