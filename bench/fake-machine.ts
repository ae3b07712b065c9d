/**
 * A simulated machine for the controller's benchmark: the machine's real REST API (buildApi, the routes, schemas and
 * serialisation a real machine serves) over an in-memory container table instead of micro-VMs, so that what is
 * measured is the controller and the wire, not QEMU. It answers what the controller calls on the create/list/get
 * path (create, start, inspect, list, remove, /healthz), the image list its health checks ask for (`images`, empty
 * unless a test fills it) and pulls (which add an empty image of that name at once); anything else is INTERNAL. One app serves any number of
 * machines: `listenAs` hands each listener's connections to it, so 1,000 machines need 1,000 unix sockets and one
 * process.
 */
import net from 'node:net';
import type { FastifyInstance } from 'fastify';
import { createHash } from 'node:crypto';
import { BosonError } from '../src/common/index.ts';
import { remoteReference } from '../src/image/index.ts';
import { buildApi, type ApiMachine } from '../src/machine/api/server.ts';
import type { Container, ContainerSpec, Image, MachineImages } from '../src/machine/port/index.ts';

/** The fake and its app. */
export interface FakeMachineApp {
  app: FastifyInstance;
  /** Containers held (all machines together). */
  count(): number;
  /** The images GET /v1/images answers with (all machines together; a test may change it). */
  images: Image[];
  /** Serves the app on a unix socket at `path` too; returns the listener to close (which drops its connections too). */
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

/** An image as a machine lists it, named `references` (normalised names), with no layers; its id from its names. */
export function fakeImage(references: string[]): Image {
  const id = `sha256:${createHash('sha256').update(references.join(',')).digest('hex')}`;
  return {
    id,
    manifestDigest: id,
    references,
    config: { entrypoint: null, cmd: ['sh'], env: [], workingDir: '/', user: '', volumes: [], labels: {} },
    layers: [],
    size: 0,
    created: null,
    architecture: 'amd64',
    os: 'linux',
  };
}

/** Builds the fake machine's app (not listening yet). */
export async function fakeMachineApp(): Promise<FakeMachineApp> {
  const table = new Map<string, Container>();
  const images: Image[] = [];
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
    imageService: {
      list: async () => images,
      pull: async (_ctx, req) => {
        const reference = remoteReference(req.reference).canonical;
        let image = images.find((i) => i.references.includes(reference));
        const upToDate = image !== undefined;
        if (!image) images.push((image = fakeImage([reference])));
        return { image, reference, digest: image.manifestDigest, upToDate };
      },
    } as Partial<MachineImages> as MachineImages,
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
    images,
    listenAs: async (path) => {
      const sockets = new Set<net.Socket>();
      const server = net.createServer((socket) => {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
        app.server.emit('connection', socket);
      });
      await new Promise<void>((resolve, reject) => server.once('error', reject).listen(path, resolve));
      // A machine that goes away takes its connections with it (and close() need not wait for idle keep-alives).
      const close = server.close.bind(server);
      server.close = (cb) => {
        for (const socket of sockets) socket.destroy();
        return close(cb);
      };
      return server;
    },
    close: () => app.close(),
  };
}
