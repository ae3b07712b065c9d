/**
 * Error translation at the Docker edge: every catalogue code gets the Docker status of its kind (the one table in
 * src/common), and the codes the CLI branches on get Docker's own wording.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BosonError, ERROR_CATALOGUE, KIND_TRANSLATION, type ErrorCode } from '../common/index.ts';
import { badRequest, DockerError, dockerErrorOf, notSupported } from './errors.ts';

test('every catalogue code is answered with the Docker status of its kind', () => {
  // Refined where Docker answers otherwise: start failures are its "failed to create task" (400), whatever their
  // kind, and an exec into a paused container is its 409.
  const refined: Partial<Record<ErrorCode, number>> = {
    COMMAND_NOT_FOUND: 400,
    COMMAND_NOT_EXECUTABLE: 400,
    CONTAINER_USER_UNKNOWN: 400,
    CONTAINER_START_FAILED: 400,
    CONTAINER_PAUSED_DISK_FULL: 409,
  };
  for (const code of Object.keys(ERROR_CATALOGUE) as ErrorCode[]) {
    const { status, message } = dockerErrorOf(new BosonError(code, `boom ${code}`));
    const want = refined[code] ?? KIND_TRANSLATION[ERROR_CATALOGUE[code].kind].docker;
    assert.equal(status, want, code);
    assert.match(message, new RegExp(`boom ${code}`), code);
  }
});

test("Docker's wording for what the CLI and SDKs read", () => {
  const cases: Array<[BosonError, number, string]> = [
    [new BosonError('CONTAINER_NOT_FOUND', 'no such container: web'), 404, 'No such container: web'],
    [new BosonError('IMAGE_NOT_FOUND', 'no such image: x', { details: { reference: 'alpine:3' } }), 404, 'No such image: alpine:3'],
    [new BosonError('IMAGE_NOT_FOUND', 'no such image: alpine:3'), 404, 'No such image: alpine:3'],
    [new BosonError('EXEC_NOT_FOUND', 'no such exec instance: abc'), 404, 'No such exec instance: abc'],
    [new BosonError('VOLUME_NOT_FOUND', 'no such volume: data'), 404, 'get data: no such volume'],
    [
      new BosonError('CONTAINER_NAME_IN_USE', 'the name "web" is in use'),
      409,
      'Conflict. the name "web" is in use. You have to remove (or rename) that container to be able to reuse that name.',
    ],
    [
      new BosonError('COMMAND_NOT_FOUND', 'exec: "nope": No such file or directory'),
      400,
      'failed to create task for container: exec: "nope": no such file or directory',
    ],
    [
      new BosonError('COMMAND_NOT_EXECUTABLE', '/etc/passwd: Permission denied'),
      400,
      'failed to create task for container: /etc/passwd: permission denied',
    ],
    [new BosonError('USAGE', 'bad flag'), 400, 'bad flag'],
    [new BosonError('CONTAINER_PAUSED_DISK_FULL', 'paused'), 409, 'paused'],
    [new BosonError('HOST_CAPACITY_EXCEEDED', 'no memory'), 500, 'no memory'],
    [new BosonError('DAEMON_UNAVAILABLE', 'down'), 503, 'down'],
  ];
  for (const [err, status, message] of cases) assert.deepEqual(dockerErrorOf(err), { status, message }, err.code);
});

test('DockerErrors pass as they are; anything else is an internal error (500)', () => {
  assert.deepEqual(dockerErrorOf(new DockerError(418, 'teapot')), { status: 418, message: 'teapot' });
  assert.deepEqual(dockerErrorOf(badRequest('nope')), { status: 400, message: 'nope' });
  assert.deepEqual(dockerErrorOf(notSupported('docker build', 'why')), {
    status: 501,
    message: 'docker build is not supported by Boson (why)',
  });
  assert.match(notSupported('x').message, /^x is not supported by Boson \(every container is its own micro-VM/);
  assert.deepEqual(dockerErrorOf(new TypeError('undefined is not a function')), {
    status: 500,
    message: 'internal error: undefined is not a function',
  });
  assert.deepEqual(dockerErrorOf('a string'), { status: 500, message: 'internal error: a string' });
});
