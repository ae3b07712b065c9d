/**
 * Docker's error answers: `{"message": "..."}` with Content-Type exactly `application/json`, and the status codes
 * the stock CLI and the SDKs branch on (404 makes `docker run` pull, 304 is "already started/stopped", 409 a
 * conflict). Boson's typed errors are translated here and nowhere else in src/docker.
 */
import { KIND_TRANSLATION, toBosonError } from '../common/index.ts';

/** An error with Docker's status and message. */
export class DockerError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** A feature Boson does not have (HTTP 501, Docker's {"message"}). */
export function notSupported(what: string, why = 'every container is its own micro-VM, and Boson has no such feature'): DockerError {
  return new DockerError(501, `${what} is not supported by Boson (${why})`);
}

/** 400 with a message. */
export function badRequest(message: string): DockerError {
  return new DockerError(400, message);
}

/** Lowercases the libc phrases the CLI looks for in a start error (it maps them to exit 126/127). */
function dockerStartPhrase(message: string): string {
  return message.replace(/No such file or directory/g, 'no such file or directory').replace(/Permission denied/g, 'permission denied');
}

/** Docker's status and message for any error. */
export function dockerErrorOf(err: unknown): { status: number; message: string } {
  if (err instanceof DockerError) return { status: err.status, message: err.message };
  const e = toBosonError(err);
  const details = e.details as { reference?: string } | undefined;
  switch (e.code) {
    case 'CONTAINER_NOT_FOUND':
      return { status: 404, message: e.message.replace(/^no such container/, 'No such container') };
    case 'IMAGE_NOT_FOUND':
      return { status: 404, message: `No such image: ${details?.reference ?? e.message.replace(/^no such image: /, '')}` };
    case 'EXEC_NOT_FOUND':
      return { status: 404, message: e.message.replace(/^no such exec instance/, 'No such exec instance') };
    case 'VOLUME_NOT_FOUND':
      return {
        status: 404,
        message: e.message.replace(/^no such volume: /, 'get ') + (e.message.startsWith('no such volume') ? ': no such volume' : ''),
      };
    case 'CONTAINER_NAME_IN_USE':
      return {
        status: 409,
        message: `Conflict. ${e.message}. You have to remove (or rename) that container to be able to reuse that name.`,
      };
    case 'COMMAND_NOT_FOUND':
    case 'COMMAND_NOT_EXECUTABLE':
    case 'CONTAINER_USER_UNKNOWN':
    case 'CONTAINER_START_FAILED':
      return { status: 400, message: `failed to create task for container: ${dockerStartPhrase(e.message)}` };
    case 'USAGE':
      return { status: 400, message: e.message };
    case 'CONTAINER_PAUSED_DISK_FULL':
      return { status: 409, message: e.message }; // as Docker answers an exec into a paused container
    default:
      return { status: KIND_TRANSLATION[e.kind].docker, message: e.message };
  }
}
