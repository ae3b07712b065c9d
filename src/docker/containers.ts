/**
 * Containers in Docker's shapes: the create body (Config + HostConfig) turned into one MachineRuntime
 * CreateRequest, and container records turned into `GET /containers/json` summaries and `GET
 * /containers/{id}/json` inspect documents. What Boson cannot honour is refused here, by name.
 */
import { localContext, parseRestartPolicy, parseVolumeSpec, statusText, validateContainerName, type ContainerRecord, type ContainerSpec, type MachineRuntime, type MountSpec, type PortBinding } from '../machine/index.ts';
import { isBosonError } from '../common/index.ts';
import { badRequest, notSupported } from './errors.ts';
import { familiarName, unixSeconds, withSha, ZERO_TIME } from './format.ts';

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function field<T>(o: Obj, key: string, type: 'string' | 'boolean' | 'number', where: string): T | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== type) throw badRequest(`json: cannot unmarshal ${typeof v} into Go struct field ${where}.${key} of type ${type === 'number' ? 'int64' : type === 'boolean' ? 'bool' : 'string'}`);
  return v as T;
}

/** Docker's StrSlice: a JSON string or array of strings (or null). */
function strSlice(o: Obj, key: string, where: string): string[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return [v];
  if (Array.isArray(v) && v.every((s) => typeof s === 'string')) return v as string[];
  throw badRequest(`json: cannot unmarshal ${Array.isArray(v) ? 'array' : typeof v} into Go struct field ${where}.${key} of type strslice.StrSlice`);
}

function strMap(o: Obj, key: string, where: string): Record<string, string> | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!isObj(v) || !Object.values(v).every((s) => typeof s === 'string')) throw badRequest(`json: cannot unmarshal into Go struct field ${where}.${key} of type map[string]string`);
  return v as Record<string, string>;
}

/** Validates a container name as Docker does (a leading '/' is allowed). */
export function checkContainerName(name: string): string {
  const bare = name.replace(/^\//, '');
  try {
    validateContainerName(bare);
  } catch (err) {
    if (isBosonError(err, 'INVALID_ARGUMENT')) throw badRequest(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
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
  if (netMode === 'host' || netMode.startsWith('container:')) throw notSupported(`network mode "${netMode}"`, 'each micro-VM has its own network stack');
  const endpoints = isObj(body.NetworkingConfig) && isObj(body.NetworkingConfig.EndpointsConfig) ? Object.keys(body.NetworkingConfig.EndpointsConfig) : [];
  const chosen = endpoints[0] ?? netMode;
  const network = chosen === '' || chosen === 'default' || chosen === 'bridge' ? undefined : chosen;
  if (host.Privileged === true) throw notSupported('--privileged', 'a micro-VM has no host devices or capabilities to grant');
  if (Array.isArray(host.VolumesFrom) && host.VolumesFrom.length > 0) throw notSupported('--volumes-from');
  if (Array.isArray(host.Devices) && host.Devices.length > 0) throw notSupported('--device', 'a micro-VM has no host devices');
  if (typeof host.PidMode === 'string' && host.PidMode.startsWith('container:')) throw notSupported('--pid container:…');
  if (host.IpcMode === 'host' || host.PidMode === 'host' || host.UTSMode === 'host') throw notSupported('sharing the host\'s namespaces', 'each container has its own kernel');

  // Binds are Docker's own string syntax (name:/dest[:ro]); Mounts are structured, and so is what Boson takes.
  const mounts: MountSpec[] = (strSlice(host, 'Binds', H) ?? []).map(parseVolumeSpec);
  if (Array.isArray(host.Mounts)) {
    for (const m of host.Mounts) {
      if (!isObj(m)) throw badRequest('invalid mount: not an object');
      const target = typeof m.Target === 'string' ? m.Target : '';
      if (!target) throw badRequest('invalid mount config: Target must not be empty');
      const readOnly = m.ReadOnly === true;
      const source = typeof m.Source === 'string' ? m.Source : '';
      if (m.Type === 'volume') mounts.push({ type: 'volume', name: source, destination: target, readOnly });
      else if (m.Type === 'bind') {
        if (!source.startsWith('/')) throw badRequest(`invalid mount config for type "bind": invalid mount path: '${source}' mount path must be absolute`);
        mounts.push({ type: 'bind', source, destination: target, readOnly });
      } else throw notSupported(`mount type "${String(m.Type)}"`, 'only volume and bind mounts exist in a Boson micro-VM');
    }
  }
  const declared = isObj(body.Volumes) ? Object.keys(body.Volumes) : [];
  const targets = new Set(mounts.map((m) => m.destination));
  for (const dest of declared) if (!targets.has(dest)) mounts.push({ type: 'volume', name: '', destination: dest, readOnly: false });

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
      if (count > 0 && rpName !== 'on-failure') throw badRequest(`invalid restart policy: maximum retry count can only be used with 'on-failure'`);
      restartPolicy = parseRestartPolicy(rpName === 'on-failure' && count > 0 ? `on-failure:${count}` : rpName);
    }
  }
  const autoRemove = host.AutoRemove === true;
  if (autoRemove && restartPolicy) throw badRequest(`can't create 'AutoRemove' container with restart policy`);

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
    mounts,
    network,
    ports,
    publishAll,
  };
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
  if (!m || low > 65535 || (high !== undefined && (high > 65535 || high < low || low === 0))) throw badRequest(`invalid hostPort: ${hostPort}`);
  return [{ hostIp, hostPort: low, containerPort, protocol, ...(high === undefined ? {} : { hostPortEnd: high }) }];
}

