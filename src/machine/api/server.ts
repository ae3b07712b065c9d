/**
 * The machine daemon's REST API (fastify), one plugin per resource, each route with its request and response
 * schemas from the port, so that /openapi.json documents every route: containers.ts, execs.ts, images.ts,
 * volumes.ts, networks.ts, system.ts (healthz, metrics, openapi, events) and upgrades.ts (attach, exec start, the
 * one-request exec and run, which upgrade the connection). Errors leave as problem JSON (RFC 9457) with the
 * catalogue's `code`, translated by problemOf (routing.ts) and nowhere else.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { BosonError, streamFrame, silentLogger, type Logger } from '../../common/index.ts';
import type { Machine, MachineContainers, MachineEvents, MachineImages, MachineNetworks, MachineVolumes } from '../port/machine.ts';
import { containerRoutes } from './containers.ts';
import { execRoutes } from './execs.ts';
import { imageRoutes } from './images.ts';
import { networkRoutes } from './networks.ts';
import { contextOf, problemOf } from './routing.ts';
import { systemRoutes, type MetricsSource } from './system.ts';
import { handleUpgrade, upgradeRoutes, type UpgradeContainers } from './upgrades.ts';
import { volumeRoutes } from './volumes.ts';

export { problemOf } from './routing.ts';
export { execStatusFrame } from './upgrades.ts';

/** Docker's stream frame (one writer for every edge: src/common/stream-frame.ts). */
export { streamFrame };

/** What the API serves: the machine's halves of the port, and what /metrics reads (the runtime is all of it). */
export type ApiMachine = MachineContainers &
  UpgradeContainers &
  MetricsSource & {
    imageService: MachineImages;
    volumeService: MachineVolumes;
    networkService: MachineNetworks;
    eventService: MachineEvents;
  };

/** Builds the fastify app for `machine`. */
export async function buildApi(machine: ApiMachine, log: Logger = silentLogger): Promise<FastifyInstance> {
  // Unknown fields are refused (fastify's default would silently drop them).
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024, ajv: { customOptions: { removeAdditional: false } } });
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'Boson machine API', version: '1' },
      tags: [{ name: 'containers' }, { name: 'exec' }, { name: 'images' }, { name: 'volumes' }, { name: 'networks' }, { name: 'system' }],
    },
  });

  // One line per request at debug level, with the request id that the request context carries too.
  app.addHook('onResponse', async (req, reply) => {
    log.debug({ reqId: req.id, method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  });

  app.setErrorHandler((err, req, reply) => {
    const e = err as { validation?: unknown; statusCode?: number; message: string };
    const problem =
      e.validation !== undefined || (e.statusCode !== undefined && e.statusCode < 500 && !(err instanceof BosonError))
        ? problemOf(new BosonError('INVALID_ARGUMENT', e.message))
        : problemOf(err);
    if (problem.status >= 500)
      log.error({ reqId: req.id, method: req.method, url: req.url, code: problem.body.code }, String(problem.body.detail));
    // A body over bodyLimit is refused as INVALID_ARGUMENT, with HTTP's own status for it.
    const status = e.statusCode === 413 && !(err instanceof BosonError) ? 413 : problem.status;
    void reply
      .code(status)
      .type('application/problem+json')
      .send({ ...problem.body, status });
  });

  await app.register(systemRoutes(machine, machine.eventService, contextOf));
  await app.register(containerRoutes(machine, contextOf));
  await app.register(execRoutes(machine, contextOf));
  await app.register(upgradeRoutes());
  await app.register(imageRoutes(machine.imageService, contextOf));
  await app.register(volumeRoutes(machine.volumeService, contextOf));
  await app.register(networkRoutes(machine.networkService, contextOf));

  // Connection upgrades: attach, exec start, the one-request exec and run.
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    void handleUpgrade(machine, contextOf, req, socket, head);
  });
  return app;
}

/**
 * The API over any port Machine (a controller's project, whose containers the fleet places): the same routes and
 * upgrades as a daemon's, with no runtime metrics of its own (/metrics shows no VMs). Ready to take requests
 * emitted on its `server` (it listens nowhere itself).
 */
export async function buildPortApi(machine: Machine, log: Logger = silentLogger): Promise<FastifyInstance> {
  const extra = {
    imageService: machine.images,
    volumeService: machine.volumes,
    networkService: machine.networks,
    eventService: machine.events,
    metrics: { boots: [], stops: [], failures: 0 },
    liveIds: () => new Set<string>(),
    warmStats: () => null,
  };
  // The containers' own methods, with `this` still the containers (the prototype), and the rest beside them.
  const api = Object.assign(Object.create(machine.containers) as MachineContainers, extra) as ApiMachine;
  const app = await buildApi(api, log);
  await app.ready();
  return app;
}
