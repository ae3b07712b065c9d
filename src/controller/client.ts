/**
 * The typed client of a controller's REST API, for the CLI (and, next, for machines that join): over the local UNIX
 * socket (`unix:///path`, where no token is needed on the controller's own host), or TCP (`https://host:port` with
 * TLS and a client certificate, as the controller's TCP endpoints require; `http://` on loopback for an
 * --insecure-tcp controller), with a bearer token. Problem JSON answers become the typed BosonErrors the controller
 * raised; a controller nobody answers for is CONTROLLER_UNAVAILABLE.
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { BosonError, errorFromProblem } from '../common/index.ts';
import { MachineClient } from '../machine/client/index.ts';
import type { Flavor, Grant, Limits, Principal, Project, Task, Tenant, TokenCreated, TokenInfo, User } from './model/schemas.ts';
import type { FleetContainer, WaitState } from './fleet/containers.ts';
import { LEASE_NONCE_HEADER, type LeaseGranted, type LeaseInfo } from './fleet/leases.ts';

/** The path under which a controller serves a project's machine API. */
export function projectMachinePath(tenant: string, project: string): string {
  return `/v1/tenants/${encodeURIComponent(tenant)}/projects/${encodeURIComponent(project)}/machine`;
}

/** Where a controller is and how to reach it. */
export interface ControllerTarget {
  /** unix:///path/controller.sock, https://host:port or http://127.0.0.1:port. */
  url: string;
  token?: string;
  /** TLS material for https (PEM contents). */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
}

/** A controller's REST API, typed. */
export class ControllerClient {
  private readonly base: { socketPath?: string; host?: string; port?: number; secure: boolean };