/** Docker's MountPoint list of a record. */
export function mountPoints(service: MachineRuntime, r: ContainerRecord): Obj[] {
  return (r.mounts ?? []).map((m: MountSpec) => m.type === 'volume'
    ? { Type: 'volume', Name: m.name, Source: service.volumes.diskPath(m.name), Destination: m.destination, Driver: 'local', Mode: m.readOnly ? 'ro' : '', RW: !m.readOnly, Propagation: '' }
    : { Type: 'bind', Source: m.source, Destination: m.destination, Mode: m.readOnly ? 'ro' : '', RW: !m.readOnly, Propagation: 'rprivate' });
}

interface EndpointLike { network: string; address: string; gateway: string; mac: string; ports?: Array<{ hostIp: string; hostPort: number; containerPort: number; protocol: string }> }

/** NetworkSettings.Ports: {"80/tcp": [{HostIp, HostPort}]} from the ports a running container published. */
function portMap(ep: EndpointLike | null): Obj {
  const map: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
  for (const p of ep?.ports ?? []) (map[`${p.containerPort}/${p.protocol}`] ??= []).push({ HostIp: p.hostIp || '0.0.0.0', HostPort: String(p.hostPort) });
  return map;
}

/** HostConfig.PortBindings: the ports the container asked for ("" host port: any). */
function requestedPorts(r: ContainerRecord): Obj {
  const map: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
  for (const p of r.ports ?? []) (map[`${p.containerPort}/${p.protocol}`] ??= []).push({ HostIp: p.hostIp, HostPort: p.hostPort ? String(p.hostPort) : '' });
  return map;
}

/** The `Ports` list of a container summary (docker ps). */
export function portList(r: ContainerRecord): Obj[] {
  const ep = (r as ContainerRecord & { endpoint?: EndpointLike | null }).endpoint ?? null;
  return (ep?.ports ?? []).map((p) => ({ IP: p.hostIp || '0.0.0.0', PrivatePort: p.containerPort, PublicPort: p.hostPort, Type: p.protocol }));
}

