/**
 * Public surface of the fleet: machines that join a controller (join tokens, the fleet CA, READY / MAINTENANCE /
 * LOST by health checks), and containers of projects placed on them. `openFleet` puts the pieces together over one
 * store; everything it holds in memory is a cache or a timer that another replica would rebuild from the store.
 */
import type { FastifyPluginAsync } from 'fastify';
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { Machine } from '../../machine/port/index.ts';
import { silentLogger, type AsyncStateStore, type Logger } from '../../common/index.ts';
import type { Tenants } from '../model/tenants.ts';
import { FleetCa } from './ca.ts';
import { FleetContainers } from './containers.ts';
import { Fleet } from './fleet.ts';
import { HealthChecker, MachineClients } from './machines.ts';
import { CheckReplicas } from './replicas.ts';
import { Leaser } from '../model/lease.ts';
import { containerRoutes, dockerCertRoutes, machineRoutes } from './routes.ts';
import { ProjectMachine } from './project-machine.ts';
import { projectMachineRoutes, type ProjectMachineServers } from './project-machine-routes.ts';

export { FleetCa, makeKeyPair, fingerprint, CONTROLLER_IDENTITY, type FleetCaRecord } from './ca.ts';
export {
  Fleet,
  parseJoinToken,
  splitAddress,
  HEALTH_KIND,
  JOIN_TOKEN_KIND,
  type FleetMachineRecord,
  type HealthRecord,
  type MachineInfo,
  type JoinRequest,
  type JoinResponse,
  type JoinTokenCreated,
  type FleetOptions,
} from './fleet.ts';
export {
  FleetContainers,
  containerCost,
  specResources,
  CONTAINER_KIND,
  LABELS,
  parseLabelFilters,
  matchesLabels,
  WAIT_RECHECK_MS,
  type ContainerRecord,
  type FleetContainer,
  type LabelFilter,
  type WaitState,
} from './containers.ts';
export { ContainerLeases, LEASE_KIND, LEASE_NONCE_HEADER, LEASE_TTL, type LeaseInfo, type LeaseGranted } from './leases.ts';
export { HealthChecker, MachineClients } from './machines.ts';
export { CheckReplicas, CHECK_REPLICA_KIND } from './replicas.ts';
export { machineRoutes, containerRoutes, dockerCertRoutes, fleetRouteEntries } from './routes.ts';
export { ProjectMachine, EXEC_KIND } from './project-machine.ts';
export {
  projectMachineRoutes,
  projectMachineUpgrades,
  PROJECT_MACHINE_ROUTE,
  type ProjectMachineServers,
} from './project-machine-routes.ts';

/** How a fleet is run. */
export interface FleetSettings {
  /** A machine not reached for this long is LOST. */
  lostAfterMs: number;
  /** How often every machine is checked (0: not in the background; call checker.checkAll()). */
  checkIntervalMs: number;
  /** How long one check waits for an answer. */
  checkTimeoutMs: number;
  /** The CA of the controller's TCP endpoint (PEM), pinned in join tokens. */
  serverCaPem?: string;
  /** tcp://host:port of the projects' Docker endpoint, when the controller serves one (told to docker-env). */
  dockerHost?: string;
  /**
   * Builds the machine API's HTTP server over a port Machine (the composition root's buildApi): with it, the fleet
   * serves each project's machine API (project-machine-routes.ts); without it, those routes are not there.
   */
  machineApi?: (machine: Machine) => Promise<{ server: Server; close(): Promise<void> }>;
  clock?: () => number;
  log?: Logger;
  /** This replica's id in the split of the health checks (default: random; the controller passes its tasks' id). */
  replicaId?: string;
}

/** A fleet, ready to serve. */
export interface OpenFleet {
  fleet: Fleet;
  containers: FleetContainers;
  checker: HealthChecker;
  /** The CA of the client certificates of projects' Docker endpoints. */
  dockerCa: FleetCa;
  /** A project of the fleet as a port Machine (what its Docker endpoint serves). */
  projectMachine(tenant: string, project: string): ProjectMachine;
  /** The API routes to register on the controller's app. */
  routes: FastifyPluginAsync[];
  /** The HTTP server of a project's machine API (made on first use); null when the fleet has no machineApi. */
  projectMachineServers: ProjectMachineServers | null;
  close(): Promise<void>;
}

/** Opens the fleet over `store` (making its CA on first use) and starts its health checks. */
export async function openFleet(store: AsyncStateStore, tenants: Tenants, settings: FleetSettings): Promise<OpenFleet> {
  const ca = await FleetCa.ensure(store);
  const fleet = new Fleet(store, ca, {
    lostAfterMs: settings.lostAfterMs,
    ...(settings.serverCaPem ? { serverCaPem: settings.serverCaPem } : {}),
    ...(settings.clock ? { clock: settings.clock } : {}),
  });
  const clients = new MachineClients(fleet);
  const dockerCa = await FleetCa.ensure(store, 'docker');
  const containers = await FleetContainers.open(store, tenants, clients);
  const log = (settings.log ?? silentLogger).child({ component: 'fleet' });
  // Replicas split the checks; a replica's presence lasts three rounds (at most half of lostAfterMs, at least two
  // rounds), so that a dead replica's machines are checked again well before they could go LOST.
  const interval = settings.checkIntervalMs;
  const presenceMs = Math.max(2 * interval, Math.min(3 * interval, Math.floor(settings.lostAfterMs / 2)));
  const replicas = new CheckReplicas(
    store,
    new Leaser(settings.replicaId ?? `r-${randomBytes(6).toString('hex')}`, presenceMs, settings.clock),
  );
  const checker = new HealthChecker(fleet, {
    replicas,
    intervalMs: settings.checkIntervalMs,
    timeoutMs: settings.checkTimeoutMs,
    log,
    whileLost: async (id) => {
      for (const r of await containers.rescheduleFrom(id))
        if (r.error)
          log.warn({ container: r.id, from: r.from, err: r.error }, 'cannot place a container of a LOST machine again (next round)');
        else log.info({ container: r.id, from: r.from, to: r.to }, 'placed a container of a LOST machine again');
    },
    onBack: async (id) => {
      const removed = await containers.removeOrphans(id);
      if (removed.length > 0)
        log.info({ machine: id, containers: removed }, 'removed containers placed elsewhere while the machine was LOST');
    },
  });
  if (settings.checkIntervalMs > 0) checker.start();
  const projectMachine = (tenant: string, project: string): ProjectMachine =>
    new ProjectMachine(store, fleet, containers, clients, tenant, project);
  const apis = new Map<string, Promise<{ server: Server; close(): Promise<void> }>>();
  const machineApi = settings.machineApi;
  const projectMachineServers: ProjectMachineServers | null = machineApi
    ? async (tenant, project) => {
        const key = JSON.stringify([tenant, project]);
        let api = apis.get(key);
        if (!api) {
          api = machineApi(projectMachine(tenant, project));
          api.catch(() => apis.delete(key));
          apis.set(key, api);
        }
        return (await api).server;
      }
    : null;
  return {
    fleet,
    containers,
    checker,
    dockerCa,
    projectMachine,
    routes: [
      machineRoutes(fleet),
      containerRoutes(containers),
      dockerCertRoutes(dockerCa, settings.serverCaPem, settings.dockerHost),
      ...(projectMachineServers ? [projectMachineRoutes(projectMachineServers)] : []),
    ],
    projectMachineServers,
    close: async () => {
      await checker.stop();
      containers.close();
      for (const api of apis.values()) await (await api.catch(() => null))?.close();
    },
  };
}
export { joinController, type JoinOptions, type Joined } from './join.ts';
