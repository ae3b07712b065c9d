/**
 * The network state in the state store: a record per network, per endpoint and per network's last lease. Only
 * the manager writes it, under its lock. It holds everything needed to rebuild the host side after a daemon
 * restart or a host reboot. (Before the store it was one JSON document, `<stateDir>/network/state.json`; one found
 * there is imported once and removed.)
 */
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { BosonError, isBosonError, type StateStore, type StoredRecord, type StoreOp } from '../../common/index.ts';
import type { NicSpec } from '../../vmm/index.ts';
import type { PortBinding } from './ports.ts';

/** A network. */
export interface NetworkRecord {
  id: string;
  name: string;
  driver: 'bridge';
  /** The Linux bridge device ('' in rootless mode, where there is none). */
  bridge: string;
  subnet: string;
  gateway: string;
  internal: boolean;
  labels: Record<string, string>;
  created: string;
  /** The predefined default network ("bridge"), which cannot be removed. */
  builtin: boolean;
}

/** A container's attachment to one network: what the VMM gets (nic) and what the guest is told. */
export interface Endpoint {
  containerId: string;
  /** The network's id. */
  network: string;
  nic: NicSpec;
  mac: string;
  address: string;
  prefixLen: number;
  gateway: string;
  /** Nameservers for the guest's /etc/resolv.conf. */
  dns: string[];
  dnsSearch: string[];
  /** Extra lines for the guest's /etc/hosts (the guest adds the localhost lines). */
  hosts: string[];
  /** Published ports with the host ports actually bound. */
  ports: PortBinding[];
}

/** An endpoint with the names it is known by on its network. */
export interface StoredEndpoint {
  endpoint: Endpoint;
  containerName: string;
  aliases: string[];
  hostname: string;
  /** Legacy links: names (alias, the linked container's name) that only this container resolves, to that container's address here. */
  links?: EndpointLink[];
}

/**
 * A legacy link (`--link name:alias`): these names resolve, for the linking container only, to the address of
 * `containerId`, or of the container named `containerName` on the network once that one is gone (recreated).
 */
export interface EndpointLink {
  containerId: string;
  containerName: string;
  names: string[];
}

/** The whole persisted state, as the manager holds it in memory. */
export interface NetworkState {
  version: 1;
  networks: NetworkRecord[];
  endpoints: StoredEndpoint[];
  /** Per network id, the last address handed out (allocation continues after it). */
  lastAddress: Record<string, number>;
}

export function emptyState(): NetworkState {
  return { version: 1, networks: [], endpoints: [], lastAddress: {} };
}

/** Store kinds of the network state: networks by id, endpoints by "<container id>/<network id>", leases by network id. */
export const NETWORK_KINDS = { network: 'network', endpoint: 'network-endpoint', lease: 'network-lease' } as const;

/** The state.json of versions before the state store, read once, imported and removed. */
function legacyFile(stateDir: string): string {
  return path.join(stateDir, 'network', 'state.json');
}

async function readLegacy(file: string): Promise<NetworkState | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new BosonError('STATE_DIR_UNWRITABLE', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const state = JSON.parse(text) as NetworkState;
    if (state.version !== 1 || !Array.isArray(state.networks) || !Array.isArray(state.endpoints)) throw new Error('unknown format');
    state.lastAddress ??= {};
    return state;
  } catch (err) {
    throw new BosonError('INTERNAL', `network state ${file} is corrupt: ${(err as Error).message}`, { cause: err });
  }
}

/** The records that hold `state`, by "<kind>\0<key>". */
function recordsOf(state: NetworkState): Map<string, { kind: string; key: string; value: unknown }> {
  const out = new Map<string, { kind: string; key: string; value: unknown }>();
  const add = (kind: string, key: string, value: unknown): void => void out.set(`${kind}\u0000${key}`, { kind, key, value });
  for (const n of state.networks) add(NETWORK_KINDS.network, n.id, n);
  for (const se of state.endpoints) add(NETWORK_KINDS.endpoint, `${se.endpoint.containerId}/${se.endpoint.network}`, se);
  for (const [id, last] of Object.entries(state.lastAddress)) add(NETWORK_KINDS.lease, id, { last });
  return out;
}

