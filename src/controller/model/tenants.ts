/**
 * Tenants and projects over the state store: projects' limits carved from their tenant's (the sum of a tenant's
 * projects' limits never exceeds the tenant's, for every key the tenant limits), and usage reserved and released
 * exactly under concurrency (compare-and-swap commits: two reservations racing for the last unit, one wins and the
 * other gets QUOTA_EXCEEDED naming the key, and nothing of it is written).
 *
 * A key the tenant limits and a project does not is a limit of 0 for that project: nothing is carved that was not
 * asked for. A key the tenant does not limit is not limited in its projects unless they say so.
 */
import { randomBytes } from 'node:crypto';
import { BosonError, type AsyncStateStore, type StoreOp } from '../../common/index.ts';
import { addItems, normalizeLimits, quotaError, shortfall, toMap } from './quota.ts';
import { casLoop, KINDS, must, now, projectKey, type ProjectRecord, type TenantRecord, type UsageRecord } from './records.ts';
import type { Limits, Project, Tenant } from './schemas.ts';

const tenantMissing = (t: string) => (): BosonError =>
  new BosonError('TENANT_NOT_FOUND', `no such tenant: ${t}`, { details: { tenant: t } });
const projectMissing = (t: string, p: string) => (): BosonError =>
  new BosonError('PROJECT_NOT_FOUND', `no such project: ${t}/${p}`, { details: { tenant: t, project: p } });

/** The limits that hold for a project: its own, and 0 for each key its tenant limits that it does not. */
export function effectiveLimits(tenant: TenantRecord, project: ProjectRecord): Limits {
  const own = toMap(project.limits);
  const zeros = tenant.limits.filter((l) => !own.has(l.key)).map((l) => ({ ...l, value: 0 }));
  return normalizeLimits([...project.limits, ...zeros]);
}

/** Checks that `allocated` stays within the tenant's `limits`; QUOTA_EXCEEDED naming the key otherwise. */
function checkCarve(tenant: TenantRecord, allocatedBefore: Limits, request: Limits, verb: string): void {
  const s = shortfall(tenant.limits, allocatedBefore, request);
  if (s) throw quotaError(tenant.name, 'tenant', s, verb);
}

/** Tenants, projects and their quota. */
export class Tenants {
  constructor(private readonly store: AsyncStateStore) {}

  /** Creates a tenant; NAME_IN_USE when one has the name. */
  async createTenant(name: string, limits: Limits = []): Promise<Tenant> {
    const rec: TenantRecord = { name, limits: normalizeLimits(limits), allocated: [], createdAt: now() };
    try {
      await this.store.put(KINDS.tenant, name, rec, { expectRevision: 0 });
    } catch (err) {
      if ((err as BosonError).code === 'STORE_CONFLICT')
        throw new BosonError('NAME_IN_USE', `tenant ${name} already exists`, { details: { tenant: name } });
      throw err;
    }
    return rec;
  }

  async listTenants(): Promise<Tenant[]> {
    return (await this.store.list<TenantRecord>(KINDS.tenant)).map((r) => r.value);
  }

  async getTenant(name: string): Promise<Tenant> {
    return (await must<TenantRecord>(this.store, KINDS.tenant, name, tenantMissing(name))).value;
  }

  /** Sets a tenant's limits; QUOTA_EXCEEDED when its projects already hold more of a key than the new limit. */
  async setTenantLimits(name: string, limits: Limits): Promise<Tenant> {
    const next = normalizeLimits(limits);
    return casLoop(`tenant ${name}`, async () => {
      const t = await must<TenantRecord>(this.store, KINDS.tenant, name, tenantMissing(name));
      const updated: TenantRecord = { ...t.value, limits: next };
      checkCarve(updated, [], t.value.allocated, 'has carved to its projects');
      await this.store.put(KINDS.tenant, name, updated, { expectRevision: t.revision });
      return updated;
    });
  }

