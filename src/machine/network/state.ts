/**
 * The network state on disk: `<stateDir>/network/state.json`, one JSON document written atomically (temporary
 * file, fsync, rename). It is small (a record per network and per endpoint) and only the manager writes it, under
 * its lock. It holds everything needed to rebuild the host side after a daemon restart or a host reboot.
 */
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { BosonError } from '../../common/index.ts';
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
}

/** The whole persisted state. */
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

/** Reads and writes the state file. */
export class StateFile {
  readonly file: string;

  constructor(stateDir: string) {
    this.file = path.join(stateDir, 'network', 'state.json');
  }

  async load(): Promise<NetworkState> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
      throw new BosonError('STATE_DIR_UNWRITABLE', `cannot read ${this.file}: ${(err as Error).message}`, { cause: err });
    }
    try {
      const state = JSON.parse(text) as NetworkState;
      if (state.version !== 1 || !Array.isArray(state.networks) || !Array.isArray(state.endpoints)) throw new Error('unknown format');
      state.lastAddress ??= {};
      return state;
    } catch (err) {
      throw new BosonError('INTERNAL', `network state ${this.file} is corrupt: ${(err as Error).message}`, { cause: err });
    }
  }

  async save(state: NetworkState): Promise<void> {
    const tmp = `${this.file}.${process.pid}.tmp`;
    try {
      await mkdir(path.dirname(this.file), { recursive: true });
      const handle = await open(tmp, 'w', 0o600);
      try {
        await handle.writeFile(JSON.stringify(state, null, 1));
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, this.file);
    } catch (err) {
      await rm(tmp, { force: true });
      throw new BosonError('STATE_DIR_UNWRITABLE', `cannot write ${this.file}: ${(err as Error).message}`, { cause: err });
    }
  }

  async remove(): Promise<void> {
    await rm(this.file, { force: true });
  }
}
