/**
 * Errors at the CRI edge: a BosonError becomes a gRPC status through the one kind table (KIND_TRANSLATION's grpc
 * column), with its stable code in the metadata; CRI-only refusals (an RPC Boson does not serve, a field it cannot
 * honour) are CriRefusal, raised here and nowhere below.
 */
import * as grpc from '@grpc/grpc-js';
import { KIND_TRANSLATION, toBosonError } from '../common/index.ts';

/** A refusal decided by the CRI edge itself: the gRPC status and why. */
export class CriRefusal extends Error {
  constructor(
    readonly status:
      grpc.status.UNIMPLEMENTED | grpc.status.FAILED_PRECONDITION | grpc.status.INVALID_ARGUMENT | grpc.status.DEADLINE_EXCEEDED,
    message: string,
  ) {
    super(message);
    this.name = 'CriRefusal';
  }
}

/** What grpc-js sends for an error: the status code, its message, and Boson's error code as `boson-code` metadata. */
export function grpcErrorOf(err: unknown): Partial<grpc.StatusObject> {
  if (err instanceof CriRefusal) return { code: err.status, details: err.message };
  const e = toBosonError(err);
  const metadata = new grpc.Metadata();
  metadata.set('boson-code', e.code);
  return { code: KIND_TRANSLATION[e.kind].grpc as grpc.status, details: e.message, metadata };
}
