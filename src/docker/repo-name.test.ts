import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeDockerRepo } from './repo-name.ts';

test('normalizeDockerRepo qualifies names the way Docker does, and leaves qualified ones alone', () => {
  assert.equal(normalizeDockerRepo('other'), 'docker.io/library/other');
  assert.equal(normalizeDockerRepo('mine/box'), 'docker.io/mine/box');
  assert.equal(normalizeDockerRepo('docker.io/mine/box'), 'docker.io/mine/box');
  assert.equal(normalizeDockerRepo('localhost/busybox'), 'localhost/busybox');
  assert.equal(normalizeDockerRepo('127.0.0.1:5000/tools/box'), '127.0.0.1:5000/tools/box');
  assert.equal(normalizeDockerRepo('registry.example.com/a/b/c'), 'registry.example.com/a/b/c');
  assert.equal(normalizeDockerRepo('host:5000/x'), 'host:5000/x');
});
