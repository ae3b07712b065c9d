/**
 * A pod's network, the Kubernetes way: a network namespace made for the pod, set up by CNI plugins (loopback, then
 * the configured list: bridge + host-local + portmap by default, hostPorts as the `portMappings` capability), and
 * wired to the pod VM's NIC as Kata Containers does it: a tap inside that namespace, and tc `mirred` redirects from
 * the CNI interface (eth0) to the tap and back, so that every frame the CNI plumbing delivers to eth0 reaches the
 * guest and every frame of the guest leaves by eth0. The VM's QEMU is started inside the namespace (the VMM's
 * NicSpec `netns`), opens the tap there, and the guest gets eth0's MAC and the CNI result's address, gateway and
 * routes. Tear-down is CNI DEL (last plugin first, with the ADD's cached result) and removal of the namespace,
 * which takes the tap with it. Stateless: the caller keeps each pod's PodNetworkState and hands it back.
 */
import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { BosonError, silentLogger, type Logger } from '../common/index.ts';
import {
  addNetworkList,
  delNetworkList,
  execPlugin,
  findPlugin,
  loadNetworkList,
  podInterfaceOf,
  type CniNetworkList,
  type CniResult,
  type CniRuntimeConf,
  type CniSettings,
} from './network/cni.ts';
import type { PodSpec } from './port/index.ts';

const run = promisify(execFile);

/** Where `ip netns` keeps named network namespaces. */
export const NETNS_DIR = '/run/netns';

/** The interface CNI makes in the pod's namespace, and the tap beside it. */
export const POD_IFNAME = 'eth0';
export const POD_TAP = 'tap0';

/** Everything needed to undo one pod's network, kept by the caller from before the namespace exists. */
export interface PodNetworkState {
  /** The namespace's name (under /run/netns). */
  netns: string;
  /** The list as it was when ADD ran (DEL must see the same configuration). */
  list: CniNetworkList;
  rt: CniRuntimeConf;
  /** The ADD's result, once it succeeded (DEL's prevResult). */
  result?: CniResult;
}

/** What the pod VM's NIC and guest get. */
export interface PodNic {
  /** Path of the namespace QEMU runs in. */
  netnsPath: string;
  tap: string;
  mac: string;
  mtu: number;
  address: string;
  prefixLen: number;
  gateway: string;
  routes: Array<{ dst: string; gw: string }>;
  dns: string[];
  dnsSearch: string[];
  /** The network's name (the list's). */
  network: string;
}

/** How pod networks are made on this host. */
export interface PodNetworkOptions {
  cni: CniSettings;
  /** Names this host makes start with it (the network manager's prefix): namespaces are `<prefix>-pod-<id>`. */
  prefix: string;
  /** The uid taps are made for (the jailed QEMU's user). */
  tapOwner?: number;
  log?: Logger;
}

async function tool(cmd: string, args: string[]): Promise<string> {
  try {
    return (await run(cmd, args, { maxBuffer: 16 * 1024 * 1024 })).stdout;
  } catch (cause) {
    const detail = (cause as { stderr?: string }).stderr?.trim() || (cause as Error).message;
    throw new BosonError('TOOL_FAILED', `${cmd} ${args.join(' ')} failed: ${detail}`, { cause });
  }
}

/** Pod networks through CNI (see the module comment). */
export class PodNetworks {
  private readonly log: Logger;

  constructor(private readonly options: PodNetworkOptions) {
    this.log = options.log ?? silentLogger;
  }

  /** Whether pods can get a network now: a configuration list, and every plugin it names installed. */
  async status(): Promise<{ ready: boolean; message: string; network: string }> {
    try {
      const list = await loadNetworkList(this.options.cni);
      for (const p of [{ type: 'loopback' }, ...list.plugins]) await findPlugin(p.type, this.options.cni.binDirs);
      return { ready: true, message: `CNI network ${list.name} (${list.file})`, network: list.name };
    } catch (err) {
      return { ready: false, message: (err as Error).message, network: '' };
    }
  }

  /** The namespace path of a state. */
  static netnsPath(state: PodNetworkState): string {
    return path.join(NETNS_DIR, state.netns);
  }

  /** The state of a pod's network before anything is made (to be kept by the caller first). */
  async plan(podId: string, spec: PodSpec): Promise<PodNetworkState> {
    const list = await loadNetworkList(this.options.cni);
    const netns = `${this.options.prefix}-pod-${podId.slice(0, 16)}`;
    const portMappings = (spec.ports ?? []).map((p) => ({
      hostPort: p.hostPort,
      containerPort: p.containerPort,
      protocol: p.protocol,
      ...(p.hostIp && p.hostIp !== '0.0.0.0' ? { hostIP: p.hostIp } : {}),
    }));
    return {
      netns,
      list,
      rt: {
        containerId: podId,
        netns: path.join(NETNS_DIR, netns),
        ifname: POD_IFNAME,
        args: [
          ['IgnoreUnknown', '1'],
          ['K8S_POD_NAMESPACE', spec.namespace],
          ['K8S_POD_NAME', spec.name],
          ['K8S_POD_INFRA_CONTAINER_ID', podId],
          ['K8S_POD_UID', spec.uid],
        ],
        capabilityArgs: {
          portMappings,
          'io.kubernetes.cri.pod-annotations': spec.annotations,
        },
      },
    };
  }