  /** The commit that removes a tenant without projects (its users and tokens are removed by the caller). */
  async deleteTenant(name: string): Promise<void> {
    await casLoop(`tenant ${name}`, async () => {
      const t = await must<TenantRecord>(this.store, KINDS.tenant, name, tenantMissing(name));
      const projects = await this.store.list<ProjectRecord>(KINDS.project, { prefix: `${name}/` });
      if (projects.length > 0)
        throw new BosonError(
          'TENANT_IN_USE',
          `tenant ${name} still has ${projects.length} project(s): ${projects.map((p) => p.value.name).join(', ')}`,
          {
            details: { tenant: name, projects: projects.map((p) => p.value.name) },
          },
        );
      // Creating a project rewrites the tenant record (its allocation), so expecting this revision excludes one
      // created since the listing.
      await this.store.delete(KINDS.tenant, name, { expectRevision: t.revision });
    });
  }

  /** Creates a project, carving `limits` from its tenant's; QUOTA_EXCEEDED (naming the key) when they overdraw. */
  async createProject(tenant: string, name: string, limits: Limits = []): Promise<Project> {
    const own = normalizeLimits(limits);
    const key = projectKey(tenant, name);
    return casLoop(`project ${key}`, async () => {
      const t = await must<TenantRecord>(this.store, KINDS.tenant, tenant, tenantMissing(tenant));
      if (await this.store.get(KINDS.project, key))
        throw new BosonError('NAME_IN_USE', `project ${key} already exists`, { details: { tenant, project: name } });
      checkCarve(t.value, t.value.allocated, own, 'cannot carve');
      const rec: ProjectRecord = { tenant, name, limits: own, createdAt: now() };
      const usage: UsageRecord = { reservations: {}, used: [] };
      await this.store.commit([
        {
          op: 'put',
          kind: KINDS.tenant,
          key: tenant,
          value: { ...t.value, allocated: addItems(t.value.allocated, own) },
          expectRevision: t.revision,
        },
        { op: 'put', kind: KINDS.project, key, value: rec, expectRevision: 0 },
        { op: 'put', kind: KINDS.usage, key, value: usage, expectRevision: 0 },
      ]);
      return { ...rec, limits: effectiveLimits(t.value, rec), usage: [] };
    });
  }

  /** A tenant's projects, with their limits and usage. */
  async listProjects(tenant: string): Promise<Project[]> {
    const t = await this.getTenantRecord(tenant);
    const [projects, usages] = await Promise.all([
      this.store.list<ProjectRecord>(KINDS.project, { prefix: `${tenant}/` }),
      this.store.list<UsageRecord>(KINDS.usage, { prefix: `${tenant}/` }),
    ]);
    const used = new Map(usages.map((u) => [u.key, u.value.used]));
    return projects.map((p) => ({ ...p.value, limits: effectiveLimits(t, p.value), usage: used.get(p.key) ?? [] }));
  }

  async getProject(tenant: string, name: string): Promise<Project> {
    const t = await this.getTenantRecord(tenant);
    const key = projectKey(tenant, name);
    const p = await must<ProjectRecord>(this.store, KINDS.project, key, projectMissing(tenant, name));
    const u = await this.store.get<UsageRecord>(KINDS.usage, key);
    return { ...p.value, limits: effectiveLimits(t, p.value), usage: u?.value.used ?? [] };
  }

  /**
   * Sets a project's limits: the tenant's allocation moves by the difference (QUOTA_EXCEEDED when it would
   * overdraw), and a limit may not go below what the project uses now.
   */
  async setProjectLimits(tenant: string, name: string, limits: Limits): Promise<Project> {
    const own = normalizeLimits(limits);
    const key = projectKey(tenant, name);
    return casLoop(`project ${key}`, async () => {
      const t = await must<TenantRecord>(this.store, KINDS.tenant, tenant, tenantMissing(tenant));
      const p = await must<ProjectRecord>(this.store, KINDS.project, key, projectMissing(tenant, name));
      const u = await must<UsageRecord>(this.store, KINDS.usage, key, projectMissing(tenant, name));
      const others = addItems(t.value.allocated, p.value.limits, -1);
      checkCarve(t.value, others, own, 'cannot carve');
      const updated: ProjectRecord = { ...p.value, limits: own };
      const below = shortfall(effectiveLimits(t.value, updated), [], u.value.used);
      if (below) throw quotaError(key, 'project', below, 'already uses');
      await this.store.commit([
        { op: 'put', kind: KINDS.tenant, key: tenant, value: { ...t.value, allocated: addItems(others, own) }, expectRevision: t.revision },
        { op: 'put', kind: KINDS.project, key, value: updated, expectRevision: p.revision },
        { op: 'check', kind: KINDS.usage, key, expectRevision: u.revision },
      ]);
      return { ...updated, limits: effectiveLimits(t.value, updated), usage: u.value.used };
    });
  }

