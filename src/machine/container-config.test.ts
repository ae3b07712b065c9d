import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  expandEnvArgs,
  resolveProcessConfig,
  parseMemory,
  parseCpus,
  parseEnvFile,
  mergeEnv,
  type ImageDefaults,
} from './container-config.ts';
import { isBosonError } from '../common/index.ts';

const image: ImageDefaults = {
  entrypoint: ['/entry'],
  cmd: ['default'],
  env: ['PATH=/bin', 'A=image'],
  workingDir: '/app',
  user: 'nobody',
};

test('image defaults apply when the user gives nothing', () => {
  const c = resolveProcessConfig(image, { args: [], env: [] }, 'abc');
  assert.deepEqual(c.argv, ['/entry', 'default']);
  assert.equal(c.cwd, '/app');
  assert.equal(c.user, 'nobody');
  assert.deepEqual(c.env, ['PATH=/bin', 'A=image', 'HOSTNAME=abc']);
});

test('arguments replace Cmd, --entrypoint replaces Entrypoint and drops Cmd', () => {
  assert.deepEqual(resolveProcessConfig(image, { args: ['x'], env: [] }, 'h').argv, ['/entry', 'x']);
  assert.deepEqual(resolveProcessConfig(image, { args: [], entrypoint: ['sh'], env: [] }, 'h').argv, ['sh']);
  assert.deepEqual(resolveProcessConfig(image, { args: ['ls'], entrypoint: [], env: [] }, 'h').argv, ['ls']);
  assert.throws(
    () => resolveProcessConfig({ ...image, entrypoint: null, cmd: null }, { args: [], env: [] }, 'h'),
    (e) => isBosonError(e, 'INVALID_ARGUMENT'),
  );
});

test('user env overrides image env; KEY alone comes from the host or is dropped', () => {
  const c = resolveProcessConfig(
    image,
    { args: [], env: ['A=user', ...expandEnvArgs(['FROMHOST'], { FROMHOST: 'h v' }), 'MISSING', 'B=x=y'] },
    'h',
  );
  assert.deepEqual(c.env, ['PATH=/bin', 'A=user', 'HOSTNAME=h', 'FROMHOST=h v', 'B=x=y']);
  assert.deepEqual(mergeEnv(['PATH=/a'], []), ['PATH=/a']);
});

test('bad workdir, user and hostname are refused', () => {
  assert.throws(
    () => resolveProcessConfig(image, { args: [], env: [], cwd: 'rel' }, 'h'),
    (e) => isBosonError(e, 'INVALID_ARGUMENT'),
  );
  assert.throws(
    () => resolveProcessConfig(image, { args: [], env: [], user: 'a b' }, 'h'),
    (e) => isBosonError(e, 'INVALID_ARGUMENT'),
  );
  assert.throws(
    () => resolveProcessConfig(image, { args: [], env: [], hostname: '-bad' }, 'h'),
    (e) => isBosonError(e, 'INVALID_ARGUMENT'),
  );
  assert.throws(
    () => resolveProcessConfig(image, { args: [], env: ['=x'] }, 'h'),
    (e) => isBosonError(e, 'INVALID_ARGUMENT'),
  );
});

test('env files follow Docker: comments, blanks, host lookups', () => {
  assert.deepEqual(parseEnvFile('# c\n\nA=1\n  B=two words\nHOSTONLY\n', { HOSTONLY: 'yes' }), ['A=1', 'B=two words', 'HOSTONLY=yes']);
  assert.throws(
    () => parseEnvFile('=oops\n', {}),
    (e) => isBosonError(e, 'INVALID_ARGUMENT'),
  );
});

test('memory and cpus parse with units and limits', () => {
  assert.equal(parseMemory('512m'), 512);
  assert.equal(parseMemory('1g'), 1024);
  assert.equal(parseMemory('1GiB'), 1024);
  assert.equal(parseMemory(String(128 * 1024 * 1024)), 128);
  for (const bad of ['lots', '10m', '-1g', ''])
    assert.throws(
      () => parseMemory(bad),
      (e) => isBosonError(e, 'INVALID_ARGUMENT'),
    );
  assert.equal(parseCpus('1.5', 2), 2);
  for (const bad of ['0', 'x', '3'])
    assert.throws(
      () => parseCpus(bad, 2),
      (e) => isBosonError(e, 'INVALID_ARGUMENT'),
    );
});
