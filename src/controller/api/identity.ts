/**
 * The user and token routes of the controller's API, and whoami. A tenant admin manages the users and tokens of its
 * tenant; anyone may see and revoke its own tokens; a token's secret is in the create answer and nowhere else.
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { BosonError } from '../../common/index.ts';
import type { Controller } from '../model/controller.ts';
import { canSee, roleOver, roleToIssue, ROLE_RANK, scopeOfGrant, type Scope } from '../model/policy.ts';
import { Grant, Name, Principal, TokenCreated, TokenInfo, User, type Grant as GrantT } from '../model/schemas.ts';
import { errors, IdempotencyHeaders, noContent } from './common.ts';
import { authorize, principalOf } from './policy.ts';

const UserParams = Type.Object({ name: Name });
const TokenParams = Type.Object({ id: Type.String({ pattern: '^[0-9a-f]{12}$' }) });
const UserCreate = Type.Object({ name: Name, tenant: Type.Optional(Name) }, { additionalProperties: false });
const TokenCreate = Type.Object(
  {
    user: Type.Optional(Name),
    grant: Grant,
    description: Type.Optional(Type.String({ maxLength: 200 })),
    ttlSeconds: Type.Optional(Type.Integer({ minimum: 60 })),
  },
  { additionalProperties: false },
);

/** The scope a user belongs to: its tenant, or the system for a system user. */
const userScope = (tenant: string | undefined): Scope => (tenant === undefined ? { kind: 'system' } : { kind: 'tenant', tenant });

/** The scope a grant is managed in (a tenant's grants by its admins; system grants by system admins). */
const grantScope = (g: GrantT): Scope => roleToIssue(g).scope;