  constructor(readonly target: ControllerTarget) {
    const url = target.url;
    if (url.startsWith('unix://')) this.base = { socketPath: url.slice('unix://'.length), secure: false };
    else if (url.startsWith('/')) this.base = { socketPath: url, secure: false };
    else {
      let u: URL;
      try {
        u = new URL(url);
      } catch {
        throw new BosonError(
          'INVALID_ARGUMENT',
          `invalid controller address ${JSON.stringify(url)}: use unix:///path, https://host:port or http://127.0.0.1:port`,
        );
      }
      if (u.protocol !== 'https:' && u.protocol !== 'http:')
        throw new BosonError('INVALID_ARGUMENT', `invalid controller address ${url}: use unix://, https:// or http://`);
      const secure = u.protocol === 'https:';
      this.base = { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || (secure ? 443 : 80)), secure };
    }
  }

  private unavailable(cause: unknown): BosonError {
    const code = String((cause as { code?: string }).code ?? '');
    if (/CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY|EPROTO/.test(code))
      return new BosonError(
        'CONTROLLER_UNAVAILABLE',
        `TLS with the controller at ${this.target.url} failed: ${(cause as Error).message} (give its CA and a client certificate it trusts: boson context create --tlscacert --tlscert --tlskey; default <config dir>/tls from boson tls init)`,
        { cause },
      );
    return new BosonError(
      'CONTROLLER_UNAVAILABLE',
      `cannot reach the Boson controller at ${this.target.url}: ${(cause as Error).message} (is \`boson controller\` or \`boson up --controller\` running?)`,
      { cause },
    );
  }

  /** Sends a request; resolves with the raw response. */
  private raw(method: string, urlPath: string, body?: unknown, headers: Record<string, string> = {}): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const h: http.OutgoingHttpHeaders = { ...headers };
      if (payload) Object.assign(h, { 'Content-Type': 'application/json', 'Content-Length': payload.length });
      if (this.target.token) h.Authorization = `Bearer ${this.target.token}`;
      const opts: https.RequestOptions = { method, path: urlPath, headers: h };
      if (this.base.socketPath) opts.socketPath = this.base.socketPath;
      else Object.assign(opts, { host: this.base.host, port: this.base.port });
      if (this.base.secure)
        Object.assign(opts, { ca: this.target.tls?.ca, cert: this.target.tls?.cert, key: this.target.tls?.key, minVersion: 'TLSv1.2' });
      const req = (this.base.secure ? https : http).request(opts, resolve);
      req.on('error', (err) => reject(this.unavailable(err)));
      req.end(payload);
    });
  }

  /** Sends a request and returns its JSON answer (undefined for 204); the typed error for 4xx/5xx. */
  async request<T>(
    method: string,
    urlPath: string,
    body?: unknown,
    opts: { idempotencyKey?: string; headers?: Record<string, string> } = {},
  ): Promise<T> {
    const res = await this.raw(method, urlPath, body, {
      ...(opts.headers ?? {}),
      ...(opts.idempotencyKey ? { 'Idempotency-Key': opts.idempotencyKey } : {}),
    });
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    if ((res.statusCode ?? 500) >= 400) throw errorFromProblem(res.statusCode ?? 500, text, 'the controller');
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /**
   * A client of a project's machine API on this controller (the project as one machine: containers created there are
   * placed on the fleet, every other call goes to the machine that holds the container), so that the machine's CLI
   * and RemoteMachine work through the controller unchanged.
   */
  projectMachine(tenant: string, project: string): MachineClient {
    return MachineClient.through({
      name: this.target.url,
      ...(this.base.socketPath ? { socketPath: this.base.socketPath } : { host: this.base.host, port: this.base.port }),
      ...(this.base.secure ? { tls: this.target.tls ?? {} } : {}),
      prefix: projectMachinePath(tenant, project),
      headers: this.target.token ? { Authorization: `Bearer ${this.target.token}` } : {},
    });
  }

  whoami(): Promise<Principal> {
    return this.request('GET', '/v1/whoami');
  }
  listTenants(): Promise<Tenant[]> {
    return this.request('GET', '/v1/tenants');
  }
  createTenant(name: string, limits: Limits): Promise<Tenant> {
    return this.request('POST', '/v1/tenants', { name, limits });
  }
  getTenant(name: string): Promise<Tenant> {
    return this.request('GET', `/v1/tenants/${enc(name)}`);
  }
  setTenantLimits(name: string, limits: Limits): Promise<Tenant> {
    return this.request('PUT', `/v1/tenants/${enc(name)}/limits`, { limits });
  }
  deleteTenant(name: string): Promise<Task> {
    return this.request('DELETE', `/v1/tenants/${enc(name)}`);
  }
  listProjects(tenant: string): Promise<Project[]> {
    return this.request('GET', `/v1/tenants/${enc(tenant)}/projects`);
  }
  createProject(tenant: string, name: string, limits: Limits): Promise<Project> {
    return this.request('POST', `/v1/tenants/${enc(tenant)}/projects`, { name, limits });
  }
  getProject(tenant: string, name: string): Promise<Project> {
    return this.request('GET', `/v1/tenants/${enc(tenant)}/projects/${enc(name)}`);
  }
  setProjectLimits(tenant: string, name: string, limits: Limits): Promise<Project> {
    return this.request('PUT', `/v1/tenants/${enc(tenant)}/projects/${enc(name)}/limits`, { limits });
  }
  deleteProject(tenant: string, name: string): Promise<Task> {
    return this.request('DELETE', `/v1/tenants/${enc(tenant)}/projects/${enc(name)}`);
  }
  listFlavors(): Promise<Flavor[]> {
    return this.request('GET', '/v1/flavors');
  }
  createFlavor(spec: {
    name: string;
    cpus: number;
    memoryBytes: number;
    diskBytes?: number;
    kernel?: string;
    cost?: Limits;
  }): Promise<Flavor> {
    return this.request('POST', '/v1/flavors', spec);
  }
  getFlavor(name: string): Promise<Flavor> {
    return this.request('GET', `/v1/flavors/${enc(name)}`);
  }
  deleteFlavor(name: string): Promise<void> {
    return this.request('DELETE', `/v1/flavors/${enc(name)}`);
  }
  listUsers(): Promise<User[]> {
    return this.request('GET', '/v1/users');
  }
  createUser(name: string, tenant?: string): Promise<User> {
    return this.request('POST', '/v1/users', tenant === undefined ? { name } : { name, tenant });
  }
  deleteUser(name: string): Promise<void> {
    return this.request('DELETE', `/v1/users/${enc(name)}`);
  }
  listTokens(): Promise<TokenInfo[]> {
    return this.request('GET', '/v1/tokens');
  }
  createToken(req: { user?: string; grant: Grant; description?: string; ttlSeconds?: number }): Promise<TokenCreated> {
    return this.request('POST', '/v1/tokens', req);
  }
  revokeToken(id: string): Promise<void> {
    return this.request('DELETE', `/v1/tokens/${enc(id)}`);
  }
  listTasks(): Promise<Task[]> {
    return this.request('GET', '/v1/tasks');
  }
  getTask(id: string): Promise<Task> {
    return this.request('GET', `/v1/tasks/${enc(id)}`);
  }
  /** One wait request (at most 300 s, the server's bound); the task as it then is. */
  waitTask(id: string, timeoutSeconds: number): Promise<Task> {
    return this.request('GET', `/v1/tasks/${enc(id)}/wait?timeout=${Math.max(0, Math.min(300, Math.floor(timeoutSeconds)))}`);
  }
  /** A project's containers; `labels` (`k=v` or `k`) must all match. */
  listContainers(tenant: string, project: string, labels: string[] = []): Promise<FleetContainer[]> {
    const q = labels.map((l) => `label=${enc(l)}`).join('&');
    return this.request('GET', `${containersPath(tenant, project)}${q ? `?${q}` : ''}`);
  }
  /** Takes a container's lease (or extends the one `nonce` holds). */
  leaseContainer(
    tenant: string,
    project: string,
    ref: string,
    req: { ttlSeconds?: number; description?: string; nonce?: string } = {},
  ): Promise<LeaseGranted> {
    const { nonce, ...body } = req;
    return this.request('POST', `${containersPath(tenant, project)}/${enc(ref)}/lease`, body, {
      ...(nonce ? { headers: { [LEASE_NONCE_HEADER]: nonce } } : {}),
    });
  }
  getContainerLease(tenant: string, project: string, ref: string): Promise<LeaseInfo> {
    return this.request('GET', `${containersPath(tenant, project)}/${enc(ref)}/lease`);
  }
  releaseContainerLease(tenant: string, project: string, ref: string, nonce: string): Promise<void> {
    return this.request('DELETE', `${containersPath(tenant, project)}/${enc(ref)}/lease`, undefined, {
      headers: { [LEASE_NONCE_HEADER]: nonce },
    });
  }
  /** One wait request (at most 300 s); CONTAINER_WAIT_TIMEOUT when the state did not come. */
  waitContainer(
    tenant: string,
    project: string,
    ref: string,
    state: WaitState,
    timeoutSeconds: number,
  ): Promise<{ state: string; container?: FleetContainer }> {
    const t = Math.max(0, Math.min(300, Math.floor(timeoutSeconds)));
    return this.request('GET', `${containersPath(tenant, project)}/${enc(ref)}/wait?state=${state}&timeout=${t}`);
  }
}

const enc = encodeURIComponent;
const containersPath = (tenant: string, project: string): string => `/v1/tenants/${enc(tenant)}/projects/${enc(project)}/containers`;
