/**
 * System answers of the Docker API: /version, /info, /system/df and the /events stream, from the machine port.
 */
import os from 'node:os';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BosonPaths } from '../common/index.ts';
import { hostCpuCount } from '../machine/client/index.ts';
import { localContext, type Container, type Event, type Image, type MachineEvents, type Volume } from '../machine/port/index.ts';
import { badRequest } from './errors.ts';
import { API_VERSION, MIN_API_VERSION, parseFilters } from './http.ts';
import { containerSummary, type VolumePath } from './containers.ts';
import { imageSummary } from './images.ts';

type Obj = Record<string, unknown>;

const LOCAL = localContext('docker');

/** Boson's version as the Docker API reports it. */
export const ENGINE_VERSION = '0.1.0-boson';

const arch = (): string => (({ x64: 'amd64', arm64: 'arm64' }) as Record<string, string>)[os.arch()] ?? os.arch();

/** `GET /version`. */
export function versionInfo(): Obj {
  const details = {
    ApiVersion: API_VERSION,
    MinAPIVersion: MIN_API_VERSION,
    GitCommit: 'boson',
    GoVersion: `node${process.versions.node}`,
    Os: 'linux',
    Arch: arch(),
    KernelVersion: os.release(),
    BuildTime: '',
    Experimental: 'false',
  };
  return {
    Platform: { Name: 'Boson Engine (QEMU micro-VMs)' },
    Components: [{ Name: 'Engine', Version: ENGINE_VERSION, Details: details }],
    Version: ENGINE_VERSION,
    ApiVersion: API_VERSION,
    MinAPIVersion: MIN_API_VERSION,
    GitCommit: 'boson',
    GoVersion: `node${process.versions.node}`,
    Os: 'linux',
    Arch: arch(),
    KernelVersion: os.release(),
    BuildTime: '',
  };
}

/** What `GET /info` counts. */
export interface InfoInput {
  containers: Container[];
  imageCount: number;
  eventListeners: number;
  paths: BosonPaths;
}

/** `GET /info`. */
export function systemInfo({ containers: records, imageCount, eventListeners, paths }: InfoInput): Obj {
  const count = (s: string): number => records.filter((r) => r.state === s).length;
  return {
    ID: 'boson',
    Containers: records.length,
    ContainersRunning: count('running') + count('restarting'),
    ContainersPaused: 0,
    ContainersStopped: records.length - count('running') - count('restarting'),
    Images: imageCount,
    Driver: 'boson-microvm',
    DriverStatus: [
      ['Root disks', 'erofs/ext4 images, one per layer chain'],
      ['Writable layer', 'ext4 scratch disk per container'],
    ],
    Plugins: { Volume: ['local'], Network: [], Authorization: null, Log: ['json-file'] },
    MemoryLimit: true,
    SwapLimit: false,
    CpuCfsPeriod: false,
    CpuCfsQuota: false,
    CPUShares: false,
    CPUSet: false,
    PidsLimit: false,
    IPv4Forwarding: false,
    Debug: false,
    NFd: 0,
    OomKillDisable: false,
    NGoroutines: 0,
    SystemTime: new Date().toISOString(),
    LoggingDriver: 'json-file',
    CgroupDriver: 'none',
    CgroupVersion: '',
    NEventsListener: eventListeners,
    KernelVersion: os.release(),
    OperatingSystem: 'Boson (every container in its own QEMU micro-VM)',
    OSVersion: '',
    OSType: 'linux',
    Architecture: os.machine(),
    IndexServerAddress: 'https://index.docker.io/v1/',
    RegistryConfig: {
      AllowNondistributableArtifactsCIDRs: null,
      AllowNondistributableArtifactsHostnames: null,
      InsecureRegistryCIDRs: ['127.0.0.0/8', '::1/128'],
      IndexConfigs: { 'docker.io': { Name: 'docker.io', Mirrors: [], Secure: true, Official: true } },
      Mirrors: null,
    },
    NCPU: hostCpuCount(),
    MemTotal: os.totalmem(),
    GenericResources: null,
    DockerRootDir: paths.stateDir,
    HttpProxy: '',
    HttpsProxy: '',
    NoProxy: '',
    Name: os.hostname(),
    Labels: [],
    ExperimentalBuild: false,
    ServerVersion: ENGINE_VERSION,
    Runtimes: { boson: { path: 'qemu-system-x86_64' } },
    DefaultRuntime: 'boson',
    Swarm: { NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '', RemoteManagers: null },
    LiveRestoreEnabled: true,
    Isolation: '',
    InitBinary: 'boson-init',
    ContainerdCommit: { ID: '' },
    RuncCommit: { ID: '' },
    InitCommit: { ID: '' },
    SecurityOptions: ['name=microvm'],
    Warnings: [
      'WARNING: Boson runs every container in its own micro-VM, with one network card chosen when it boots: a running container cannot be connected to another network',
    ],
  };
}

