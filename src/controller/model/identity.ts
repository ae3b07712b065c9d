/**
 * Users and tokens. A token is `boson_<id>_<secret>`: 12 hex digits naming its record and 32 random bytes; only a
 * SHA-256 of the secret is stored (the secret is random, so a slow hash adds nothing; GitHub's tokens are stored
 * the same way), compared in constant time. Every request looks its token up in the store, so a revoked token (its
 * record deleted) is refused at once, by every replica. A token grants one role over one scope; a user of a tenant
 * can only hold grants in that tenant, a system user (without a tenant) any.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { BosonError, isStoreConflict, type AsyncStateStore, type StoreOp } from '../../common/index.ts';
import { KINDS, must, now, projectKey, type TokenRecord, type UserRecord } from './records.ts';
import type { Grant, Principal, TokenCreated, TokenInfo, User } from './schemas.ts';

const userMissing = (u: string) => (): BosonError => new BosonError('USER_NOT_FOUND', `no such user: ${u}`, { details: { user: u } });
const tokenMissing = (id: string) => (): BosonError =>
  new BosonError('TOKEN_NOT_FOUND', `no such token: ${id}`, { details: { token: id } });

/** The system user every controller has (the local socket's principal; it can hold any grant). */
export const ADMIN_USER = 'admin';

/** The principal of requests on the controller's local socket (whose file permissions are the authentication). */
export const LOCAL_ADMIN: Principal = { user: ADMIN_USER, grant: { role: 'system-admin' } };

/** The hex SHA-256 of a token's secret. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Splits a bearer token into its id and secret, or null when it is not one of ours. */
export function parseToken(token: string): { id: string; secret: string } | null {
  const m = /^boson_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/.exec(token);
  return m ? { id: m[1]!, secret: m[2]! } : null;
}

const info = (r: TokenRecord): TokenInfo => {
  const { hash: _hash, ...rest } = r;
  return rest;
};

/** Users and their tokens. */
export class Identity {
  constructor(private readonly store: AsyncStateStore) {}

  /** Creates a user (in `tenant`, which must exist, or a system user); NAME_IN_USE when the name is taken. */
  async createUser(name: string, tenant?: string): Promise<User> {
    const rec: UserRecord = tenant === undefined ? { name, createdAt: now() } : { name, tenant, createdAt: now() };
    const ops: StoreOp[] = [{ op: 'put', kind: KINDS.user, key: name, value: rec, expectRevision: 0 }];
    if (tenant !== undefined) {
      const t = await this.store.get(KINDS.tenant, tenant);
      if (!t) throw new BosonError('TENANT_NOT_FOUND', `no such tenant: ${tenant}`, { details: { tenant } });
      ops.push({ op: 'check', kind: KINDS.tenant, key: tenant, expectRevision: t.revision });
    }
    try {
      await this.store.commit(ops);
    } catch (err) {
      if (isStoreConflict(err) && (await this.store.get(KINDS.user, name)))
        throw new BosonError('NAME_IN_USE', `user ${name} already exists`, { details: { user: name } });
      throw err;
    }
    return rec;
  }

  async listUsers(): Promise<User[]> {
    return (await this.store.list<UserRecord>(KINDS.user)).map((r) => r.value);
  }

  async getUser(name: string): Promise<User> {
    return (await must<UserRecord>(this.store, KINDS.user, name, userMissing(name))).value;
  }

  /** Removes a user and every token of theirs, in one commit (not `admin`, the local socket's user). */
  async deleteUser(name: string): Promise<void> {
    if (name === ADMIN_USER)
      throw new BosonError('INVALID_ARGUMENT', `the user ${ADMIN_USER} is the controller's own and cannot be removed`);
    const u = await must<UserRecord>(this.store, KINDS.user, name, userMissing(name));
    const tokens = (await this.store.list<TokenRecord>(KINDS.token)).filter((t) => t.value.user === name);
    await this.store.commit([
      { op: 'delete', kind: KINDS.user, key: name, expectRevision: u.revision },
      ...tokens.map((t): StoreOp => ({ op: 'delete', kind: KINDS.token, key: t.key, expectRevision: t.revision })),
    ]);
  }

  /** Removes the users of `tenant` and every token in it or of them (after the tenant is gone). */
  async deleteTenantIdentities(tenant: string): Promise<void> {
    const users = (await this.store.list<UserRecord>(KINDS.user)).filter((u) => u.value.tenant === tenant);
    const names = new Set(users.map((u) => u.key));
    const tokens = (await this.store.list<TokenRecord>(KINDS.token)).filter(
      (t) => names.has(t.value.user) || (t.value.grant.role !== 'system-admin' && t.value.grant.tenant === tenant),
    );
    await this.store.commit([
      ...tokens.map((t): StoreOp => ({ op: 'delete', kind: KINDS.token, key: t.key })),
      ...users.map((u): StoreOp => ({ op: 'delete', kind: KINDS.user, key: u.key })),
    ]);
  }

