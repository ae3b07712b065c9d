/**
 * Idempotency keys on writes (Stripe's convention): a POST, PUT or DELETE with an `Idempotency-Key` header is done
 * once per principal and key; sending it again with the same method, path and body replays the first answer (with
 * `Idempotent-Replayed: true`), with a different request it is IDEMPOTENCY_KEY_REUSED, and while the first is still
 * running too. The keys live in the state store (any replica replays them) for 24 hours; a first answer of 5xx is
 * not kept, so the request can be retried. An answer that carries a secret (a new token: `secretAnswer` in the
 * route's policy) is never stored: a repeat of it is refused, saying the first one was done.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BosonError, isStoreConflict, type AsyncStateStore } from '../../common/index.ts';
import { KINDS } from '../model/records.ts';

/** How long a key is kept. */
export const IDEMPOTENCY_TTL_MS = 24 * 3600_000;

interface IdempotencyRecord {
  method: string;
  url: string;
  bodyHash: string;
  state: 'pending' | 'done';
  at: number;
  status?: number;
  contentType?: string;
  payload?: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The store key of the idempotency record this request claimed. */
    idempotencyClaim?: { key: string; revision: number; base: IdempotencyRecord };
  }
}

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** Installs idempotency keys on `app` (after the policy's hooks, so that only an authorized request claims a key). */
export function installIdempotency(app: FastifyInstance, store: AsyncStateStore): void {
  app.addHook('preHandler', async (req: FastifyRequest, reply: FastifyReply) => {
    const header = req.headers['idempotency-key'];
    if (typeof header !== 'string' || !WRITES.has(req.method) || !req.principal) return;
    if (!/^[A-Za-z0-9_.:-]{1,200}$/.test(header))
      throw new BosonError('INVALID_ARGUMENT', 'Idempotency-Key: 1 to 200 letters, digits and _.:-');
    const who = req.principal.tokenId ?? `user:${req.principal.user}`;
    const key = `${who}/${header}`;
    const base: IdempotencyRecord = {
      method: req.method,
      url: req.url,
      bodyHash: createHash('sha256')
        .update(JSON.stringify(req.body ?? null))
        .digest('hex'),
      state: 'pending',
      at: Date.now(),
    };
    const existing = await store.get<IdempotencyRecord>(KINDS.idempotency, key);
    const stale = existing && existing.value.at + IDEMPOTENCY_TTL_MS < Date.now();
    if (existing && !stale) {
      const e = existing.value;
      if (e.method !== base.method || e.url !== base.url || e.bodyHash !== base.bodyHash)
        throw new BosonError('IDEMPOTENCY_KEY_REUSED', `Idempotency-Key ${header} was used for another request (${e.method} ${e.url})`);
      if (e.state === 'pending')
        throw new BosonError('IDEMPOTENCY_KEY_REUSED', `the first request with Idempotency-Key ${header} is still running`);
      if (e.payload === undefined)
        throw new BosonError(
          'IDEMPOTENCY_KEY_REUSED',
          `the request with Idempotency-Key ${header} was done (${e.status}); its answer held a secret shown only once, so it is not replayed`,
          { details: { status: e.status } },
        );
      req.idempotentReplay = true;
      await reply
        .code(e.status ?? 200)
        .header('Idempotent-Replayed', 'true')
        .type(e.contentType ?? 'application/json')
        .send(e.payload);
      return reply;
    }
    try {
      const revision = await store.put(KINDS.idempotency, key, base, { expectRevision: existing?.revision ?? 0 });
      req.idempotencyClaim = { key, revision, base };
    } catch (err) {
      if (isStoreConflict(err))
        throw new BosonError('IDEMPOTENCY_KEY_REUSED', `the first request with Idempotency-Key ${header} is still running`);
      throw err;
    }
  });

  app.addHook('onSend', async (req: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const claim = req.idempotencyClaim;
    if (!claim) return payload;
    req.idempotencyClaim = undefined;
    if (reply.statusCode >= 500) {
      await store.delete(KINDS.idempotency, claim.key, { expectRevision: claim.revision }).catch(() => undefined);
      return payload;
    }
    const secret = req.routeOptions.config.policy?.secretAnswer === true;
    const done: IdempotencyRecord = {
      ...claim.base,
      state: 'done',
      status: reply.statusCode,
      ...(secret
        ? {}
        : {
            contentType: String(reply.getHeader('content-type') ?? 'application/json'),
            payload: typeof payload === 'string' ? payload : payload === undefined || payload === null ? '' : String(payload),
          }),
    };
    await store.put(KINDS.idempotency, claim.key, done, { expectRevision: claim.revision }).catch(() => undefined);
    return payload;
  });
}
