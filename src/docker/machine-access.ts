/**
 * What the Docker personality takes from a machine. Containers and execs go through the port (`MachineContainers`,
 * every call with a RequestContext); the rest is not in the port yet (issue 10), so it is reached here, on the
 * runtime, and nowhere else in src/docker. Each member of MachineExtras is one such reach-in, to become a port call:
 *
 * - `images`: the image store (list, resolve, pull, tag, remove, prune): the port has an Image schema but no calls.
 * - `volumes`, `volumeUsers`: the volume manager and which containers use a volume (usage, disk paths).
 * - `networks`: the network manager (list, get, create, remove); `networkLookup`: the networks by name or id, as the
 *   container documents show them (name, id, prefix length).
 * - `reconfigure`: a container's network, aliases and static address while it is not running, and its restart policy
 *   (network connect/disconnect and update).
 * - `onEvent`, `eventListeners`, `pastEvents`: the runtime's event emitter and its event log.
 * - `isLive`: whether this runtime holds the container's micro-VM now (stdin is held back until it does).
 */
import type { ImageStore } from '../image/index.ts';
import { lookupOf, type NetworkLookup } from './containers.ts';
import {
  type Container,
  type RestartPolicy,
  type MachineContainers,
  type MachineEvent,
  type MachineRuntime,
  type NetworkManager,
  type VolumeManager,
} from '../machine/index.ts';

/** The image store calls the Docker API makes. */
export type DockerImages = Pick<ImageStore, 'list' | 'resolve' | 'pull' | 'tag' | 'remove' | 'prune'>;
/** The volume calls the Docker API makes. */
export type DockerVolumes = Pick<VolumeManager, 'list' | 'get' | 'create' | 'remove' | 'usage' | 'diskPath'>;
/** The network calls the Docker API makes. */
export type DockerNetworks = Pick<NetworkManager, 'list' | 'get' | 'create' | 'remove'>;

/** What `reconfigure` changes (absent: unchanged; a network replaces the aliases and address too). */
export interface ContainerChange {
  network?: string;
  aliases?: string[];
  ipv4Address?: string | null;
  /** Legacy links (replace the old ones when given and not empty). */
  links?: Array<{ container: string; alias: string }>;
  restartPolicy?: RestartPolicy;
}

/** Everything the Docker API needs that the port does not offer yet. */
export interface MachineExtras {
  readonly images: DockerImages;
  readonly volumes: DockerVolumes;
  readonly networks: DockerNetworks;
  /** The networks by name, id or unique id prefix, read once (finds nothing where the runtime has no networking). */
  networkLookup(): Promise<NetworkLookup>;
  /** Changes a container after create: its network (with aliases and static address) while it is not running, its restart policy. */
  reconfigure(id: string, change: ContainerChange): Promise<Container>;
  /** Ids of the containers that mount volume `name`. */
  volumeUsers(name: string): Promise<string[]>;
  /** Subscribes to the machine's events; returns the unsubscribe function. */
  onEvent(listener: (e: MachineEvent) => void): () => void;
  /** How many event subscribers there are (docker info's NEventsListener). */
  eventListeners(): number;
  /** Logged events after `afterSeq`, within [sinceNs, untilNs]. */
  pastEvents(afterSeq: number, sinceNs?: bigint, untilNs?: bigint): MachineEvent[];
  /** True while this runtime holds the container's running micro-VM. */
  isLive(id: string): boolean;
}

/** The machine as the Docker API sees it: the port's container calls, and the extras. */
export interface DockerMachine {
  readonly containers: MachineContainers;
  readonly extras: MachineExtras;
}

/** The Docker API's view of one runtime. The only place in src/docker that touches the runtime's members. */
export function machineAccess(runtime: MachineRuntime): DockerMachine {
  const extras: MachineExtras = {
    images: runtime.images,
    volumes: runtime.volumes,
    get networks() {
      return runtime.networks;
    },
    networkLookup: async () =>
      lookupOf(
        await Promise.resolve()
          .then(() => runtime.networks.list())
          .catch(() => []),
      ),
    reconfigure: (id, change) => runtime.reconfigure(id, change),
    volumeUsers: (name) => runtime.volumeUsers(name),
    onEvent: (listener) => {
      runtime.events.on('event', listener);
      return () => void runtime.events.off('event', listener);
    },
    eventListeners: () => runtime.events.listenerCount('event'),
    pastEvents: (afterSeq, sinceNs, untilNs) => runtime.pastEvents(afterSeq, sinceNs, untilNs),
    isLive: (id) => runtime.liveIds().has(id),
  };
  return { containers: runtime, extras };
}
