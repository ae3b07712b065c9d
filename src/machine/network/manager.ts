/**
 * NetworkManager: the host side of container networking. It owns the networks (a Linux bridge each, with the
 * gateway address), the endpoints (a tap per container and network, an address lease, published ports, a DNS
 * name), the firewall table, and one DNS server per network. The daemon calls it when a container starts and
 * stops; the returned Endpoint says what to give the VMM (`nic`) and the guest (address, route, DNS, hosts).
 *
 * In rootless mode there are no bridges, taps or rules: each micro-VM gets user-mode networking (a passt process,
 * see src/vmm/passt.ts) with host port forwards, and the guest uses fixed addresses (10.0.2.15/24, gateway 10.0.2.2)
 * and the host's non-loopback resolvers; nothing leads to the host's loopback.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { BosonError, type StateStore } from '../../common/index.ts';
import { DnsServer, readResolvConf, type Upstream } from './dns.ts';
import { renderRemoval, renderRuleset, type FirewallNetwork, type FirewallPort, type FirewallTap } from './firewall.ts';
import { ipBatch, listLinks, listRoutes, linkAddresses, nftApply, setSysctl } from './host.ts';
import {
  allocateAddress,
  cidrContains,
  cidrLast,
  cidrOverlap,
  DEFAULT_POOL,
  formatCidr,
  formatIPv4,
  parseIPv4,
  parseRouteDst,
  parseSubnet,
  pickSubnet,
  validateGateway,
  type Cidr,
} from './ipam.ts';
import { holdPort, holdPorts, type HeldPort, type PortBinding } from './ports.ts';
import {
  NetworkStateStore,
  type Endpoint,
  type EndpointLink,
  type NetworkRecord,
  type NetworkState,
  type StoredEndpoint,
} from './state.ts';

/** What the daemon asks for when a container joins a network. */
export interface EndpointRequest {
  containerId: string;
  containerName: string;
  /** More names the container answers to on this network (`--network-alias`). */
  aliases: string[];
  /** Network id or name. */
  network: string;
  ports: PortBinding[];
  mac?: string;
  /** The container's hostname, for its /etc/hosts line (default: the short container id). */
  hostname?: string;
  /** A static IPv4 address (Docker's IPAMConfig.IPv4Address) instead of the next free one; user networks only. */
  address?: string;
  /**
   * A tap made earlier by spareTap() (a warm micro-VM already holds it open) to put on the network instead of a new
   * one; it is the endpoint's from then on (deleted on disconnect, or at once if the connect fails).
   */
  tap?: string;
  /** Legacy links: names only this container resolves, to another container's address on this network. */
  links?: EndpointLink[];
}

/** Options of a NetworkManager. */
export interface NetworkManagerOptions {
  /** The state directory: only read for a network/state.json from before the state store (imported once). */
  stateDir: string;
  /** QEMU user-mode networking instead of bridges and taps (for a daemon that is not root). */
  rootless?: boolean;
  /** The uid taps are made for (`ip tuntap … user`): a QEMU already running as that user can attach to them. */
  tapOwner?: number;
  /**
   * Names of everything on the host (at most 6 characters): bridge `<prefix>0` for the default network,
   * `<prefix>-<id>` for others, taps `<prefix>t<hex>`, nftables table `ip <prefix>`. Default "boson".
   */
  prefix?: string;
  /** Subnet of the default network; default 10.88.0.0/16 (gateway .1). */
  defaultSubnet?: string;
  /** Where subnets of networks created without one come from (a CIDR split into /24s); default 10.89.0.0/16–10.127.255.0/24. */
  subnetPool?: string;
  /** The host's resolver configuration; default /etc/resolv.conf. */
  resolvConf?: string;
  /** Port of the DNS servers on the gateways; default 53. */
  dnsPort?: number;
  /** Warnings that do not fail an operation (e.g. a host port taken while the daemon was down). */
  log?: (message: string) => void;
}

