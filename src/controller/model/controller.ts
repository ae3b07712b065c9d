/**
 * The controller's model in one object: tenants and projects with their quota, flavors, users and tokens, and
 * tasks, all over one AsyncStateStore (SQLite or memory today, etcd next), holding nothing in process memory that
 * another replica would need. Operations that outlive a request (removing a project or a tenant, later creating
 * containers and draining machines) are Tasks, leased by the replica that runs them (see tasks.ts).
 */
import { BosonError, isBosonError, silentLogger, type AsyncStateStore, type ErrorCode, type Logger } from '../../common/index.ts';
import { Flavors } from './flavors.ts';
import { ADMIN_USER, Identity } from './identity.ts';
import { Tasks, type TaskOptions } from './tasks.ts';
import { Tenants } from './tenants.ts';
import type { Task } from './schemas.ts';

/** The tenant and project every controller has from its first start (the single-host user's). */
export const DEFAULT_TENANT = 'default';
export const DEFAULT_PROJECT = 'default';

/** The controller's model. */
export class Controller {
  readonly tenants: Tenants;
  readonly identity: Identity;
  readonly flavors: Flavors;
  readonly tasks: Tasks;

  constructor(
    readonly store: AsyncStateStore,
    readonly log: Logger = silentLogger,
    taskOptions: TaskOptions = {},
  ) {
    this.tenants = new Tenants(store);
    this.identity = new Identity(store);
    this.flavors = new Flavors(store);
    this.tasks = new Tasks(store, log.child({ component: 'tasks' }), taskOptions);
    // Removals are resumed by another replica when their runner dies: each step is idempotent (what is gone
    // already counts as removed).
    this.tasks.define('project.delete', {
      onRunnerDied: 'resume',
      run: async (task, step) => {
        const { tenant, project } = task.params as { tenant: string; project: string };
        await step('remove project', () => gone(this.tenants.deleteProject(tenant, project), 'PROJECT_NOT_FOUND', 'TENANT_NOT_FOUND'));
        await step('revoke project tokens', () => this.identity.deleteProjectTokens(tenant, project));
      },
    });
    this.tasks.define('tenant.delete', {
      onRunnerDied: 'resume',
      run: async (task, step) => {
        const { tenant } = task.params as { tenant: string };
        await step('remove tenant', () => gone(this.tenants.deleteTenant(tenant), 'TENANT_NOT_FOUND'));
        await step('remove users and tokens', () => this.identity.deleteTenantIdentities(tenant));
      },
    });
  }

  /** Starts this replica's background work: the task sweep (taking over tasks of dead replicas, pruning old ones). */
  start(): void {
    this.tasks.startSweeper();
  }

  /** Stops this replica's background work (its running tasks are taken over by another replica's sweep). */
  async close(): Promise<void> {
    await this.tasks.close();
  }

  /**
   * Makes what every controller starts with, when missing: the system user `admin` (the local socket's principal),
   * and the default tenant with its default project (unlimited).
   */
  async bootstrap(): Promise<void> {
    const ignoreTaken = (err: unknown): void => {
      if (!(err instanceof BosonError && err.code === 'NAME_IN_USE')) throw err;
    };
    await this.identity.createUser(ADMIN_USER).catch(ignoreTaken);
    await this.tenants.createTenant(DEFAULT_TENANT).catch(ignoreTaken);
    await this.tenants.createProject(DEFAULT_TENANT, DEFAULT_PROJECT).catch(ignoreTaken);
  }

  /**
   * Removes a project as a task: checked first (NotFound, PROJECT_IN_USE answer at once), then the task removes it
   * (giving its limits back to the tenant) and the tokens granted on it.
   */
  async deleteProject(tenant: string, project: string): Promise<Task> {
    const p = await this.tenants.getProject(tenant, project);
    if (p.usage.some((u) => u.value > 0))
      throw new BosonError('PROJECT_IN_USE', `project ${tenant}/${project} still uses quota`, { details: { tenant, project } });
    return this.tasks.start({
      kind: 'project.delete',
      target: `${tenant}/${project}`,
      tenant,
      project,
      steps: ['remove project', 'revoke project tokens'],
      params: { tenant, project },
    });
  }

  /** Removes a tenant without projects as a task (TENANT_IN_USE at once when it has some), with its users and tokens. */
  async deleteTenant(tenant: string): Promise<Task> {
    const projects = await this.tenants.listProjects(tenant);
    if (projects.length > 0)
      throw new BosonError(
        'TENANT_IN_USE',
        `tenant ${tenant} still has ${projects.length} project(s): ${projects.map((p) => p.name).join(', ')}`,
        {
          details: { tenant, projects: projects.map((p) => p.name) },
        },
      );
    return this.tasks.start({
      kind: 'tenant.delete',
      target: tenant,
      tenant,
      steps: ['remove tenant', 'remove users and tokens'],
      params: { tenant },
    });
  }
}

/** Resolves when `p` does, or when it fails with one of `codes` (what it removes is gone already). */
async function gone(p: Promise<void>, ...codes: ErrorCode[]): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (!isBosonError(err, ...codes)) throw err;
  }
}
