/**
 * A simulated machine for the controller's benchmark: the machine's real REST API (buildApi, the routes, schemas and
 * serialisation a real machine serves) over an in-memory container table instead of micro-VMs, so that what is
 * measured is the controller and the wire, not QEMU. It answers what the controller calls on the create/list/get
 * path (create, start, inspect, list, remove, /healthz); anything else is INTERNAL. One app serves any number of
 * machines: `listenAs` hands each listener's connections to it, so 1,000 machines need 1,000 unix sockets and one
 * process.
 */
import net from 'node:net';
import type { FastifyInstance } from 'fastify';
import { BosonError } from '../src/common/index.ts';
import { buildApi, type ApiMachine } from '../src/machine/api/server.ts';
import type { Container, ContainerSpec } from '../src/machine/port/index.ts';

/** The fake and its app. */
export interface FakeMachineApp {
  app: FastifyInstance;
  /** Containers held (all machines together). */
  count(): number;
  /** Serves the app on a unix socket at `path` too; returns the listener to close. */
  listenAs(path: string): Promise<net.Server>;
  close(): Promise<void>;
}

function container(id: string, spec: ContainerSpec): Container {
  return {
    id,
    name: spec.name ?? id,
    image: spec.image,
    imageId: `sha256:${'0'.repeat(64)}`,
    created: new Date().toISOString(),
    config: {
      argv: spec.process?.args ?? ['sh'],
      env: spec.process?.env ?? [],
      cwd: '/',
      user: '',
      hostname: id.slice(0, 12),
      tty: false,
      openStdin: false,
      labels: spec.labels ?? {},
    },
    resources: { memoryMiB: spec.resources?.memoryMiB ?? 256, cpus: Math.ceil(spec.resources?.cpus ?? 1) },
    autoRemove: false,
    restartPolicy: spec.restartPolicy ?? { name: 'no', maximumRetryCount: 0 },
    restartCount: 0,
    state: 'created',
    vmPid: null,
    exitCode: null,
    startedAt: null,
    finishedAt: null,
    error: null,
    mounts: [],
    network: spec.network ?? 'bridge',
    ports: [],
    endpoint: null,
  };
}

/** Builds the fake machine's app (not listening yet). */
export async function fakeMachineApp(): Promise<FakeMachineApp> {
  const table = new Map<string, Container>();
  let seq = 0;
  const get = (ref: string): Container => {
    const c = table.get(ref);
    if (!c) throw new BosonError('CONTAINER_NOT_FOUND', `no such container: ${ref}`);
    return c;
  };
  const impl: Partial<ApiMachine> = {
    create: async (_ctx, spec) => {
      const id = (++seq).toString(16).padStart(64, '0');
      const c = container(id, spec);
      table.set(id, c);
      return c;
    },
    start: async (_ctx, ref) => {
      const c = get(ref);
      table.set(ref, { ...c, state: 'running', startedAt: new Date().toISOString(), vmPid: 1 });
    },
    inspect: async (_ctx, ref) => get(ref),
    list: async () => [...table.values()],
    remove: async (_ctx, ref) => {
      get(ref);
      table.delete(ref);
    },
    liveIds: () => new Set(table.keys()),
    warmStats: () => null,
  };
  const machine = new Proxy(impl, {
    get(target, prop) {
      if (prop in target) return target[prop as keyof ApiMachine];
      if (prop === 'then') return undefined;
      return () => {
        throw new BosonError('INTERNAL', `the benchmark's fake machine does not do ${String(prop)}`);
      };
    },
  }) as ApiMachine;
  const app = await buildApi(machine);
  await app.ready();
  return {
    app,
    count: () => table.size,
    listenAs: async (path) => {
      const server = net.createServer((socket) => app.server.emit('connection', socket));
      await new Promise<void>((resolve, reject) => server.once('error', reject).listen(path, resolve));
      return server;
    },
    close: () => app.close(),
  };
}
