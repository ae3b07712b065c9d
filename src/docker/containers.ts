/**
 * Containers in Docker's shapes, as pure functions: the create body (Config + HostConfig) turned into the port's
 * ContainerSpec, and the port's Container turned into `GET /containers/json` summaries and `GET
 * /containers/{id}/json` inspect documents. What Boson cannot honour is refused here, by name.
 */
import { parseLogOptions, parseRestartPolicy, parseVolumeSpec, statusText, validateContainerName } from '../machine/client/index.ts';
import {
  localContext,
  type Container,
  type ContainerSpec,
  type MachineNetworks,
  type MountSpec,
  type PortBinding,
} from '../machine/port/index.ts';
import { createHash } from 'node:crypto';
import { isBosonError } from '../common/index.ts';
import { badRequest, notSupported } from './errors.ts';
import { familiarName, unixSeconds, withSha, ZERO_TIME } from './format.ts';
import { API_VERSION, compareVersions } from './http.ts';

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function field<T>(o: Obj, key: string, type: 'string' | 'boolean' | 'number', where: string): T | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== type)
    throw badRequest(
      `json: cannot unmarshal ${typeof v} into Go struct field ${where}.${key} of type ${type === 'number' ? 'int64' : type === 'boolean' ? 'bool' : 'string'}`,
    );
  return v as T;
}

/** Docker's StrSlice: a JSON string or array of strings (or null). */
function strSlice(o: Obj, key: string, where: string): string[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return [v];
  if (Array.isArray(v) && v.every((s) => typeof s === 'string')) return v as string[];
  throw badRequest(
    `json: cannot unmarshal ${Array.isArray(v) ? 'array' : typeof v} into Go struct field ${where}.${key} of type strslice.StrSlice`,
  );
}

function strMap(o: Obj, key: string, where: string): Record<string, string> | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!isObj(v) || !Object.values(v).every((s) => typeof s === 'string'))
    throw badRequest(`json: cannot unmarshal into Go struct field ${where}.${key} of type map[string]string`);
  return v as Record<string, string>;
}

