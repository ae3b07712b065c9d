/**
 * Public surface of src/controller: the controller's resource model (tenants → projects with quota carved from
 * the tenant's, flavors, users and tokens with roles, tasks) over the AsyncStateStore contract, its REST API, and
 * the typed client the CLI uses. Implementations of the store are built by src/main.
 */
export * from './model/schemas.ts';
export { Controller, DEFAULT_TENANT, DEFAULT_PROJECT } from './model/controller.ts';
export { Tenants, effectiveLimits } from './model/tenants.ts';
export { Identity, LOCAL_ADMIN, ADMIN_USER, hashSecret, parseToken } from './model/identity.ts';
export { Flavors, flavorCost, type FlavorSpec } from './model/flavors.ts';
export { Tasks, isFinal, type StepRunner, type TaskSubject } from './model/tasks.ts';
export { KINDS } from './model/records.ts';
export { ROLE_RANK, roleOver, canSee, requireRole, type Scope } from './model/policy.ts';
export { QUOTA_KEYS, parseQuotaItem, parseByteSize, formatQuotaValue, formatLimits, normalizeLimits, unitOf } from './model/quota.ts';
export type { ControllerApi, RouteEntry } from './api/server.ts';

/**
 * Builds the controller's REST API (api/server.ts), loaded on first use: fastify and its plugins stay out of the
 * CLI commands that only use the client.
 */
export async function buildControllerApi(
  ...args: Parameters<typeof import('./api/server.ts').buildControllerApi>
): Promise<import('./api/server.ts').ControllerApi> {
  return (await import('./api/server.ts')).buildControllerApi(...args);
}
export type { RoutePolicy } from './api/policy.ts';
export { policyTable } from './api/policy-doc.ts';
export { ControllerClient, type ControllerTarget } from './client.ts';
export * from './fleet/index.ts';