/** What `GET /system/df` reports on. */
export interface DiskUsageInput {
  containers: Container[];
  images: Image[];
  /** Each volume with the bytes it uses. */
  volumes: Array<{ volume: Volume; size: number }>;
  volumePath: VolumePath;
}

/** `GET /system/df`. */
export function diskUsage({ containers: records, images, volumes, volumePath }: DiskUsageInput): Obj {
  const volumeRows = volumes.map(({ volume: v, size }) => {
    const users = records.filter((r) => (r.mounts ?? []).some((m) => m.type === 'volume' && m.name === v.name)).length;
    return {
      Name: v.name,
      Driver: 'local',
      Mountpoint: v.mountpoint,
      CreatedAt: v.created,
      Labels: v.labels,
      Scope: 'local',
      Options: {},
      UsageData: { Size: size, RefCount: users },
    };
  });
  return {
    LayersSize: images.reduce((s, i) => s + i.size, 0),
    Images: images.map((i) => imageSummary(i, records.filter((r) => r.imageId === i.id).length)),
    Containers: records.map((r) => ({
      ...containerSummary(r, volumePath),
      SizeRw: 0,
      SizeRootFs: images.find((i) => i.id === r.imageId)?.size ?? 0,
    })),
    Volumes: volumeRows,
    BuildCache: [],
  };
}

/** One machine event in Docker's shape. */
export function dockerEvent(e: Event): Obj {
  const timeNano = BigInt(e.timeNano);
  const time = Number(timeNano / 1_000_000_000n);
  const attrs = { ...e.attributes };
  return {
    status: e.action,
    id: e.actorId,
    from: attrs.image ?? '',
    Type: e.type,
    Action: e.action,
    Actor: { ID: e.actorId, Attributes: attrs },
    scope: 'local',
    time,
    timeNano: Number(timeNano),
  };
}

function parseTime(v: string | null): bigint | undefined {
  if (v === null || v === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) {
    const [s, frac = ''] = v.split('.');
    return BigInt(s!) * 1_000_000_000n + BigInt((frac + '000000000').slice(0, 9));
  }
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) throw badRequest(`invalid time: ${v}`);
  return BigInt(ms) * 1_000_000n;
}

/** Docker's time parameters (unix seconds with fraction, or RFC 3339) in nanoseconds. */
export { parseTime };

/**
 * `GET /events`: past events in [since, until], then live ones until `until` or the client goes away; `streams`
 * counts the open ones (docker info's NEventsListener).
 */
export async function eventStream(
  events: MachineEvents,
  streams: { open: number },
  req: IncomingMessage,
  res: ServerResponse,
  q: URLSearchParams,
): Promise<void> {
  const since = parseTime(q.get('since'));
  const until = parseTime(q.get('until'));
  const filters = parseFilters(q, ['type', 'event', 'container', 'image', 'label', 'volume', 'network', 'daemon', 'scope']);
  const match = (e: Event): boolean => {
    for (const [k, values] of filters) {
      if (values.length === 0) continue;
      const hit = values.some((v) => {
        switch (k) {
          case 'type':
            return e.type === v;
          case 'event':
            return e.action === v;
          case 'container':
            return e.type === 'container' && (e.actorId.startsWith(v) || e.attributes.name === v);
          case 'image':
            return e.attributes.image === v;
          case 'volume':
            return e.type === 'volume' && e.actorId === v;
          case 'label': {
            const eq = v.indexOf('=');
            return eq < 0 ? v in e.attributes : e.attributes[v.slice(0, eq)] === v.slice(eq + 1);
          }
          case 'scope':
            return v === 'local';
          default:
            return false;
        }
      });
      if (!hit) return false;
    }
    return true;
  };
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.flushHeaders();
  const gone = new AbortController();
  req.on('close', () => gone.abort());
  res.on('close', () => gone.abort());
  streams.open++;
  try {
    await events.follow(
      LOCAL,
      { ...(since !== undefined ? { sinceNs: since } : {}), ...(until !== undefined ? { untilNs: until } : {}) },
      (e) => {
        if (match(e)) res.write(JSON.stringify(dockerEvent(e)) + '\n');
      },
      gone.signal,
    );
  } finally {
    streams.open--;
    res.end();
  }
}
