/** The tenant and project routes of the controller's API (quota limits are carved on create and on PUT …/limits). */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import type { Controller } from '../model/controller.ts';
import { canSee } from '../model/policy.ts';
import { Limits, Name, Project, Task, Tenant } from '../model/schemas.ts';
import { errors, IdempotencyHeaders } from './common.ts';
import { principalOf } from './policy.ts';

const TenantParams = Type.Object({ tenant: Name });
const ProjectParams = Type.Object({ tenant: Name, project: Name });
const TenantCreate = Type.Object({ name: Name, limits: Type.Optional(Limits) }, { additionalProperties: false });
const ProjectCreate = Type.Object({ name: Name, limits: Type.Optional(Limits) }, { additionalProperties: false });
const LimitsBody = Type.Object({ limits: Limits }, { additionalProperties: false });

/** The tenant and project routes over `ctl`. */
export function tenantRoutes(ctl: Controller): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    const tags = ['tenants'];
    app.get(
      '/v1/tenants',
      {
        schema: { tags, summary: 'List the tenants the principal can see', response: { 200: Type.Array(Tenant), ...errors } },
        config: { policy: { allow: 'authenticated', note: 'each sees the tenants it has a grant in' } },
      },
      async (req) => {
        const p = principalOf(req);
        return (await ctl.tenants.listTenants()).filter((t) => canSee(p, { kind: 'tenant', tenant: t.name }));
      },
    );

    app.post<{ Body: Static<typeof TenantCreate> }>(
      '/v1/tenants',
      {
        schema: {
          tags,
          summary: 'Create a tenant with its limits',
          headers: IdempotencyHeaders,
          body: TenantCreate,
          response: { 201: Tenant, ...errors },
        },
        config: { policy: { allow: 'system-admin', scope: 'system' } },
      },
      async (req, reply) => reply.code(201).send(await ctl.tenants.createTenant(req.body.name, req.body.limits)),
    );

    app.get<{ Params: Static<typeof TenantParams> }>(
      '/v1/tenants/:tenant',
      {
        schema: {
          tags,
          summary: 'Inspect a tenant: its limits and what its projects have carved',
          params: TenantParams,
          response: { 200: Tenant, ...errors },
        },
        config: { policy: { allow: 'viewer', scope: 'params', note: "a project's member or viewer sees its tenant" } },
      },
      async (req) => ctl.tenants.getTenant(req.params.tenant),
    );

    app.put<{ Params: Static<typeof TenantParams>; Body: Static<typeof LimitsBody> }>(
      '/v1/tenants/:tenant/limits',
      {
        schema: {
          tags,
          summary: "Set a tenant's limits (not below what its projects have carved)",
          headers: IdempotencyHeaders,
          params: TenantParams,
          body: LimitsBody,
          response: { 200: Tenant, ...errors },
        },
        config: { policy: { allow: 'system-admin', scope: 'params' } },
      },
      async (req) => ctl.tenants.setTenantLimits(req.params.tenant, req.body.limits),
    );

    app.delete<{ Params: Static<typeof TenantParams> }>(
      '/v1/tenants/:tenant',
      {
        schema: {
          tags,
          summary: 'Remove a tenant without projects, with its users and tokens (a task)',
          headers: IdempotencyHeaders,
          params: TenantParams,
          response: { 202: Task, ...errors },
        },
        config: { policy: { allow: 'system-admin', scope: 'params' } },
      },
      async (req, reply) => reply.code(202).send(await ctl.deleteTenant(req.params.tenant)),
    );

    app.get<{ Params: Static<typeof TenantParams> }>(
      '/v1/tenants/:tenant/projects',
      {
        schema: {
          tags,
          summary: "List a tenant's projects the principal can see",
          params: TenantParams,
          response: { 200: Type.Array(Project), ...errors },
        },
        config: { policy: { allow: 'viewer', scope: 'params', note: 'a member or viewer sees only its project' } },
      },
      async (req) => {
        const p = principalOf(req);
        return (await ctl.tenants.listProjects(req.params.tenant)).filter((x) =>
          canSee(p, { kind: 'project', tenant: x.tenant, project: x.name }),
        );
      },
    );

    app.post<{ Params: Static<typeof TenantParams>; Body: Static<typeof ProjectCreate> }>(
      '/v1/tenants/:tenant/projects',
      {
        schema: {
          tags,
          summary: "Create a project, carving its limits from the tenant's",
          headers: IdempotencyHeaders,
          params: TenantParams,
          body: ProjectCreate,
          response: { 201: Project, ...errors },
        },
        config: { policy: { allow: 'tenant-admin', scope: 'params' } },
      },
      async (req, reply) => reply.code(201).send(await ctl.tenants.createProject(req.params.tenant, req.body.name, req.body.limits)),
    );

    app.get<{ Params: Static<typeof ProjectParams> }>(
      '/v1/tenants/:tenant/projects/:project',
      {
        schema: { tags, summary: 'Inspect a project: its limits and usage', params: ProjectParams, response: { 200: Project, ...errors } },
        config: { policy: { allow: 'viewer', scope: 'params' } },
      },
      async (req) => ctl.tenants.getProject(req.params.tenant, req.params.project),
    );

    app.put<{ Params: Static<typeof ProjectParams>; Body: Static<typeof LimitsBody> }>(
      '/v1/tenants/:tenant/projects/:project/limits',
      {
        schema: {
          tags,
          summary: "Set a project's limits (carved from the tenant's; not below its usage)",
          headers: IdempotencyHeaders,
          params: ProjectParams,
          body: LimitsBody,
          response: { 200: Project, ...errors },
        },
        config: { policy: { allow: 'tenant-admin', scope: 'params' } },
      },
      async (req) => ctl.tenants.setProjectLimits(req.params.tenant, req.params.project, req.body.limits),
    );

    app.delete<{ Params: Static<typeof ProjectParams> }>(
      '/v1/tenants/:tenant/projects/:project',
      {
        schema: {
          tags,
          summary: 'Remove a project that uses no quota, giving its limits back to the tenant (a task)',
          headers: IdempotencyHeaders,
          params: ProjectParams,
          response: { 202: Task, ...errors },
        },
        config: { policy: { allow: 'tenant-admin', scope: 'params' } },
      },
      async (req, reply) => reply.code(202).send(await ctl.deleteProject(req.params.tenant, req.params.project)),
    );
  };
}