  /** Removes the tokens whose grant is a project's (after the project is gone). */
  async deleteProjectTokens(tenant: string, project: string): Promise<void> {
    const tokens = (await this.store.list<TokenRecord>(KINDS.token)).filter(
      (t) => 'project' in t.value.grant && t.value.grant.tenant === tenant && t.value.grant.project === project,
    );
    if (tokens.length > 0) await this.store.commit(tokens.map((t): StoreOp => ({ op: 'delete', kind: KINDS.token, key: t.key })));
  }

  /**
   * Issues a token for `user` with `grant` (its tenant and project must exist, and a tenant's user can hold grants
   * in that tenant only). The answer is the only place its secret ever appears.
   */
  async createToken(user: string, grant: Grant, opts: { description?: string; ttlSeconds?: number } = {}): Promise<TokenCreated> {
    const u = await must<UserRecord>(this.store, KINDS.user, user, userMissing(user));
    const ops: StoreOp[] = [{ op: 'check', kind: KINDS.user, key: user, expectRevision: u.revision }];
    if (grant.role !== 'system-admin') {
      if (u.value.tenant !== undefined && u.value.tenant !== grant.tenant)
        throw new BosonError(
          'INVALID_ARGUMENT',
          `user ${user} belongs to tenant ${u.value.tenant}: it cannot hold a grant in ${grant.tenant}`,
        );
      const t = await this.store.get(KINDS.tenant, grant.tenant);
      if (!t) throw new BosonError('TENANT_NOT_FOUND', `no such tenant: ${grant.tenant}`, { details: { tenant: grant.tenant } });
      ops.push({ op: 'check', kind: KINDS.tenant, key: grant.tenant, expectRevision: t.revision });
      if (grant.role === 'member' || grant.role === 'viewer') {
        const key = projectKey(grant.tenant, grant.project);
        const p = await this.store.get(KINDS.project, key);
        if (!p)
          throw new BosonError('PROJECT_NOT_FOUND', `no such project: ${key}`, {
            details: { tenant: grant.tenant, project: grant.project },
          });
        ops.push({ op: 'check', kind: KINDS.project, key, expectRevision: p.revision });
      }
    } else if (u.value.tenant !== undefined) {
      throw new BosonError('INVALID_ARGUMENT', `user ${user} belongs to tenant ${u.value.tenant}: only a system user can be system-admin`);
    }
    const id = randomBytes(6).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const rec: TokenRecord = {
      id,
      user,
      grant,
      description: opts.description ?? '',
      createdAt: now(),
      ...(opts.ttlSeconds ? { expiresAt: new Date(Date.now() + opts.ttlSeconds * 1000).toISOString() } : {}),
      hash: hashSecret(secret),
    };
    await this.store.commit([...ops, { op: 'put', kind: KINDS.token, key: id, value: rec, expectRevision: 0 }]);
    return { token: `boson_${id}_${secret}`, info: info(rec) };
  }

  async listTokens(): Promise<TokenInfo[]> {
    return (await this.store.list<TokenRecord>(KINDS.token)).map((r) => info(r.value));
  }

  async getToken(id: string): Promise<TokenInfo> {
    return info((await must<TokenRecord>(this.store, KINDS.token, id, tokenMissing(id))).value);
  }

  /** Revokes a token: its record is deleted, so the next request with it is refused. */
  async revokeToken(id: string): Promise<void> {
    if (!(await this.store.delete(KINDS.token, id))) throw tokenMissing(id)();
  }

  /**
   * The principal of a bearer token; UNAUTHENTICATED when it is malformed, unknown, revoked, expired, or its user
   * is gone. The message never says which.
   */
  async authenticate(token: string): Promise<Principal> {
    const refused = (): BosonError => new BosonError('UNAUTHENTICATED', 'the bearer token is not valid (unknown, revoked or expired)');
    const parsed = parseToken(token);
    if (!parsed) throw refused();
    const r = await this.store.get<TokenRecord>(KINDS.token, parsed.id);
    if (!r) throw refused();
    const want = Buffer.from(r.value.hash, 'hex');
    const got = Buffer.from(hashSecret(parsed.secret), 'hex');
    if (want.length !== got.length || !timingSafeEqual(want, got)) throw refused();
    if (r.value.expiresAt && Date.parse(r.value.expiresAt) <= Date.now()) throw refused();
    if (!(await this.store.get(KINDS.user, r.value.user))) throw refused();
    return { user: r.value.user, tokenId: r.value.id, grant: r.value.grant };
  }
}
