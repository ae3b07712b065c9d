/**
 * The network half of the machine port (MachineNetworks) over this host's NetworkManager. The composition root
 * builds it beside the runtime (which owns it). A container joins one network, named in its record: connect and
 * disconnect change that record (through `containers.setNetwork`, which the runtime does under the container's
 * lock) and are refused while the container runs, since its micro-VM's NIC is fixed at boot.
 */
import { BosonError, isBosonError } from '../common/index.ts';
import type { MachineNetworks } from './port/machine.ts';
import type {
  Network,
  NetworkConnectOptions,
  NetworkContainer,
  NetworkCreateRequest,
  NetworkInspect,
  NetworkPruneResult,
  RequestContext,
} from './port/schemas.ts';
import type { ContainerRecord } from './containers.ts';
import type { NetworkManager, NetworkRecord } from './network/index.ts';

/** What the network service needs to know of containers. */
export interface NetworkServiceContainers {
  /** Every container record. */
  list(): Promise<ContainerRecord[]>;
  /**
   * Sets the network a container joins ('none': no network), checking first that it does not run
   * (CONTAINER_RUNNING) and, given `from`, that it joins that network now (INVALID_ARGUMENT otherwise).
   */
  setNetwork(
    ref: string,
    network: string,
    check: { from?: NetworkRecord; to?: NetworkRecord },
    options?: NetworkConnectOptions,
  ): Promise<void>;
}

/** True when a container record names network `n` (by name or id). */
export function joins(record: Pick<ContainerRecord, 'network'>, n: Pick<NetworkRecord, 'id' | 'name'>): boolean {
  const asked = record.network ?? 'none';
  return asked === n.name || asked === n.id || (asked.length >= 12 && n.id.startsWith(asked));
}

/** MachineNetworks on this host (see the module comment). */
export class NetworkService implements MachineNetworks {
  /** `networks`: null where this runtime has none (embedded): every call is then refused. */
  constructor(
    private readonly manager: NetworkManager | null,
    private readonly containers: NetworkServiceContainers,
  ) {}

  /** The host's network manager; refused where there is none. */
  get networks(): NetworkManager {
    if (!this.manager)
      throw new BosonError('INVALID_ARGUMENT', 'networks, volumes and published ports are set up by the daemon: start it with boson up');
    return this.manager;
  }

  async create(_ctx: RequestContext, request: NetworkCreateRequest): Promise<Network> {
    const { name, ...options } = request;
    return this.networks.create(name, options);
  }

  async list(_ctx: RequestContext): Promise<Network[]> {
    return this.networks.list();
  }

  async inspect(_ctx: RequestContext, ref: string): Promise<NetworkInspect> {
    const n = await this.networks.get(ref);
    const containers: NetworkContainer[] = (await this.containers.list())
      .filter((r) => joins(r, n))
      .map((r) => {
        const live = r.state === 'running' && r.endpoint ? r.endpoint : null;
        return { id: r.id, name: r.name, state: r.state, address: live?.address ?? null, mac: live?.mac ?? null };
      });
    return { ...n, containers };
  }

  async remove(_ctx: RequestContext, ref: string): Promise<void> {
    await this.networks.remove(ref);
  }

  async connect(_ctx: RequestContext, ref: string, container: string, options?: NetworkConnectOptions): Promise<void> {
    const n = await this.networks.get(ref);
    await this.containers.setNetwork(container, n.name, { to: n }, options);
  }

  async disconnect(_ctx: RequestContext, ref: string, container: string): Promise<void> {
    const n = await this.networks.get(ref);
    await this.containers.setNetwork(container, 'none', { from: n });
  }

  async prune(_ctx: RequestContext): Promise<NetworkPruneResult> {
    const removed: string[] = [];
    const records = await this.containers.list();
    for (const n of await this.networks.list()) {
      if (n.builtin || records.some((r) => joins(r, n))) continue;
      try {
        await this.networks.remove(n.id);
        removed.push(n.name);
      } catch (err) {
        if (!isBosonError(err, 'NETWORK_IN_USE')) throw err;
      }
    }
    return { removed };
  }
}