/** Options of `create`. */
export interface CreateNetworkOptions {
  subnet?: string;
  gateway?: string;
  internal?: boolean;
  labels?: Record<string, string>;
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
/**
 * The rootless user-mode network as the guest sees it: the addresses QEMU's slirp used, kept (guests and users know
 * them), now served by passt, which is told exactly these (NicSpec) while boson-init sets them from the SPEC. Its DNS
 * servers are the host's own (non-loopback) resolvers, as Docker gives containers when the host has such.
 */
const USER_NET = { address: '10.0.2.15', prefixLen: 24, gateway: '10.0.2.2', subnet: '10.0.2.0/24' };
/** systemd-resolved's list of the upstream servers it uses, when /etc/resolv.conf names only its 127.0.0.53. */
const RESOLVED_UPSTREAMS = '/run/systemd/resolve/resolv.conf';
/** Docker's fallback when the host has no usable resolver. */
const FALLBACK_RESOLVERS = ['8.8.8.8', '8.8.4.4'];

/** The lowest port an unprivileged process may bind (net.ipv4.ip_unprivileged_port_start, 1024 by default). */
async function unprivilegedPortStart(): Promise<number> {
  const n = Number((await readFile('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8').catch(() => '1024')).trim());
  return Number.isInteger(n) && n >= 0 ? n : 1024;
}

/** The default network's name (Docker's). */
export const DEFAULT_NETWORK = 'bridge';

function key(containerId: string, networkId: string): string {
  return `${containerId}/${networkId}`;
}

function macFor(address: number): string {
  const bytes = [0x02, 0xb0, address >>> 24, (address >>> 16) & 255, (address >>> 8) & 255, address & 255];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** Host side of container networking. */
export class NetworkManager {
  readonly rootless: boolean;
  readonly prefix: string;
  private readonly store: NetworkStateStore;
  private state: NetworkState | undefined;
  private readonly dns = new Map<string, DnsServer>();
  private readonly held = new Map<string, HeldPort[]>();
  private upstreams: Upstream[] = [];
  /** Rootless: the guest's DNS servers, the host's resolvers (never loopback ones: the guest cannot reach those). */
  private userResolvers: string[] = [];
  private search: string[] = [];
  private lock: Promise<unknown> = Promise.resolve();

  /** `store`: the host's state store (the composition root's; not closed here). */
  constructor(
    stateStore: StateStore,
    private readonly opts: NetworkManagerOptions,
  ) {
    this.rootless = opts.rootless ?? false;
    this.prefix = opts.prefix ?? 'boson';
    if (!/^[a-z][a-z0-9]{0,5}$/.test(this.prefix))
      throw new BosonError(
        'INVALID_ARGUMENT',
        `invalid network name prefix "${this.prefix}": 1 to 6 lower-case letters or digits, starting with a letter`,
      );
    this.store = new NetworkStateStore(stateStore, opts.stateDir);
  }

  /** The `user` part of a tap's creation, when taps belong to the VMM's user. */
  private tapUser(): string {
    return this.opts.tapOwner === undefined ? '' : ` user ${this.opts.tapOwner}`;
  }

  /** The nftables table (family ip) holding all of this manager's rules. */
  get table(): string {
    return this.prefix;
  }

  /** The bridge device of the default network. */
  get defaultBridge(): string {
    return `${this.prefix}0`;
  }

  /** Containers waiting for the next disconnect round, and that round (see disconnectAll). */
  private readonly pendingDisconnects = new Set<string>();
  private disconnectRound: Promise<void> | undefined;

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  private get s(): NetworkState {
    if (!this.state) throw new BosonError('INTERNAL', 'NetworkManager used before init()');
    return this.state;
  }

  /**
   * Idempotent start: the default network, IP forwarding, bridges and taps of the saved state (recreated after a
   * host reboot), the firewall table, DNS servers and the held host ports. Boson links that the state does not
   * know (left by a crash mid-operation) are deleted. Endpoints of containers are kept: see reconcile().
   */
  init(): Promise<void> {
    return this.serial(async () => {
      this.state = await this.store.load();
      const resolv = await readResolvConf(this.opts.resolvConf);
      this.search = resolv.search;
      this.upstreams = (resolv.nameservers.length > 0 ? resolv.nameservers : FALLBACK_RESOLVERS).map((host) => ({ host, port: 53 }));
      if (this.rootless) {
        const notLoopback = (ns: string[]): string[] => ns.filter((a) => !a.startsWith('127.'));
        const own = notLoopback(resolv.nameservers);
        const resolved = own.length > 0 ? [] : notLoopback((await readResolvConf(RESOLVED_UPSTREAMS)).nameservers);
        this.userResolvers = own.length > 0 ? own : resolved.length > 0 ? resolved : FALLBACK_RESOLVERS;
        if (!this.s.networks.some((n) => n.builtin)) {
          this.s.networks.push(this.newRecord(DEFAULT_NETWORK, '', USER_NET.subnet, USER_NET.gateway, false, {}, true));
          await this.store.save(this.s);
        }
        return;
      }
      await setSysctl('net/ipv4/ip_forward', '1');
      if (!this.s.networks.some((n) => n.builtin)) {
        const subnet = parseSubnet(this.opts.defaultSubnet ?? '10.88.0.0/16');
        // A bridge of ours left by an earlier state (removed by hand) is reused, so its route is no overlap.
        await this.checkHostRoutes(subnet, [this.defaultBridge]);
        this.s.networks.push(
          this.newRecord(DEFAULT_NETWORK, this.defaultBridge, formatCidr(subnet), formatIPv4(subnet.base + 1), false, {}, true),
        );
        await this.store.save(this.s);
      }
      const links = await listLinks();
      for (const n of this.s.networks) await this.ensureBridge(n, links);
      const wantedTaps = new Set<string>();
      const cmds: string[] = [];
      for (const se of this.s.endpoints) {
        const tap = this.tapOf(se.endpoint);
        const bridge = this.networkById(se.endpoint.network)?.bridge;
        wantedTaps.add(tap);
        if (!bridge) continue;
        if (!links.some((l) => l.name === tap)) cmds.push(`tuntap add dev ${tap} mode tap${this.tapUser()}`);
        cmds.push(`link set dev ${tap} master ${bridge}`, `link set dev ${tap} up`);
      }
      await ipBatch(cmds);
      const bridges = new Set(this.s.networks.map((n) => n.bridge));
      const strays = links.filter((l) => this.isOurs(l.name) && !bridges.has(l.name) && !wantedTaps.has(l.name));
      await ipBatch(
        strays.map((l) => `link del dev ${l.name}`),
        true,
      );
      await this.applyFirewall();
      for (const n of this.s.networks) if (!this.dns.has(n.id)) await this.startDns(n);
      for (const se of this.s.endpoints) await this.reholdPorts(se);
    });
  }

  /** Creates a user-defined network with its bridge and DNS server. */
  create(name: string, opts: CreateNetworkOptions = {}): Promise<NetworkRecord> {
    return this.serial(async () => {
      if (this.rootless)
        throw new BosonError(
          'ROOTLESS_UNSUPPORTED',
          'user-defined networks need a daemon running as root (rootless mode uses QEMU user-mode networking)',
        );
      if (!NAME_RE.test(name))
        throw new BosonError('INVALID_ARGUMENT', `invalid network name "${name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
      if (this.s.networks.some((n) => n.name === name))
        throw new BosonError('NETWORK_NAME_IN_USE', `network with name ${name} already exists`, { details: { name } });
      const taken = this.s.networks.map((n) => parseSubnet(n.subnet));
      let subnet: Cidr;
      if (opts.subnet !== undefined) {
        subnet = parseSubnet(opts.subnet);
        const clash = this.s.networks.find((n) => cidrOverlap(parseSubnet(n.subnet), subnet));
        if (clash)
          throw new BosonError(
            'SUBNET_OVERLAP',
            `invalid pool request: Pool overlaps with other one on this address space (${formatCidr(subnet)} overlaps network ${clash.name}, ${clash.subnet})`,
            { details: { subnet: formatCidr(subnet), network: clash.name } },
          );
        await this.checkHostRoutes(
          subnet,
          this.s.networks.map((n) => n.bridge),
        );
      } else {
        const routes = await this.hostRouteCidrs(this.s.networks.map((n) => n.bridge));
        subnet = pickSubnet([...taken, ...routes], this.pool());
      }
      const gateway = opts.gateway !== undefined ? validateGateway(subnet, opts.gateway) : subnet.base + 1;
      const id = randomBytes(32).toString('hex');
      const record = this.newRecord(
        name,
        `${this.prefix}-${id.slice(0, 14 - this.prefix.length)}`,
        formatCidr(subnet),
        formatIPv4(gateway),
        opts.internal ?? false,
        opts.labels ?? {},
        false,
        id,
      );
      this.s.networks.push(record);
      try {
        await this.ensureBridge(record, await listLinks());
        await this.store.save(this.s);
        await this.applyFirewall();
        await this.startDns(record);
      } catch (err) {
        this.s.networks = this.s.networks.filter((n) => n.id !== record.id);
        await this.dns.get(record.id)?.close();
        this.dns.delete(record.id);
        await ipBatch([`link del dev ${record.bridge}`], true).catch(() => undefined);
        await this.store.save(this.s).catch(() => undefined);
        await this.applyFirewall().catch(() => undefined);
        throw err;
      }
      return { ...record };
    });
  }

  /** All networks, the default one first. */
  async list(): Promise<NetworkRecord[]> {
    return [...this.s.networks]
      .sort((a, b) => Number(b.builtin) - Number(a.builtin) || a.created.localeCompare(b.created))
      .map((n) => ({ ...n }));
  }

  /** A network by exact name, exact id, or unique id prefix; NETWORK_NOT_FOUND otherwise. */
  async get(idOrName: string): Promise<NetworkRecord> {
    return { ...this.find(idOrName) };
  }

  /** Removes a user-defined network: NETWORK_IN_USE while containers are connected or for the default network. */
  remove(idOrName: string): Promise<void> {
    return this.serial(async () => {
      const n = this.find(idOrName);
      if (n.builtin)
        throw new BosonError('NETWORK_IN_USE', `${n.name} is a pre-defined network and cannot be removed`, {
          details: { network: n.name },
        });
      const users = this.s.endpoints.filter((se) => se.endpoint.network === n.id);
      if (users.length > 0) {
        throw new BosonError(
          'NETWORK_IN_USE',
          `error while removing network: network ${n.name} id ${n.id} has active endpoints (${users.map((u) => u.containerName).join(', ')})`,
          { details: { network: n.name, containers: users.map((u) => u.endpoint.containerId) } },
        );
      }
      await this.dns.get(n.id)?.close();
      this.dns.delete(n.id);
      this.s.networks = this.s.networks.filter((x) => x.id !== n.id);
      delete this.s.lastAddress[n.id];
      await this.store.save(this.s);
      await this.applyFirewall();
      await ipBatch([`link del dev ${n.bridge}`], true).catch(() => undefined);
    });
  }

  /**
   * Connects a container to a network: leases an address, creates its tap on the bridge, binds and publishes its
   * ports, registers its names with the network's DNS server. All or nothing: on failure nothing is left behind.
   */
  connect(req: EndpointRequest): Promise<Endpoint> {
    return this.serial(async () => {
      const n = this.find(req.network);
      if (this.s.endpoints.some((se) => se.endpoint.containerId === req.containerId && se.endpoint.network === n.id)) {
        throw new BosonError('ALREADY_CONNECTED', `endpoint with name ${req.containerName} already exists in network ${n.name}`, {
          details: { network: n.name, containerId: req.containerId },
        });
      }
      const hostname = req.hostname ?? req.containerId.slice(0, 12);
      for (const p of req.ports) {
        if (parseIPv4(p.hostIp) === undefined)
          throw new BosonError('INVALID_ARGUMENT', `cannot publish on ${p.hostIp}: only IPv4 host addresses are supported`);
      }
      if (this.rootless) return this.connectRootless(req, n, hostname);

      const subnet = parseSubnet(n.subnet);
      const gateway = parseIPv4(n.gateway)!;
      const used = new Set(this.s.endpoints.filter((se) => se.endpoint.network === n.id).map((se) => parseIPv4(se.endpoint.address)!));
      let address: number;
      if (req.address !== undefined) {
        address = this.staticAddress(n, req.address);
        if (used.has(address)) throw this.addressInUse(n, req.address);
      } else address = allocateAddress(subnet, gateway, used, this.s.lastAddress[n.id] ?? 0);
      const tap = req.tap ?? this.newTapName();
      const mac = req.mac ?? macFor(address);
      // Docker ignores published ports on internal networks (nothing outside may reach them).
      const held = n.internal ? [] : await holdPorts(req.ports);
      const endpoint: Endpoint = {
        containerId: req.containerId,
        network: n.id,
        nic: { kind: 'tap', ifname: tap, mac },
        mac,
        address: formatIPv4(address),
        prefixLen: subnet.prefix,
        gateway: n.gateway,
        dns: [n.gateway],
        dnsSearch: [...this.search],
        hosts: [`${formatIPv4(address)}\t${hostname}`],
        ports: held.map((h) => h.binding),
      };
      const stored: StoredEndpoint = {
        endpoint,
        containerName: req.containerName,
        aliases: [...req.aliases],
        hostname,
        ...(req.links && req.links.length > 0 ? { links: structuredClone(req.links) } : {}),
      };
      try {
        this.s.endpoints.push(stored);
        this.s.lastAddress[n.id] = address;
        // The tap and the firewall at once (two processes, on a start's critical path): the rules name the tap
        // (iifname), so they hold whether or not it exists yet, and the VM is launched only once both are done.
        const results = await Promise.allSettled([
          ipBatch([
            ...(req.tap === undefined ? [`tuntap add dev ${tap} mode tap${this.tapUser()}`] : []),
            `link set dev ${tap} master ${n.bridge}`,
            `link set dev ${tap} up`,
          ]),
          this.store.save(this.s).then(() => this.applyFirewall()),
        ]);
        for (const r of results) if (r.status === 'rejected') throw r.reason;
      } catch (err) {
        this.s.endpoints = this.s.endpoints.filter((se) => se !== stored);
        await Promise.all(held.map((h) => h.release()));
        await ipBatch([`link del dev ${tap}`], true).catch(() => undefined);
        await this.store.save(this.s).catch(() => undefined);
        await this.applyFirewall().catch(() => undefined);
        throw err;
      }
      this.held.set(key(req.containerId, n.id), held);
      this.refreshNames(n);
      return structuredClone(endpoint);
    });
  }

  /** A fresh tap name of this host's prefix (`<prefix>t<hex>`, 15 characters at most). */
  private newTapName(): string {
    return `${this.prefix}t${randomBytes(8)
      .toString('hex')
      .slice(0, 14 - this.prefix.length)}`;
  }

  /**
   * Makes a tap on no network, for a micro-VM booted before its container is known (the warm pool); connect({tap})
   * puts it on the container's network later. A spare tap is in no state: the next init() deletes one left over by
   * a daemon that died. ROOTLESS_UNSUPPORTED in rootless mode (no taps there).
   */
  async spareTap(): Promise<string> {
    if (this.rootless) throw new BosonError('ROOTLESS_UNSUPPORTED', 'rootless mode has no taps');
    const tap = this.newTapName();
    await ipBatch([`tuntap add dev ${tap} mode tap${this.tapUser()}`]);
    return tap;
  }

  /** Deletes a spare tap (one that connect() did not take); a missing one is fine. */
  async dropTap(tap: string): Promise<void> {
    if (!tap.startsWith(`${this.prefix}t`)) throw new BosonError('INTERNAL', `not a tap of this host: ${tap}`);
    await ipBatch([`link del dev ${tap}`], true).catch(() => undefined);
  }

  /**
   * Checks a static address asked for on a network: INVALID_ARGUMENT unless the network is user-defined and the
   * address is a host address of its subnet other than the gateway, and unless no other container's endpoint holds
   * it now ("Address already in use"). Containers that are not running hold no address (as in Docker), so two
   * created containers may ask for one address: the second to start is refused then.
   */
  checkStaticAddress(idOrName: string, address: string, containerId?: string): void {
    const n = this.find(idOrName);
    const ip = this.staticAddress(n, address);
    if (
      this.s.endpoints.some(
        (se) => se.endpoint.network === n.id && se.endpoint.containerId !== containerId && parseIPv4(se.endpoint.address) === ip,
      )
    )
      throw this.addressInUse(n, address);
  }

  private addressInUse(n: NetworkRecord, address: string): BosonError {
    return new BosonError('INVALID_ARGUMENT', `Address already in use: ${address} is taken on network ${n.name}`, {
      details: { network: n.name, address },
    });
  }

  private staticAddress(n: NetworkRecord, text: string): number {
    if (n.builtin || this.rootless)
      throw new BosonError('INVALID_ARGUMENT', `user specified IP address is supported on user defined networks only (not on ${n.name})`);
    const ip = parseIPv4(text);
    if (ip === undefined) throw new BosonError('INVALID_ARGUMENT', `invalid IPv4 address: ${text}`);
    const subnet = parseSubnet(n.subnet);
    if (!cidrContains(subnet, ip) || ip === subnet.base || ip === cidrLast(subnet) || ip === parseIPv4(n.gateway)) {
      throw new BosonError(
        'INVALID_ARGUMENT',
        `invalid address ${text}: it is not a free host address of network ${n.name} (${n.subnet}, gateway ${n.gateway})`,
      );
    }
    return ip;
  }

  /**
   * Rootless mode: ROOTLESS_UNSUPPORTED for a host port below net.ipv4.ip_unprivileged_port_start, which an ordinary
   * user may not bind (instead of the bind's EACCES looking like a port in use). Nothing to check for root.
   */
  async checkPublishable(ports: PortBinding[]): Promise<void> {
    if (!this.rootless || (process.geteuid?.() ?? 0) === 0) return;
    const lowest = await unprivilegedPortStart();
    const low = ports.find((p) => p.hostPort !== 0 && p.hostPort < lowest);
    if (!low) return;
    throw new BosonError(
      'ROOTLESS_UNSUPPORTED',
      `publishing host port ${low.hostPort} needs root: a rootless daemon can bind ports from ${lowest} up (net.ipv4.ip_unprivileged_port_start); publish on a higher host port, e.g. -p ${low.hostPort + 8000 <= 65535 ? low.hostPort + 8000 : 8080}:${low.containerPort}`,
      {
        details: { hostPort: low.hostPort, unprivilegedPortStart: lowest },
      },
    );
  }

  private async connectRootless(req: EndpointRequest, n: NetworkRecord, hostname: string): Promise<Endpoint> {
    if (this.s.endpoints.some((se) => se.endpoint.containerId === req.containerId)) {
      throw new BosonError('ROOTLESS_UNSUPPORTED', 'in rootless mode a container has exactly one network');
    }
    await this.checkPublishable(req.ports);
    // QEMU binds the host ports itself: check them (and turn 0 into a free port) by binding, then let go.
    const held = await holdPorts(req.ports);
    await Promise.all(held.map((h) => h.release()));
    const ports = held.map((h) => h.binding);
    const mac = req.mac ?? '52:54:00:12:34:56';
    const endpoint: Endpoint = {
      containerId: req.containerId,
      network: n.id,
      nic: {
        kind: 'user',
        mac,
        address: USER_NET.address,
        prefixLen: USER_NET.prefixLen,
        gateway: USER_NET.gateway,
        forwards: ports.map((p) => ({ protocol: p.protocol, hostIp: p.hostIp, hostPort: p.hostPort, guestPort: p.containerPort })),
      },
      mac,
      address: USER_NET.address,
      prefixLen: USER_NET.prefixLen,
      gateway: USER_NET.gateway,
      dns: [...this.userResolvers],
      dnsSearch: [...this.search],
      hosts: [`${USER_NET.address}\t${hostname}`],
      ports,
    };
    this.s.endpoints.push({ endpoint, containerName: req.containerName, aliases: [...req.aliases], hostname });
    await this.store.save(this.s);
    return structuredClone(endpoint);
  }

  /** Disconnects a container from one network (or from all when none is given): tap, lease, ports, DNS names. */
  disconnect(containerId: string, network?: string): Promise<void> {
    if (network === undefined) return this.disconnectAll(containerId);
    return this.serial(async () => {
      const networkId = this.find(network).id;
      await this.dropEndpoints(
        this.s.endpoints.filter((se) => se.endpoint.containerId === containerId && se.endpoint.network === networkId),
      );
    });
  }

  /**
   * Disconnects a container from every network. Calls that arrive while the manager is busy are done together, in
   * one state write, firewall update and `ip` batch (stopping 50 containers at once costs a few rounds, not 50).
   */
  private disconnectAll(containerId: string): Promise<void> {
    this.pendingDisconnects.add(containerId);
    this.disconnectRound ??= this.serial(async () => {
      this.disconnectRound = undefined;
      const ids = new Set(this.pendingDisconnects);
      this.pendingDisconnects.clear();
      await this.dropEndpoints(this.s.endpoints.filter((se) => ids.has(se.endpoint.containerId)));
    });
    return this.disconnectRound;
  }

  /** The container's endpoints (one per network it is connected to). */
  async endpoints(containerId: string): Promise<Endpoint[]> {
    return this.s.endpoints.filter((se) => se.endpoint.containerId === containerId).map((se) => structuredClone(se.endpoint));
  }

  /** After a daemon restart: drops the endpoints of containers that are not in `live`; the others keep working. */
  reconcile(liveContainerIds: Set<string>): Promise<void> {
    return this.serial(async () => {
      await this.dropEndpoints(this.s.endpoints.filter((se) => !liveContainerIds.has(se.endpoint.containerId)));
    });
  }

  /** Stops the DNS servers and lets the held ports go (daemon shutdown). Bridges, taps and rules stay. */
  close(): Promise<void> {
    return this.serial(async () => {
      await Promise.all([...this.dns.values()].map((d) => d.close()));
      this.dns.clear();
      await Promise.all([...this.held.values()].flat().map((h) => h.release()));
      this.held.clear();
    });
  }

  /**
   * Removes everything this manager ever added to the host (taps, bridges, the firewall table) and its state:
   * for uninstalling, and for tests. Containers still using a tap lose their network.
   */
  teardown(): Promise<void> {
    return this.serial(async () => {
      await Promise.all([...this.dns.values()].map((d) => d.close()));
      this.dns.clear();
      await Promise.all([...this.held.values()].flat().map((h) => h.release()));
      this.held.clear();
      if (!this.rootless) {
        const links = await listLinks();
        await ipBatch(
          links.filter((l) => this.isOurs(l.name)).map((l) => `link del dev ${l.name}`),
          true,
        );
        await nftApply(renderRemoval(this.table));
      }
      await this.store.remove();
      this.state = undefined;
    });
  }

  // ---- internals ----

  private newRecord(
    name: string,
    bridge: string,
    subnet: string,
    gateway: string,
    internal: boolean,
    labels: Record<string, string>,
    builtin: boolean,
    id = randomBytes(32).toString('hex'),
  ): NetworkRecord {
    return {
      id,
      name,
      driver: 'bridge',
      bridge,
      subnet,
      gateway,
      internal,
      labels: { ...labels },
      created: new Date().toISOString(),
      builtin,
    };
  }

  private pool(): { base: number; end: number; prefix: number } {
    if (this.opts.subnetPool === undefined) return DEFAULT_POOL;
    const c = parseSubnet(this.opts.subnetPool);
    return { base: c.base, end: c.base + 2 ** (32 - c.prefix) - 1, prefix: Math.max(24, c.prefix) };
  }

  private find(idOrName: string): NetworkRecord {
    const nets = this.s.networks;
    const hit = nets.find((n) => n.name === idOrName) ?? nets.find((n) => n.id === idOrName);
    if (hit) return hit;
    const byPrefix = idOrName.length > 0 ? nets.filter((n) => n.id.startsWith(idOrName)) : [];
    if (byPrefix.length === 1) return byPrefix[0]!;
    throw new BosonError('NETWORK_NOT_FOUND', `network ${idOrName} not found`, { details: { network: idOrName } });
  }

  private networkById(id: string): NetworkRecord | undefined {
    return this.s.networks.find((n) => n.id === id);
  }

  private tapOf(e: Endpoint): string {
    return e.nic.kind === 'tap' ? e.nic.ifname : '';
  }

  /** True for link names this manager makes: <prefix>0, <prefix>-<hex>, <prefix>t<hex>. */
  private isOurs(name: string): boolean {
    const n = 14 - this.prefix.length;
    return name === this.defaultBridge || new RegExp(`^${this.prefix}[-t][0-9a-f]{${n}}$`).test(name);
  }

  /** Subnets routed on the host, except through the given (our own) devices. */
  private async hostRouteCidrs(ownDevices: string[]): Promise<Cidr[]> {
    const routes = await listRoutes();
    return routes
      .filter((r) => !ownDevices.includes(r.dev ?? ''))
      .map((r) => parseRouteDst(r.dst))
      .filter((c): c is Cidr => c !== undefined);
  }

  private async checkHostRoutes(subnet: Cidr, ownDevices: string[]): Promise<void> {
    const routes = await listRoutes();
    for (const r of routes) {
      if (ownDevices.includes(r.dev ?? '')) continue;
      const c = parseRouteDst(r.dst);
      if (c && cidrOverlap(c, subnet)) {
        throw new BosonError(
          'SUBNET_OVERLAP',
          `subnet ${formatCidr(subnet)} overlaps the host's route to ${r.dst}${r.dev ? ` on ${r.dev}` : ''}`,
          { details: { subnet: formatCidr(subnet), route: r.dst } },
        );
      }
    }
  }

  /** Creates the network's bridge if missing; makes sure it has the gateway address, is up, and routes 127.0.0.1. */
  private async ensureBridge(n: NetworkRecord, links: Array<{ name: string }>): Promise<void> {
    const gwCidr = `${n.gateway}/${parseSubnet(n.subnet).prefix}`;
    const exists = links.some((l) => l.name === n.bridge);
    const cmds: string[] = [];
    if (!exists) cmds.push(`link add name ${n.bridge} type bridge`);
    if (!exists || !(await linkAddresses(n.bridge)).includes(gwCidr)) cmds.push(`addr replace ${gwCidr} dev ${n.bridge}`);
    cmds.push(`link set dev ${n.bridge} up`);
    try {
      await ipBatch(cmds);
      // Published ports on 127.0.0.1 are DNATed to the container, which needs loopback sources routable here.
      await setSysctl(`net/ipv4/conf/${n.bridge}/route_localnet`, '1');
    } catch (err) {
      if (!exists) await ipBatch([`link del dev ${n.bridge}`], true).catch(() => undefined);
      throw err;
    }
  }

  private async applyFirewall(): Promise<void> {
    const nets: FirewallNetwork[] = this.s.networks.map((n) => ({ bridge: n.bridge, subnet: n.subnet, internal: n.internal }));
    const ports: FirewallPort[] = this.s.endpoints.flatMap((se) =>
      se.endpoint.ports.map((p) => ({
        hostIp: p.hostIp,
        hostPort: p.hostPort,
        protocol: p.protocol,
        address: se.endpoint.address,
        containerPort: p.containerPort,
      })),
    );
    const taps: FirewallTap[] = this.s.endpoints.flatMap((se) =>
      se.endpoint.nic.kind === 'tap' ? [{ tap: se.endpoint.nic.ifname, mac: se.endpoint.mac, address: se.endpoint.address }] : [],
    );
    await nftApply(renderRuleset(this.table, nets, ports, taps));
  }

  private async startDns(n: NetworkRecord): Promise<void> {
    const server = new DnsServer({
      address: n.gateway,
      port: this.opts.dnsPort ?? 53,
      upstreams: n.internal ? [] : this.upstreams,
      search: this.search,
    });
    try {
      await server.start();
    } catch (err) {
      await server.close();
      throw new BosonError(
        'PORT_IN_USE',
        `cannot start the DNS server of network ${n.name} on ${n.gateway}:${this.opts.dnsPort ?? 53}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    this.dns.set(n.id, server);
    this.refreshNames(n);
  }

  /**
   * The names on a network: container names, aliases and short ids (none on the default network, as in Docker);
   * and each linking container's links, to the address its linked container has here now (so a linked container
   * that restarts with another address is found again; one that is not on the network is not answered).
   */
  private refreshNames(n: NetworkRecord): void {
    const server = this.dns.get(n.id);
    if (!server) return;
    const names = new Map<string, string[]>();
    const here = this.s.endpoints.filter((x) => x.endpoint.network === n.id);
    if (!n.builtin) {
      for (const se of here) {
        for (const name of [se.containerName, ...se.aliases, se.endpoint.containerId.slice(0, 12)]) {
          if (!name) continue;
          const k = name.toLowerCase();
          names.set(k, [...(names.get(k) ?? []), se.endpoint.address]);
        }
      }
    }
    const bySource = new Map<string, Map<string, string[]>>();
    for (const se of here) {
      const table = new Map<string, string[]>();
      for (const link of se.links ?? []) {
        const target =
          here.find((x) => x.endpoint.containerId === link.containerId) ?? here.find((x) => x.containerName === link.containerName);
        if (target) for (const name of link.names) if (name) table.set(name.toLowerCase(), [target.endpoint.address]);
      }
      if (table.size > 0) bySource.set(se.endpoint.address, table);
    }
    server.setNames(names, bySource);
  }

  private async reholdPorts(se: StoredEndpoint): Promise<void> {
    const k = key(se.endpoint.containerId, se.endpoint.network);
    if (this.held.has(k)) return;
    const held: HeldPort[] = [];
    for (const p of se.endpoint.ports) {
      try {
        held.push(await holdPort(p));
      } catch (err) {
        this.opts.log?.(
          `published port ${p.hostIp}:${p.hostPort}/${p.protocol} of container ${se.endpoint.containerId.slice(0, 12)} could not be bound again: ${(err as Error).message}`,
        );
      }
    }
    this.held.set(k, held);
  }

  private async dropEndpoints(gone: StoredEndpoint[]): Promise<void> {
    if (gone.length === 0) return;
    const goneSet = new Set(gone);
    this.s.endpoints = this.s.endpoints.filter((se) => !goneSet.has(se));
    for (const se of gone) {
      const k = key(se.endpoint.containerId, se.endpoint.network);
      await Promise.all((this.held.get(k) ?? []).map((h) => h.release()));
      this.held.delete(k);
    }
    await this.store.save(this.s);
    if (this.rootless) return;
    // The rules name taps (iifname): they and the taps go at once (two processes, on a `run --rm`'s exit path).
    await Promise.all([
      this.applyFirewall(),
      ipBatch(
        gone.map((se) => `link del dev ${this.tapOf(se.endpoint)}`),
        true,
      ).catch(() => undefined),
    ]);
    for (const id of new Set(gone.map((se) => se.endpoint.network))) {
      const n = this.networkById(id);
      if (n) this.refreshNames(n);
    }
  }
}