  /** Removes a project that holds no reservation, giving its limits back to the tenant; PROJECT_IN_USE otherwise. */
  async deleteProject(tenant: string, name: string): Promise<void> {
    const key = projectKey(tenant, name);
    await casLoop(`project ${key}`, async () => {
      const t = await must<TenantRecord>(this.store, KINDS.tenant, tenant, tenantMissing(tenant));
      const p = await must<ProjectRecord>(this.store, KINDS.project, key, projectMissing(tenant, name));
      const u = await this.store.get<UsageRecord>(KINDS.usage, key);
      const held = Object.keys(u?.value.reservations ?? {});
      if (held.length > 0)
        throw new BosonError('PROJECT_IN_USE', `project ${key} still holds ${held.length} reservation(s) of quota`, {
          details: { tenant, project: name, reservations: held.length },
        });
      const ops: StoreOp[] = [
        {
          op: 'put',
          kind: KINDS.tenant,
          key: tenant,
          value: { ...t.value, allocated: addItems(t.value.allocated, p.value.limits, -1) },
          expectRevision: t.revision,
        },
        { op: 'delete', kind: KINDS.project, key, expectRevision: p.revision },
      ];
      if (u) ops.push({ op: 'delete', kind: KINDS.usage, key, expectRevision: u.revision });
      await this.store.commit(ops);
    });
  }

  /**
   * Reserves `cost` in a project's quota, exactly under concurrency: the usage record is compared and swapped, so
   * of two reservations racing for the last unit one commits and the other reads again and gets QUOTA_EXCEEDED
   * (naming the key), with nothing written. `id` makes it idempotent (reserving an id again is a no-op); returns
   * the reservation id, which `release` takes.
   */
  async reserve(tenant: string, project: string, cost: Limits, id: string = randomBytes(8).toString('hex')): Promise<string> {
    const key = projectKey(tenant, project);
    const want = normalizeLimits(cost);
    return casLoop(`quota of ${key}`, async () => {
      const [t, p, u] = await Promise.all([
        must<TenantRecord>(this.store, KINDS.tenant, tenant, tenantMissing(tenant)),
        must<ProjectRecord>(this.store, KINDS.project, key, projectMissing(tenant, project)),
        must<UsageRecord>(this.store, KINDS.usage, key, projectMissing(tenant, project)),
      ]);
      if (u.value.reservations[id]) return id;
      const s = shortfall(effectiveLimits(t.value, p.value), u.value.used, want);
      if (s) throw quotaError(key, 'project', s);
      const next: UsageRecord = { reservations: { ...u.value.reservations, [id]: want }, used: addItems(u.value.used, want) };
      await this.store.commit([
        { op: 'check', kind: KINDS.project, key, expectRevision: p.revision },
        { op: 'put', kind: KINDS.usage, key, value: next, expectRevision: u.revision },
      ]);
      return id;
    });
  }

  /** Releases a reservation; false when it was not held (released before: release is idempotent). */
  async release(tenant: string, project: string, id: string): Promise<boolean> {
    const key = projectKey(tenant, project);
    return casLoop(`quota of ${key}`, async () => {
      const u = await must<UsageRecord>(this.store, KINDS.usage, key, projectMissing(tenant, project));
      const held = u.value.reservations[id];
      if (!held) return false;
      const reservations = { ...u.value.reservations };
      delete reservations[id];
      await this.store.put(KINDS.usage, key, { reservations, used: addItems(u.value.used, held, -1) } satisfies UsageRecord, {
        expectRevision: u.revision,
      });
      return true;
    });
  }

  private async getTenantRecord(tenant: string): Promise<TenantRecord> {
    return (await must<TenantRecord>(this.store, KINDS.tenant, tenant, tenantMissing(tenant))).value;
  }
}
