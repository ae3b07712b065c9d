/**
 * The port's plain values, apart from its schemas so that a client process that needs only these does not load the
 * schema library: the context a host makes for itself, and defaults a client shows.
 */
import type { RequestContext } from './schemas.ts';

/** A context for calls made by the host itself (the CLI on this host, the daemon's own restarts). */
export function localContext(requestId?: string): RequestContext {
  return requestId === undefined ? { principal: 'local' } : { principal: 'local', requestId };
}

/** The size of a volume's disk when its create request names none (sparse: it takes only what is written). */
export const DEFAULT_VOLUME_BYTES = 16 * 1024 ** 3;
