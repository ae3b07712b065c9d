/**
 * What every route module of the REST API shares: the problem JSON of an error (the one translation of a typed
 * error to HTTP, RFC 9457 with the catalogue's code), the problem responses every route documents, the request
 * context of a request, and the parsing of query values.
 */
import { Type } from '@sinclair/typebox';
import { BosonError, PRINCIPAL_HEADER, problemOf } from '../../common/index.ts';
import { Problem, localContext, type RequestContext } from '../port/index.ts';

/** The problem JSON body for an error: the one translation, in src/common (errors.ts). */
export { problemOf };

/** The problem answers, documented on every route. */
export const errors = { '4xx': Problem, '5xx': Problem };

/** An answer without a body. */
export const noContent = Type.Null({ description: 'done; no body' });

/** What a request context is made from. */
export interface RequestLike {
  id: string;
  headers: Record<string, string | string[] | undefined>;
}

/** Makes a request's RequestContext. */
export type ContextOf = (req: RequestLike) => RequestContext;

/**
 * The request context of a request: the principal a TCP endpoint authenticated (its client certificate's subject,
 * in PRINCIPAL_HEADER, which the endpoint sets and never passes through from a client); on the UNIX socket, the
 * local user.
 */
export const contextOf: ContextOf = (req) => {
  const principal = req.headers[PRINCIPAL_HEADER];
  return typeof principal === 'string' ? { requestId: req.id, principal } : localContext(req.id);
};

/** A boolean query value ('1' or 'true'). */
export function boolQuery(v: unknown): boolean {
  return v === true || v === '1' || v === 'true';
}

/** A time as nanoseconds since the epoch: unix seconds (with a fraction) or RFC 3339; absent or '' is undefined. */
export function nsFromTime(v: unknown): bigint | undefined {
  if (v === undefined || v === '') return undefined;
  const s = String(v);
  if (/^\d+(\.\d+)?$/.test(s)) return BigInt(Math.round(Number(s) * 1e9));
  const ms = Date.parse(s);
  if (Number.isNaN(ms)) throw new BosonError('INVALID_ARGUMENT', `invalid time: ${s}`);
  return BigInt(ms) * 1_000_000n;
}