  /** The loopback attachment (lo of the namespace), as containerd makes it. */
  private loopback(state: PodNetworkState): { conf: Record<string, unknown>; rt: CniRuntimeConf } {
    return {
      conf: { cniVersion: '1.0.0', name: 'cni-loopback', type: 'loopback' },
      rt: { ...state.rt, ifname: 'lo', capabilityArgs: {} },
    };
  }

  /**
   * Makes the namespace, runs CNI ADD (loopback, then the list), and wires a tap to eth0; sets `state.result` as
   * soon as the ADD succeeded (`onResult` lets the caller keep it). Undoes everything when a step fails.
   */
  async setUp(state: PodNetworkState, onResult: (state: PodNetworkState) => void = () => undefined): Promise<PodNic> {
    const ns = state.netns;
    await tool('ip', ['netns', 'add', ns]);
    try {
      const lo = this.loopback(state);
      await execPlugin('ADD', { type: 'loopback' }, lo.conf, lo.rt, this.options.cni.binDirs);
      state.result = await addNetworkList(state.list, state.rt, this.options.cni.binDirs);
      onResult(state);
      const cfg = podInterfaceOf(state.result, POD_IFNAME);
      const [link] = JSON.parse(await tool('ip', ['-n', ns, '-j', 'link', 'show', 'dev', POD_IFNAME])) as Array<{
        address: string;
        mtu: number;
      }>;
      const mac = cfg.mac ?? link!.address;
      const mtu = link?.mtu ?? 1500;
      const owner = this.options.tapOwner === undefined ? [] : ['user', String(this.options.tapOwner)];
      await tool('ip', ['-n', ns, 'tuntap', 'add', 'dev', POD_TAP, 'mode', 'tap', ...owner]);
      await tool('ip', ['-n', ns, 'link', 'set', 'dev', POD_TAP, 'mtu', String(mtu), 'up']);
      // Kata's "tcfilter" model: everything arriving on one leaves by the other, untouched by the namespace's stack.
      for (const [from, to] of [
        [POD_IFNAME, POD_TAP],
        [POD_TAP, POD_IFNAME],
      ] as const) {
        await tool('tc', ['-n', ns, 'qdisc', 'add', 'dev', from, 'ingress']);
        await tool('tc', [
          '-n',
          ns,
          'filter',
          'add',
          'dev',
          from,
          'parent',
          'ffff:',
          'protocol',
          'all',
          'u32',
          'match',
          'u8',
          '0',
          '0',
          'action',
          'mirred',
          'egress',
          'redirect',
          'dev',
          to,
        ]);
      }
      return {
        netnsPath: PodNetworks.netnsPath(state),
        tap: POD_TAP,
        mac,
        mtu,
        address: cfg.address,
        prefixLen: cfg.prefixLen,
        gateway: cfg.gateway,
        routes: cfg.routes,
        dns: cfg.dns,
        dnsSearch: cfg.dnsSearch,
        network: state.list.name,
      };
    } catch (err) {
      await this.tearDown(state).catch((e: unknown) =>
        this.log.warn({ netns: ns, error: (e as Error).message }, 'undoing a pod network that failed to set up failed too'),
      );
      throw err;
    }
  }

  /**
   * CNI DEL (the list, last plugin first, with the cached result; then loopback) and removal of the namespace
   * (and the tap in it). Idempotent; when a plugin fails the namespace is kept for a retry and the error thrown.
   */
  async tearDown(state: PodNetworkState): Promise<void> {
    const nsPath = PodNetworks.netnsPath(state);
    const exists = await access(nsPath).then(
      () => true,
      () => false,
    );
    // Without its namespace a plugin still releases what it holds on the host (IPAM leases, rules).
    const rt = exists ? state.rt : { ...state.rt, netns: '' };
    await delNetworkList(state.list, rt, this.options.cni.binDirs, state.result);
    if (exists) {
      const lo = this.loopback(state);
      await execPlugin('DEL', { type: 'loopback' }, lo.conf, lo.rt, this.options.cni.binDirs).catch(() => undefined);
      await tool('ip', ['netns', 'delete', state.netns]).catch((err: unknown) => {
        if (!/No such file/.test((err as Error).message)) throw err;
      });
    }
  }
}