/**
 * The network state as records of the state store. The manager keeps the state in memory and saves it whole; a
 * save writes only the records that changed, in one commit, each expected at the revision this manager last saw
 * (STORE_CONFLICT if anything else changed them).
 */
export class NetworkStateStore {
  /** What this manager last read or wrote: JSON text and revision, by "<kind>\0<key>". */
  private seen = new Map<string, { json: string; revision: number }>();

  constructor(
    private readonly store: StateStore,
    private readonly stateDir: string,
  ) {}

  async load(): Promise<NetworkState> {
    await this.importLegacy();
    this.seen.clear();
    const read = <T>(kind: string): StoredRecord<T>[] => {
      const records = this.store.list<T>(kind).sort((a, b) => a.createRevision - b.createRevision);
      for (const r of records) this.seen.set(`${kind}\u0000${r.key}`, { json: JSON.stringify(r.value), revision: r.revision });
      return records;
    };
    const state = emptyState();
    state.networks = read<NetworkRecord>(NETWORK_KINDS.network).map((r) => r.value);
    state.endpoints = read<StoredEndpoint>(NETWORK_KINDS.endpoint).map((r) => r.value);
    state.lastAddress = Object.fromEntries(read<{ last: number }>(NETWORK_KINDS.lease).map((r) => [r.key, r.value.last]));
    return state;
  }

  async save(state: NetworkState): Promise<void> {
    const want = recordsOf(state);
    const ops: StoreOp[] = [];
    for (const [id, r] of want) {
      const before = this.seen.get(id);
      if (before?.json !== JSON.stringify(r.value))
        ops.push({ op: 'put', kind: r.kind, key: r.key, value: r.value, expectRevision: before?.revision ?? 0 });
    }
    for (const [id, before] of this.seen) {
      if (want.has(id)) continue;
      const [kind, key] = id.split('\u0000') as [string, string];
      ops.push({ op: 'delete', kind, key, expectRevision: before.revision });
    }
    if (ops.length === 0) return;
    try {
      this.store.commit(ops);
    } catch (err) {
      if (isBosonError(err, 'STORE_FULL'))
        throw new BosonError('STATE_DIR_UNWRITABLE', `cannot save the network state: ${err.message}`, { cause: err });
      throw err;
    }
    for (const op of ops) {
      const id = `${op.kind}\u0000${op.key}`;
      const now = this.store.get(op.kind, op.key);
      if (now) this.seen.set(id, { json: JSON.stringify(now.value), revision: now.revision });
      else this.seen.delete(id);
    }
  }

  /** Deletes every network record (teardown). */
  async remove(): Promise<void> {
    await rm(legacyFile(this.stateDir), { force: true });
    const ops: StoreOp[] = Object.values(NETWORK_KINDS).flatMap((kind) =>
      this.store.list(kind).map((r) => ({ op: 'delete' as const, kind, key: r.key })),
    );
    if (ops.length > 0) this.store.commit(ops);
    this.seen.clear();
  }

  /** A state.json from before the store: its records are imported (unless the store has networks already), then it goes. */
  private async importLegacy(): Promise<void> {
    const file = legacyFile(this.stateDir);
    const legacy = await readLegacy(file);
    if (!legacy) return;
    if (this.store.list(NETWORK_KINDS.network).length === 0) {
      const ops: StoreOp[] = [...recordsOf(legacy).values()].map((r) => ({
        op: 'put',
        kind: r.kind,
        key: r.key,
        value: r.value,
        expectRevision: 0,
      }));
      if (ops.length > 0) this.store.commit(ops);
    }
    await rm(file, { force: true });
  }
}