/** NetworkSettings (empty while Boson's Docker API has no networking; filled from a record's endpoint when present). */
function networkSettings(r: ContainerRecord, summary: boolean): Obj {
  const ep = (r as ContainerRecord & { endpoint?: EndpointLike | null }).endpoint ?? null;
  const networks: Obj = {};
  if (ep) networks[ep.network] = { IPAMConfig: null, Links: null, Aliases: null, MacAddress: ep.mac, NetworkID: ep.network, EndpointID: '', Gateway: ep.gateway, IPAddress: ep.address, IPPrefixLen: 0, IPv6Gateway: '', GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0, DriverOpts: null, DNSNames: null };
  if (summary) return { Networks: networks };
  return {
    Bridge: '', SandboxID: '', SandboxKey: '', Ports: portMap(ep), HairpinMode: false, LinkLocalIPv6Address: '', LinkLocalIPv6PrefixLen: 0,
    SecondaryIPAddresses: null, SecondaryIPv6Addresses: null, EndpointID: '', Gateway: ep?.gateway ?? '', GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0,
    IPAddress: ep?.address ?? '', IPPrefixLen: 0, IPv6Gateway: '', MacAddress: ep?.mac ?? '', Networks: networks,
  };
}

/** A `GET /containers/json` entry. */
export function containerSummary(service: MachineRuntime, r: ContainerRecord, now = Date.now()): Obj {
  return {
    Id: r.id,
    Names: [`/${r.name}`],
    Image: r.image,
    ImageID: withSha(r.imageId),
    Command: r.config.argv.join(' '),
    Created: unixSeconds(r.created),
    Ports: portList(r),
    Labels: r.config.labels ?? {},
    State: r.state,
    Status: statusText(r, now),
    HostConfig: { NetworkMode: 'none' },
    NetworkSettings: networkSettings(r, true),
    Mounts: mountPoints(service, r),
  };
}

/** A `GET /containers/{id}/json` document. */
export async function containerInspect(service: MachineRuntime, r: ContainerRecord): Promise<Obj> {
  const image = await service.imageService.inspect(localContext('docker'), r.imageId).catch(() => null);
  const ep = image?.config.entrypoint ?? [];
  const argv = r.config.argv;
  const split = ep.length > 0 && ep.length <= argv.length && ep.every((s, i) => argv[i] === s);
  const running = r.state === 'running';
  const volumes: Obj = {};
  for (const m of r.mounts ?? []) volumes[m.destination] = {};
  return {
    Id: r.id,
    Created: r.created,
    Path: argv[0] ?? '',
    Args: argv.slice(1),
    State: {
      Status: running && r.pausedReason !== undefined ? 'paused' : r.state,
      Running: running,
      Paused: r.pausedReason !== undefined,
      Restarting: r.state === 'restarting',
      OOMKilled: false,
      Dead: r.state === 'dead',
      Pid: running ? r.vmPid ?? 0 : 0,
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
      Binds: (r.mounts ?? []).filter((m) => m.type === 'bind' || !m.anonymous).map((m) => `${m.type === 'bind' ? m.source : m.name}:${m.destination}${m.readOnly ? ':ro' : ''}`),
      ContainerIDFile: '',
      LogConfig: { Type: 'json-file', Config: {} },
      NetworkMode: (r.network ?? 'none') === 'bridge' ? 'bridge' : r.network ?? 'none',
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
    Mounts: mountPoints(service, r),
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
    NetworkSettings: networkSettings(r, false),
  };
}

/** The filters `GET /containers/json` understands. */
export const CONTAINER_FILTERS = ['status', 'name', 'id', 'label', 'ancestor', 'exited', 'volume'];

/** Applies ps filters (each key: any value matches; all keys must match). */
export function matchesFilters(r: ContainerRecord, filters: Map<string, string[]>, imageIdsOf: (ref: string) => string | null): boolean {
  for (const [key, values] of filters) {
    if (values.length === 0) continue;
    const ok = values.some((v) => {
      switch (key) {
        case 'status':
          if (!['created', 'restarting', 'running', 'removing', 'paused', 'exited', 'dead'].includes(v)) throw badRequest(`invalid filter 'status=${v}'`);
          return r.state === v;
        case 'name': {
          try {
            return new RegExp(v.replace(/^\//, '')).test(r.name);
          } catch {
            throw badRequest(`invalid filter 'name=${v}'`);
          }
        }
        case 'id':
          return r.id.startsWith(v);
        case 'label': {
          const eq = v.indexOf('=');
          const labels = r.config.labels ?? {};
          return eq < 0 ? v in labels : labels[v.slice(0, eq)] === v.slice(eq + 1);
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
