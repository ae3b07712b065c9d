/** What the controller's route modules share: the problem answer every route documents, and the empty answer. */
import { Type } from '@sinclair/typebox';

/**
 * An error as the controller's API sends it: problem JSON (RFC 9457) with the catalogue's code and the error's
 * details (the machine's port has the same shape; the controller may not import the port's schemas yet).
 */
export const Problem = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Integer(),
  detail: Type.String(),
  code: Type.String(),
  details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});

/** The problem answers, documented on every route. */
export const errors = { '4xx': Problem, '5xx': Problem };

/** An answer without a body. */
export const noContent = Type.Null({ description: 'done; no body' });

/** The optional Idempotency-Key header of writes. */
export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ description: 'do this write once: a repeat with the same key replays the first answer' })),
});