/** The user and token routes over `ctl`. */
export function identityRoutes(ctl: Controller): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    const tags = ['identity'];
    const userMissing = (name: string) => (): BosonError => new BosonError('USER_NOT_FOUND', `no such user: ${name}`);
    const tokenMissing = (id: string) => (): BosonError => new BosonError('TOKEN_NOT_FOUND', `no such token: ${id}`);
    /**
     * True when the token is the principal's own: its user, and a grant within what the principal sees (a user's
     * tokens in other tenants stay hidden from a token of theirs scoped to one project).
     */
    const own = (req: Parameters<typeof principalOf>[0], t: { user: string; grant: GrantT }): boolean =>
      t.user === principalOf(req).user && canSee(principalOf(req), scopeOfGrant(t.grant));
    /** True when the principal administers `scope` (tenant-admin of a tenant, system-admin of the system). */
    const administers = (req: Parameters<typeof principalOf>[0], scope: Scope): boolean => {
      const r = roleOver(principalOf(req).grant, scope);
      return r !== null && ROLE_RANK[r] >= ROLE_RANK[scope.kind === 'system' ? 'system-admin' : 'tenant-admin'];
    };

    app.get(
      '/v1/whoami',
      {
        schema: { tags, summary: 'The principal of this request', response: { 200: Principal, ...errors } },
        config: { policy: { allow: 'authenticated' } },
      },
      async (req) => principalOf(req),
    );

    app.get(
      '/v1/users',
      {
        schema: { tags, summary: 'List the users the principal manages (and itself)', response: { 200: Type.Array(User), ...errors } },
        config: { policy: { allow: 'authenticated', note: "a tenant admin sees its tenant's users; others themselves" } },
      },
      async (req) =>
        (await ctl.identity.listUsers()).filter((u) => u.name === principalOf(req).user || administers(req, userScope(u.tenant))),
    );

    app.post<{ Body: Static<typeof UserCreate> }>(
      '/v1/users',
      {
        schema: {
          tags,
          summary: 'Create a user in a tenant (or a system user)',
          headers: IdempotencyHeaders,
          body: UserCreate,
          response: { 201: User, ...errors },
        },
        config: {
          policy: { allow: 'tenant-admin', scope: 'object', note: 'of the tenant named in the body; system-admin for a system user' },
        },
      },
      async (req, reply) => {
        const scope = userScope(req.body.tenant);
        authorize(
          req,
          scope.kind === 'system' ? 'system-admin' : 'tenant-admin',
          scope,
          () => new BosonError('TENANT_NOT_FOUND', `no such tenant: ${req.body.tenant}`),
        );
        return reply.code(201).send(await ctl.identity.createUser(req.body.name, req.body.tenant));
      },
    );

    app.get<{ Params: Static<typeof UserParams> }>(
      '/v1/users/:name',
      {
        schema: { tags, summary: 'Inspect a user', params: UserParams, response: { 200: User, ...errors } },
        config: { policy: { allow: 'tenant-admin', scope: 'object', note: "of the user's tenant; anyone sees itself" } },
      },
      async (req) => {
        const u = await ctl.identity.getUser(req.params.name);
        const scope = userScope(u.tenant);
        authorize(req, scope.kind === 'system' ? 'system-admin' : 'tenant-admin', scope, userMissing(u.name), {
          hide: true,
          self: principalOf(req).user === u.name,
        });
        return u;
      },
    );

    app.delete<{ Params: Static<typeof UserParams> }>(
      '/v1/users/:name',
      {
        schema: {
          tags,
          summary: 'Remove a user and all its tokens',
          headers: IdempotencyHeaders,
          params: UserParams,
          response: { 204: noContent, ...errors },
        },
        config: { policy: { allow: 'tenant-admin', scope: 'object', note: "of the user's tenant" } },
      },
      async (req, reply) => {
        const u = await ctl.identity.getUser(req.params.name);
        const scope = userScope(u.tenant);
        authorize(req, scope.kind === 'system' ? 'system-admin' : 'tenant-admin', scope, userMissing(u.name), { hide: true });
        await ctl.identity.deleteUser(u.name);
        return reply.code(204).send();
      },
    );

    app.get(
      '/v1/tokens',
      {
        schema: {
          tags,
          summary: 'List the tokens the principal manages (and its own); never their secrets',
          response: { 200: Type.Array(TokenInfo), ...errors },
        },
        config: { policy: { allow: 'authenticated', note: "a tenant admin sees its tenant's tokens; others their own" } },
      },
      async (req) => (await ctl.identity.listTokens()).filter((t) => own(req, t) || administers(req, grantScope(t.grant))),
    );

    app.post<{ Body: Static<typeof TokenCreate> }>(
      '/v1/tokens',
      {
        schema: {
          tags,
          summary: 'Issue a token (its secret is in this answer only)',
          headers: IdempotencyHeaders,
          body: TokenCreate,
          response: { 201: TokenCreated, ...errors },
        },
        config: {
          policy: {
            allow: 'tenant-admin',
            scope: 'object',
            note: "of the grant's tenant, for a user it manages or itself; system-admin for a system-admin grant",
            secretAnswer: true,
          },
        },
      },
      async (req, reply) => {
        const g = req.body.grant;
        const { role, scope } = roleToIssue(g);
        const target = scopeOfGrant(g);
        const missing = (): BosonError =>
          target.kind === 'project'
            ? new BosonError('PROJECT_NOT_FOUND', `no such project: ${target.tenant}/${target.project}`)
            : new BosonError('TENANT_NOT_FOUND', `no such tenant: ${target.kind === 'tenant' ? target.tenant : ''}`);
        // A member or viewer grant names a project: the issuer must see that project too (or be told it does not exist).
        if (target.kind === 'project' && !canSee(principalOf(req), target)) throw missing();
        authorize(req, role, scope, missing);
        const user = req.body.user ?? principalOf(req).user;
        // Another tenant's user (or a system user a tenant admin does not manage) does not exist for the issuer.
        const holder = await ctl.identity.getUser(user);
        if (holder.name !== principalOf(req).user && !administers(req, userScope(holder.tenant))) throw userMissing(user)();
        return reply
          .code(201)
          .send(
            await ctl.identity.createToken(user, req.body.grant, { description: req.body.description, ttlSeconds: req.body.ttlSeconds }),
          );
      },
    );

    app.get<{ Params: Static<typeof TokenParams> }>(
      '/v1/tokens/:id',
      {
        schema: { tags, summary: 'Inspect a token (never its secret)', params: TokenParams, response: { 200: TokenInfo, ...errors } },
        config: { policy: { allow: 'tenant-admin', scope: 'object', note: "of the grant's tenant; anyone sees its own" } },
      },
      async (req) => {
        const t = await ctl.identity.getToken(req.params.id);
        const { role, scope } = roleToIssue(t.grant);
        authorize(req, role, scope, tokenMissing(t.id), { hide: true, self: own(req, t) });
        return t;
      },
    );

    app.delete<{ Params: Static<typeof TokenParams> }>(
      '/v1/tokens/:id',
      {
        schema: {
          tags,
          summary: 'Revoke a token (refused from the next request on)',
          headers: IdempotencyHeaders,
          params: TokenParams,
          response: { 204: noContent, ...errors },
        },
        config: { policy: { allow: 'tenant-admin', scope: 'object', note: "of the grant's tenant; anyone revokes its own" } },
      },
      async (req, reply) => {
        const t = await ctl.identity.getToken(req.params.id);
        const { role, scope } = roleToIssue(t.grant);
        authorize(req, role, scope, tokenMissing(t.id), { hide: true, self: own(req, t) });
        await ctl.identity.revokeToken(t.id);
        return reply.code(204).send();
      },
    );
  };
}