/** Validates a container name as Docker does (a leading '/' is allowed). */
export function checkContainerName(name: string): string {
  const bare = name.replace(/^\//, '');
  try {
    validateContainerName(bare);
  } catch (err) {
    if (isBosonError(err, 'INVALID_ARGUMENT'))
      throw badRequest(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    throw err;
  }
  return bare;
}

/** Turns Docker's create body into the port's ContainerSpec; refuses what Boson cannot do. */
export function containerSpecOf(body: Obj, name: string | null, hostCpus: number): ContainerSpec {
  const image = field<string>(body, 'Image', 'string', 'container.Config');
  if (!image) throw badRequest('No image was specified: set Image');
  const host = isObj(body.HostConfig) ? body.HostConfig : {};
  const H = 'container.HostConfig';

  const entrypointSlice = strSlice(body, 'Entrypoint', 'container.Config');
  let entrypoint: string[] | undefined;
  if (entrypointSlice !== undefined) entrypoint = entrypointSlice.every((s) => s === '') ? [] : entrypointSlice;

  // Networking: Docker's port bindings (a host port may be a range "8000-8010"); its network mode or endpoint
  // names the network.
  const ports: PortBinding[] = [];
  if (isObj(host.PortBindings)) {
    for (const [key, bindings] of Object.entries(host.PortBindings)) {
      for (const b of Array.isArray(bindings) ? bindings : []) {
        const hostIp = isObj(b) && typeof b.HostIp === 'string' ? b.HostIp : '';
        const hostPort = isObj(b) && typeof b.HostPort === 'string' ? b.HostPort : '';
        ports.push(...portBindingsOf(key, hostIp, hostPort));
      }
    }
  }
  const publishAll = host.PublishAllPorts === true;
  const netMode = field<string>(host, 'NetworkMode', 'string', H) ?? '';
  if (netMode === 'host' || netMode.startsWith('container:'))
    throw notSupported(`network mode "${netMode}"`, 'each micro-VM has its own network stack');
  const endpointsConfig =
    isObj(body.NetworkingConfig) && isObj(body.NetworkingConfig.EndpointsConfig) ? body.NetworkingConfig.EndpointsConfig : {};
  const endpoints = Object.keys(endpointsConfig);
  if (endpoints.length > 1)
    throw badRequest(
      `Container cannot be connected to network endpoints: ${endpoints.join(', ')}: a Boson micro-VM has one network card; connect it to one network`,
    );
  const chosen = endpoints[0] ?? netMode;
  const network = chosen === '' || chosen === 'default' || chosen === 'bridge' ? undefined : chosen;
  const {
    aliases,
    ipv4Address,
    links: endpointLinks,
  } = endpointConfigOf(endpoints[0] === undefined ? undefined : endpointsConfig[endpoints[0]]);
  // The CLI sends --link in HostConfig.Links, and again in the endpoint's Links on a user network.
  const links = [...(strSlice(host, 'Links', H) ?? []).map(parseLink), ...endpointLinks];
  if (host.Privileged === true) throw notSupported('--privileged', 'a micro-VM has no host devices or capabilities to grant');
  if (Array.isArray(host.VolumesFrom) && host.VolumesFrom.length > 0) throw notSupported('--volumes-from');
  if (Array.isArray(host.Devices) && host.Devices.length > 0) throw notSupported('--device', 'a micro-VM has no host devices');
  if (typeof host.PidMode === 'string' && host.PidMode.startsWith('container:')) throw notSupported('--pid container:…');
  if (host.IpcMode === 'host' || host.PidMode === 'host' || host.UTSMode === 'host')
    throw notSupported("sharing the host's namespaces", 'each container has its own kernel');

  // Binds are Docker's own string syntax (name:/dest[:ro]); Mounts are structured, and so is what Boson takes.
  const mounts: MountSpec[] = (strSlice(host, 'Binds', H) ?? []).map((b) => asBadRequest(() => parseVolumeSpec(b)));
  if (Array.isArray(host.Mounts)) {
    for (const m of host.Mounts) {
      if (!isObj(m)) throw badRequest('invalid mount: not an object');
      const target = typeof m.Target === 'string' ? m.Target : '';
      if (!target) throw badRequest('invalid mount config: Target must not be empty');
      const readOnly = m.ReadOnly === true;
      const source = typeof m.Source === 'string' ? m.Source : '';
      if (m.Type === 'volume') mounts.push({ type: 'volume', name: source, destination: target, readOnly });
      else if (m.Type === 'bind') {
        if (!source.startsWith('/'))
          throw badRequest(`invalid mount config for type "bind": invalid mount path: '${source}' mount path must be absolute`);
        mounts.push({ type: 'bind', source, destination: target, readOnly });
      } else throw notSupported(`mount type "${String(m.Type)}"`, 'only volume and bind mounts exist in a Boson micro-VM');
    }
  }
  const declared = isObj(body.Volumes) ? Object.keys(body.Volumes) : [];
  const targets = new Set(mounts.map((m) => m.destination));
  for (const dest of declared) {
    if (!dest.startsWith('/')) throw badRequest(`invalid volume: the container path ${JSON.stringify(dest)} must be absolute`);
    if (!targets.has(dest)) mounts.push({ type: 'volume', name: '', destination: dest, readOnly: false });
  }

  const memory = field<number>(host, 'Memory', 'number', H) ?? 0;
  let memoryMiB: number | undefined;
  if (memory < 0) throw badRequest('invalid memory limit: it must not be negative');
  if (memory > 0) {
    memoryMiB = Math.floor(memory / (1024 * 1024));
    if (memoryMiB < 64) throw badRequest('Minimum memory limit allowed is 64MB: a Boson micro-VM needs at least 64 MiB');
  }
  const nano = field<number>(host, 'NanoCpus', 'number', H) ?? 0;
  let cpus: number | undefined;
  if (nano < 0) throw badRequest('invalid NanoCPUs: it must not be negative');
  if (nano > 0) {
    cpus = Math.ceil(nano / 1e9);
    if (cpus > hostCpus) throw badRequest(`range of CPUs is from 0.01 to ${hostCpus}.00, as there are only ${hostCpus} CPUs available`);
  }

  let restartPolicy: ContainerSpec['restartPolicy'];
  if (isObj(host.RestartPolicy)) {
    const rp = host.RestartPolicy;
    const rpName = typeof rp.Name === 'string' ? rp.Name : '';
    const count = typeof rp.MaximumRetryCount === 'number' ? rp.MaximumRetryCount : 0;
    if (rpName !== '' && rpName !== 'no') {
      if (count > 0 && rpName !== 'on-failure')
        throw badRequest(`invalid restart policy: maximum retry count can only be used with 'on-failure'`);
      restartPolicy = asBadRequest(() => parseRestartPolicy(rpName === 'on-failure' && count > 0 ? `on-failure:${count}` : rpName));
    }
  }
  const autoRemove = host.AutoRemove === true;
  if (autoRemove && restartPolicy) throw badRequest(`can't create 'AutoRemove' container with restart policy`);
  let log: ContainerSpec['log'];
  if (isObj(host.LogConfig)) {
    const type = typeof host.LogConfig.Type === 'string' ? host.LogConfig.Type : '';
    if (type !== '' && type !== 'json-file' && type !== 'local')
      throw notSupported(`the ${type} logging driver`, 'container logs are json-file style files on the host (max-size, max-file)');
    const opts = strMap(host.LogConfig, 'Config', 'container.LogConfig') ?? {};
    if (Object.keys(opts).length > 0) log = asBadRequest(() => parseLogOptions(opts));
  }

  const workdir = field<string>(body, 'WorkingDir', 'string', 'container.Config');
  const user = field<string>(body, 'User', 'string', 'container.Config');
  const hostname = field<string>(body, 'Hostname', 'string', 'container.Config');
  return {
    image,
    name: name === null ? undefined : checkContainerName(name),
    process: {
      args: strSlice(body, 'Cmd', 'container.Config') ?? [],
      entrypoint,
      env: strSlice(body, 'Env', 'container.Config') ?? [],
      cwd: workdir || undefined,
      user: user || undefined,
      hostname: hostname || undefined,
      tty: field<boolean>(body, 'Tty', 'boolean', 'container.Config') ?? false,
      stdin: field<boolean>(body, 'OpenStdin', 'boolean', 'container.Config') ?? false,
    },
    resources: { memoryMiB, cpus },
    labels: strMap(body, 'Labels', 'container.Config'),
    restartPolicy,
    autoRemove,
    ...(log ? { log } : {}),
    mounts,
    network,
    ...(aliases.length > 0 ? { aliases } : {}),
    ...(ipv4Address !== undefined ? { ipv4Address } : {}),
    ...(links.length > 0 ? { links } : {}),
    ports,
    publishAll,
  };
}

/**
 * One of Docker's link strings: `name:alias`, `name` (alias = name), or the `/name:/container/alias` form a
 * container's inspect shows (Docker's opts.ParseLink).
 */
export function parseLink(text: string): { container: string; alias: string } {
  if (text === '') throw badRequest('empty string specified for links');
  const parts = text.split(':');
  if (parts.length > 2) throw badRequest(`bad format for links: ${text}`);
  const [name = '', alias] = parts;
  if (alias === undefined) return { container: name.replace(/^\//, ''), alias: name.replace(/^\//, '') };
  if (name.startsWith('/')) return { container: name.slice(1), alias: alias.slice(alias.lastIndexOf('/') + 1) };
  if (name === '' || alias === '') throw badRequest(`bad format for links: ${text}`);
  return { container: name, alias };
}

/** The aliases, static IPv4 address and links of Docker's EndpointSettings (create's EndpointsConfig entry, connect's EndpointConfig). */
export function endpointConfigOf(ec: unknown): {
  aliases: string[];
  ipv4Address?: string;
  links: Array<{ container: string; alias: string }>;
} {
  if (ec === undefined || ec === null) return { aliases: [], links: [] };
  if (!isObj(ec)) throw badRequest('json: cannot unmarshal into Go value of type network.EndpointSettings');
  const aliases = strSlice(ec, 'Aliases', 'network.EndpointSettings') ?? [];
  const ipam = isObj(ec.IPAMConfig) ? ec.IPAMConfig : {};
  const ipv4 = field<string>(ipam, 'IPv4Address', 'string', 'network.EndpointIPAMConfig');
  if (field<string>(ipam, 'IPv6Address', 'string', 'network.EndpointIPAMConfig'))
    throw notSupported('a static IPv6 address', 'Boson networks are IPv4 only');
  const links = (strSlice(ec, 'Links', 'network.EndpointSettings') ?? []).map(parseLink);
  return { aliases: [...new Set(aliases.filter((a) => a !== ''))], ...(ipv4 ? { ipv4Address: ipv4 } : {}), links };
}

/** Runs a parser of src/machine; its INVALID_ARGUMENT becomes Docker's 400 with the same message. */
function asBadRequest<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (isBosonError(err, 'INVALID_ARGUMENT')) throw badRequest(err.message);
    throw err;
  }
}

/** The binding of one PortBindings entry: "80/tcp" with HostIp and HostPort ("" any port, or a range "8000-8010"). */
function portBindingsOf(key: string, hostIp: string, hostPort: string): PortBinding[] {
  const [portText = '', protocol = 'tcp'] = key.split('/');
  if (protocol !== 'tcp' && protocol !== 'udp') throw badRequest(`invalid proto: ${protocol}`);
  const containerPort = Number(portText);
  if (!/^\d+$/.test(portText) || containerPort < 1 || containerPort > 65535) throw badRequest(`invalid containerPort: ${portText}`);
  const m = /^(\d*)(?:-(\d+))?$/.exec(hostPort);
  const low = m?.[1] ? Number(m[1]) : 0;
  const high = m?.[2] === undefined ? undefined : Number(m[2]);
  if (!m || low > 65535 || (high !== undefined && (high > 65535 || high < low || low === 0)))
    throw badRequest(`invalid hostPort: ${hostPort}`);
  return [{ hostIp, hostPort: low, containerPort, protocol, ...(high === undefined ? {} : { hostPortEnd: high }) }];
}

/** Where a named volume's data is on the host (Docker's Mountpoint / a mount's Source). */
export type VolumePath = (name: string) => string;

/** The VolumePath of a listing of volumes ('' for a volume that is not in it). */
export function volumePathOf(volumes: Array<{ name: string; mountpoint: string }>): VolumePath {
  const paths = new Map(volumes.map((v) => [v.name, v.mountpoint]));
  return (name) => paths.get(name) ?? '';
}

/** Docker's MountPoint list of a container. */
export function mountPoints(r: Container, volumePath: VolumePath): Obj[] {
  return (r.mounts ?? []).map((m: MountSpec) =>
    m.type === 'volume'
      ? {
          Type: 'volume',
          Name: m.name,
          Source: volumePath(m.name),
          Destination: m.destination,
          Driver: 'local',
          Mode: m.readOnly ? 'ro' : '',
          RW: !m.readOnly,
          Propagation: '',
        }
      : {
          Type: 'bind',
          Source: m.source,
          Destination: m.destination,
          Mode: m.readOnly ? 'ro' : '',
          RW: !m.readOnly,
          Propagation: 'rprivate',
        },
  );
}

/** NetworkSettings.Ports: {"80/tcp": [{HostIp, HostPort}]} from the ports a running container published. */
function portMap(ep: Container['endpoint']): Obj {
  const map: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
  for (const p of ep?.ports ?? [])
    (map[`${p.containerPort}/${p.protocol}`] ??= []).push({ HostIp: p.hostIp || '0.0.0.0', HostPort: String(p.hostPort) });
  return map;
}

/** HostConfig.PortBindings: the ports the container asked for ("" host port: any). */
function requestedPorts(r: Container): Obj {
  const map: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
  for (const p of r.ports ?? [])
    (map[`${p.containerPort}/${p.protocol}`] ??= []).push({ HostIp: p.hostIp, HostPort: p.hostPort ? String(p.hostPort) : '' });
  return map;
}

/** The `Ports` list of a container summary (docker ps). */
export function portList(r: Container): Obj[] {
  const ep = r.endpoint ?? null;
  return (ep?.ports ?? []).map((p) => ({
    IP: p.hostIp || '0.0.0.0',
    PrivatePort: p.containerPort,
    PublicPort: p.hostPort,
    Type: p.protocol,
  }));
}

/** What a container document shows of a network. */
export interface NetworkInfo {
  id: string;
  name: string;
  /** The subnet's prefix length. */
  prefixLen: number;
  /** The default network (no aliases or DNS names there, as on Docker's default bridge). */
  builtin: boolean;
}

/** Finds a network by exact name, exact id or unique id prefix. */
export type NetworkLookup = (idOrName: string) => NetworkInfo | undefined;

/** The networks of a machine as a lookup, read once (one that knows none where the machine has no networking). */
export async function networkLookup(networks: MachineNetworks): Promise<NetworkLookup> {
  return lookupOf(await networks.list(localContext('docker')).catch(() => []));
}

/** A lookup that knows no network (a runtime without networking). */
export const NO_NETWORKS: NetworkLookup = () => undefined;

/** The lookup of a listing of networks (the network manager's records). */
export function lookupOf(list: Array<{ id: string; name: string; subnet: string; builtin?: boolean }>): NetworkLookup {
  const infos = list.map((n) => ({ id: n.id, name: n.name, prefixLen: Number(n.subnet.split('/')[1] ?? 0), builtin: n.builtin === true }));
  return (ref) => {
    const hit = infos.find((n) => n.name === ref) ?? infos.find((n) => n.id === ref);
    if (hit) return hit;
    const byPrefix = ref.length > 0 ? infos.filter((n) => n.id.startsWith(ref)) : [];
    return byPrefix.length === 1 ? byPrefix[0] : undefined;
  };
}

/** The network a container is on (running: its endpoint's; otherwise the one it joins when it starts), if any. */
export function networkOf(r: Container, nets: NetworkLookup): NetworkInfo | undefined {
  if (r.endpoint) return nets(r.endpoint.network) ?? { id: r.endpoint.network, name: r.endpoint.network, prefixLen: 0, builtin: false };
  if ((r.network ?? 'none') === 'none') return undefined;
  return nets(r.network) ?? { id: '', name: r.network, prefixLen: 0, builtin: r.network === 'bridge' };
}

/** A stable EndpointID of a container on a network (Boson has no endpoint objects of its own). */
export function endpointId(containerId: string, networkId: string): string {
  return createHash('sha256').update(`${containerId}/${networkId}`).digest('hex');
}

/**
 * The aliases a container document shows: below API 1.45 Docker lists the short id among them on a user network
 * (compose 1.29 looks for it there and disconnects and reconnects a container without it); from 1.45 only the
 * user's.
 */
function aliasesShown(r: Container, net: NetworkInfo, version: string): string[] {
  const own = r.aliases ?? [];
  const shortId = r.id.slice(0, 12);
  if (net.builtin || compareVersions(version, '1.45') >= 0 || own.includes(shortId)) return own;
  return [shortId, ...own];
}

/** One entry of NetworkSettings.Networks (Docker's EndpointSettings). */
function endpointSettings(r: Container, net: NetworkInfo, version: string): Obj {
  const ep = r.endpoint ?? null;
  const aliases = aliasesShown(r, net, version);
  const settings: Obj = {
    IPAMConfig: r.ipv4Address ? { IPv4Address: r.ipv4Address } : null,
    Links: r.links && !net.builtin ? r.links.map((l) => `${l.name}:${l.alias}`) : null,
    Aliases: aliases.length > 0 ? aliases : null,
    MacAddress: ep?.mac ?? '',
    DriverOpts: null,
    NetworkID: net.id,
    EndpointID: ep && net.id ? endpointId(r.id, net.id) : '',
    Gateway: ep?.gateway ?? '',
    IPAddress: ep?.address ?? '',
    IPPrefixLen: ep ? net.prefixLen : 0,
    IPv6Gateway: '',
    GlobalIPv6Address: '',
    GlobalIPv6PrefixLen: 0,
  };
  // DNSNames came with API 1.44: the names the container answers to on a user network.
  if (compareVersions(version, '1.44') >= 0)
    settings.DNSNames = net.builtin ? null : [...new Set([r.name, ...(r.aliases ?? []), r.id.slice(0, 12)])];
  return settings;
}

/** NetworkSettings: the network a container is on, keyed by its name, with the endpoint while it runs. */
function networkSettings(r: Container, summary: boolean, nets: NetworkLookup, version: string): Obj {
  const ep = r.endpoint ?? null;
  const net = networkOf(r, nets);
  const networks: Obj = {};
  if (net) networks[net.name] = endpointSettings(r, net, version);
  if (summary) return { Networks: networks };
  return {
    Bridge: '',
    SandboxID: '',
    SandboxKey: '',
    Ports: portMap(ep),
    HairpinMode: false,
    LinkLocalIPv6Address: '',
    LinkLocalIPv6PrefixLen: 0,
    SecondaryIPAddresses: null,
    SecondaryIPv6Addresses: null,
    EndpointID: ep && net?.id ? endpointId(r.id, net.id) : '',
    Gateway: ep?.gateway ?? '',
    GlobalIPv6Address: '',
    GlobalIPv6PrefixLen: 0,
    IPAddress: ep?.address ?? '',
    IPPrefixLen: ep && net ? net.prefixLen : 0,
    IPv6Gateway: '',
    MacAddress: ep?.mac ?? '',
    Networks: networks,
  };
}

/** A `GET /containers/json` entry (`nets` names the container's network; `version` is the client's API version). */
export function containerSummary(
  r: Container,
  volumePath: VolumePath,
  now = Date.now(),
  nets: NetworkLookup = NO_NETWORKS,
  version = API_VERSION,
): Obj {
  return {
    Id: r.id,
    Names: [`/${r.name}`],
    Image: r.image,
    ImageID: withSha(r.imageId),
    Command: r.config.argv.join(' '),
    Created: unixSeconds(r.created),
    Ports: portList(r),
    Labels: r.config.labels ?? {},
    // Docker knows no suspended state: a suspended container is shown as paused (it still counts as up; docker ps lists it).
    State: dockerState(r),
    Status: statusText(r, now),
    HostConfig: { NetworkMode: r.network ?? 'none' },
    NetworkSettings: networkSettings(r, true, nets, version),
    Mounts: mountPoints(r, volumePath),
  };
}

/**
 * Docker's State.Status of a container: a VM paused on a full disk, and a suspended container (saved to a file,
 * which Docker has no word for: like a paused one it is neither running code nor exited), are "paused".
 */
function dockerState(r: Container): string {
  if (r.state === 'suspended' || (r.state === 'running' && r.pausedReason !== undefined)) return 'paused';
  return r.state;
}

/**
 * A `GET /containers/{id}/json` document. `imageEntrypoint` (the image's, when it is still there) tells Docker's
 * Entrypoint and Cmd apart in the container's argv.
 */
export function containerInspect(
  r: Container,
  imageEntrypoint: string[] | null,
  volumePath: VolumePath,
  nets: NetworkLookup = NO_NETWORKS,
  version = API_VERSION,
): Obj {
  const ep = imageEntrypoint ?? [];
  const argv = r.config.argv;
  const split = ep.length > 0 && ep.length <= argv.length && ep.every((s, i) => argv[i] === s);
  const running = r.state === 'running' || r.state === 'suspended';
  const volumes: Obj = {};
  for (const m of r.mounts ?? []) volumes[m.destination] = {};
  return {
    Id: r.id,
    Created: r.created,
    Path: argv[0] ?? '',
    Args: argv.slice(1),
    State: {
      Status: dockerState(r),
      Running: running,
      Paused: r.pausedReason !== undefined || r.state === 'suspended',
      Restarting: r.state === 'restarting',
      OOMKilled: false,
      Dead: r.state === 'dead',
      Pid: r.state === 'running' ? (r.vmPid ?? 0) : 0,
      ExitCode: r.exitCode ?? 0,
      Error: r.error ?? '',
      StartedAt: r.startedAt ?? ZERO_TIME,
      FinishedAt: r.finishedAt ?? ZERO_TIME,
    },
    Image: withSha(r.imageId),
    ResolvConfPath: '',
    HostnamePath: '',
    HostsPath: '',
    LogPath: '',
    Name: `/${r.name}`,
    RestartCount: r.restartCount,
    Driver: 'boson-microvm',
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    ExecIDs: null,
    HostConfig: {
      Binds: (r.mounts ?? [])
        .filter((m) => m.type === 'bind' || !m.anonymous)
        .map((m) => `${m.type === 'bind' ? m.source : m.name}:${m.destination}${m.readOnly ? ':ro' : ''}`),
      ContainerIDFile: '',
      LogConfig: {
        Type: 'json-file',
        Config: r.log?.maxSizeBytes ? { 'max-size': String(r.log.maxSizeBytes), 'max-file': String(r.log.maxFiles ?? 1) } : {},
      },
      NetworkMode: (r.network ?? 'none') === 'bridge' ? 'bridge' : (r.network ?? 'none'),
      Links: r.links ? r.links.map((l) => `/${l.name}:/${r.name}/${l.alias}`) : null,
      PortBindings: requestedPorts(r),
      RestartPolicy: { Name: r.restartPolicy.name, MaximumRetryCount: r.restartPolicy.maximumRetryCount },
      AutoRemove: r.autoRemove,
      VolumeDriver: '',
      VolumesFrom: null,
      ConsoleSize: [0, 0],
      CapAdd: null,
      CapDrop: null,
      Dns: [],
      DnsOptions: [],
      DnsSearch: [],
      ExtraHosts: null,
      Privileged: false,
      PublishAllPorts: false,
      ReadonlyRootfs: false,
      Runtime: 'boson',
      Isolation: '',
      Memory: r.resources.memoryMiB * 1024 * 1024,
      NanoCpus: r.resources.cpus * 1e9,
      CpuShares: 0,
      Mounts: [],
    },
    GraphDriver: { Name: 'boson-microvm', Data: null },
    Mounts: mountPoints(r, volumePath),
    Config: {
      Hostname: r.config.hostname,
      Domainname: '',
      User: r.config.user === '0' ? '' : r.config.user,
      AttachStdin: false,
      AttachStdout: false,
      AttachStderr: false,
      Tty: r.config.tty,
      OpenStdin: r.config.openStdin,
      StdinOnce: false,
      Env: r.config.env,
      Cmd: split ? argv.slice(ep.length) : argv,
      Image: r.image,
      Volumes: Object.keys(volumes).length > 0 ? volumes : null,
      WorkingDir: r.config.cwd,
      Entrypoint: split ? ep : null,
      OnBuild: null,
      Labels: r.config.labels ?? {},
    },
    NetworkSettings: networkSettings(r, false, nets, version),
  };
}

/** The filters `GET /containers/json` understands. */
export const CONTAINER_FILTERS = ['status', 'name', 'id', 'label', 'ancestor', 'exited', 'volume', 'network'];

/** True when a label filter ("key" or "key=value") matches. */
function labelFilter(labels: Record<string, string>, v: string): boolean {
  const eq = v.indexOf('=');
  return eq < 0 ? v in labels : labels[v.slice(0, eq)] === v.slice(eq + 1);
}

/** Applies ps filters (each key: any value matches, except labels: every one must; all keys must match). */
export function matchesFilters(
  r: Container,
  filters: Map<string, string[]>,
  imageIdsOf: (ref: string) => string | null,
  nets: NetworkLookup = NO_NETWORKS,
): boolean {
  for (const [key, values] of filters) {
    if (values.length === 0) continue;
    if (key === 'label') {
      if (!values.every((v) => labelFilter(r.config.labels ?? {}, v))) return false;
      continue;
    }
    const ok = values.some((v) => {
      switch (key) {
        case 'status':
          if (!['created', 'restarting', 'running', 'removing', 'paused', 'exited', 'dead'].includes(v))
            throw badRequest(`invalid filter 'status=${v}'`);
          return dockerState(r) === v;
        case 'name': {
          try {
            return new RegExp(v.replace(/^\//, '')).test(r.name);
          } catch {
            throw badRequest(`invalid filter 'name=${v}'`);
          }
        }
        case 'id':
          return r.id.startsWith(v);
        case 'network': {
          const mine = networkOf(r, nets);
          const wanted = nets(v);
          return mine !== undefined && (wanted ? wanted.id === mine.id : mine.name === v || mine.id === v);
        }
        case 'ancestor': {
          const id = imageIdsOf(v);
          return r.image === v || familiarName(r.image) === v || (id !== null && id === withSha(r.imageId));
        }
        case 'exited': {
          const n = Number(v);
          if (!Number.isInteger(n)) throw badRequest(`invalid filter 'exited=${v}'`);
          return r.state === 'exited' && r.exitCode === n;
        }
        case 'volume':
          return (r.mounts ?? []).some((m) => (m.type === 'volume' && m.name === v) || m.destination === v);
        default:
          return false;
      }
    });
    if (!ok) return false;
  }
  return true;
}
