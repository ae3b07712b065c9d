/**
 * The composition root: the one place that reads the configuration and builds the implementations, in order:
 * state store -> images -> volumes -> networks -> the runtime -> the personalities. Everything below takes what
 * it needs as arguments; nothing below constructs its own collaborators.
 */
import { readFileSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { StateStore } from '../common/index.ts';
import { ImageStore, type ImageStoreOptions } from '../image/index.ts';
import { DEFAULT_PASST_GUARD, qemuVmm, userIds, type QemuOptions } from '../vmm/index.ts';
import {
  ContainerRegistry,
  EventService,
  ImageService,
  MachineRuntime,
  NetworkManager,
  NetworkService,
  PodNetworks,
  VolumeManager,
  VolumeService,
  bootBundle,
  defaultBindPolicy,
  openStateStore,
  startDaemon,
  volumeUsersAmong,
  type GuestKernelOptions,
  type JailPolicy,
} from '../machine/index.ts';
import { clientSocketPath } from './client-settings.ts';
import { daemonSocketPath } from '../common/index.ts';
import { loadConfig, type HostConfig } from './config.ts';
import { imageStoreOptions, registryOptions } from './images.ts';
import { makeLogger, plainLogger } from './logging.ts';
import { resolveTcpEndpoint, type BosonPaths, type Logger, type TcpEndpointRequest } from '../common/index.ts';

export { loadConfig, type HostConfig };

/** Boson's version (the package's), as the APIs report it. */
const PACKAGE_VERSION = '0.1.0';

/** The QEMU confinement this host can give (see JailPolicy): what root can do, and what a rootless user can. */
export function jailPolicy(config: HostConfig): JailPolicy | undefined {
  if (!config.jail) return undefined;
  const root = !config.paths.rootless;
  const user = root && config.vmmUser !== '' && userExists(config.vmmUser) ? config.vmmUser : undefined;
  return { sandbox: true, user, chroot: root, emptyDir: path.join(config.paths.runDir, 'empty'), cgroupParent: root ? 'boson' : undefined };
}

/** The uid that owns taps: the VMM user of a jailed root daemon, else none. */
function vmmTapOwner(config: HostConfig): number | undefined {
  const user = jailPolicy(config)?.user;
  return user ? (userIds(user)?.uid ?? undefined) : undefined;
}

/** True when the system has a user of that name. */
function userExists(name: string): boolean {
  try {
    return readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .some((l) => l.split(':')[0] === name);
  } catch {
    return false;
  }
}

/** How this host runs QEMU (BOSON_QEMU, BOSON_ACCEL, BOSON_TCG_TB_MIB, BOSON_VIRTIOFSD, BOSON_PASST). */
export function qemuOptions(config: HostConfig): QemuOptions {
  return {
    qemu: config.qemu,
    accel: config.accel,
    tcgTbMiB: config.tcgTbMiB,
    virtiofsd: config.virtiofsd,
    passt: config.passt,
    // Built by scripts/setup.sh from src/vmm/passt-guard.c.
    passtGuard: DEFAULT_PASST_GUARD,
  };
}

/** The guest kernel and modules this host boots when configured (BOSON_GUEST_KERNEL, BOSON_GUEST_MODULES). */
export function guestKernelOptions(config: HostConfig): GuestKernelOptions {
  return { kernelPath: config.guestKernel, modulesDir: config.guestModules };
}

/** The daemon socket of this host (BOSON_HOST overrides <run dir>/boson.sock). */
export function hostSocketPath(config?: HostConfig): string {
  return config ? daemonSocketPath(config.paths, config.host) : clientSocketPath();
}

/** The structured log of a long-running Boson process (BOSON_LOG_LEVEL, BOSON_LOG_FILE). */
export function hostLogger(config: HostConfig = loadConfig()): Logger {
  return makeLogger({ level: config.logLevel, file: config.logFile });
}

/** The controller's database file in the state directory (SQLite, unless it keeps its state in etcd). */
export const CONTROLLER_DB = 'controller.db';

/** The controller's UNIX socket on this host (<run dir>/controller.sock). */
export function controllerSocketPath(paths: BosonPaths): string {
  return path.join(paths.runDir, 'controller.sock');
}

/** How a runtime is hosted: by a daemon (VMs outlive it) or embedded in a CLI process (VMs die with it). */
export type RuntimeHosting = 'daemon' | 'embedded';

/** The image service over this host's store; the images containers use come from `registry`. */
function imageService(config: HostConfig, images: ImageStore, registry: ContainerRegistry): ImageService {
  return new ImageService(images, {
    spoolDir: path.join(config.paths.stateDir, 'tmp'),
    imagesInUse: async () => new Set((await registry.list().catch(() => [])).map((r) => r.imageId)),
  });
}

/** Pod networks through CNI, with the settings of `config` (the BOSON_CNI settings). */
function podNetworks(config: HostConfig, log: Logger): PodNetworks {
  const prefix = config.netPrefix ?? 'boson';
  return new PodNetworks({
    cni: {
      confDir: config.cni.confDir,
      binDirs: config.cni.binDirs,
      defaults: { bridge: `${prefix}-cni0`, subnet: config.cni.subnet, dataDir: path.join(config.paths.stateDir, 'cni', 'networks') },
    },
    prefix,
    tapOwner: vmmTapOwner(config),
    log: log.child({ component: 'cni' }),
  });
}

/** Builds the runtime of this host for `hosting`, from `config` (default: read from the environment). */
export function buildRuntime(hosting: RuntimeHosting, config: HostConfig = loadConfig(), log: Logger = plainLogger()): MachineRuntime {
  const { paths } = config;
  // One state store for everything the runtime keeps; the runtime closes it on close().
  const store = openStateStore(paths.stateDir);
  const registry = new ContainerRegistry(store, paths.stateDir);
  const images = new ImageStore(store, paths.stateDir, imageStoreOptions(config));
  const volumes = new VolumeManager(store, paths.stateDir);
  const networks =
    hosting === 'daemon'
      ? new NetworkManager(store, {
          stateDir: paths.stateDir,
          rootless: paths.rootless,
          prefix: config.netPrefix,
          defaultSubnet: config.netSubnet,
          subnetPool: config.netPool,
          // A jailed QEMU runs as the VMM user from its first instruction (src/vmm/prejail.ts): its taps are that user's.
          tapOwner: vmmTapOwner(config),
        })
      : null;
  const runtime: MachineRuntime = new MachineRuntime(
    {
      paths,
      detached: hosting === 'daemon',
      bootTimeoutMs: config.bootTimeoutMs,
      virtiofsd: config.virtiofsd,
      debug: config.debug,
      log,
      bindPolicy: defaultBindPolicy([paths.stateDir, paths.runDir, paths.guestDir], config.bindAllow ?? null),
      jail: jailPolicy(config),
      logDefaults: config.logDefaults,
      warm: config.warm,
      ...(hosting === 'daemon' && config.cni.enabled && !paths.rootless ? { podNetworks: podNetworks(config, log) } : {}),
    },
    {
      registry,
      images,
      imageService: imageService(config, images, registry),
      volumes,
      networks,
      store,
      vmm: qemuVmm(qemuOptions(config)),
      bootBundle: () => bootBundle(paths, guestKernelOptions(config)),
      volumeService: new VolumeService(volumes, async (name) => volumeUsersAmong(await registry.list(), name)),
      // A container's network changes under the runtime's lock for that container (the runtime exists by the first call).
      networkService: new NetworkService(networks, {
        list: () => registry.list(),
        setNetwork: (ref, network, check, options) => runtime.setContainerNetwork(ref, network, check, options),
      }),
      eventService: new EventService(registry),
    },
  );
  return runtime;
}

/** The state stores this process opened for the CLI's own reads and writes, by state directory (open until exit). */
const cliStores = new Map<string, StateStore>();

/** The state store of `stateDir` for a CLI command (one per process; the daemon and other processes share the file). */
export function openHostStore(stateDir: string): StateStore {
  let store = cliStores.get(stateDir);
  if (!store) cliStores.set(stateDir, (store = openStateStore(stateDir)));
  return store;
}

/** The image store of `stateDir`, for CLI commands that work on images in their own process (pull, images, rmi...). */
export function openImageStore(stateDir: string, opts: ImageStoreOptions = {}): ImageStore {
  return new ImageStore(openHostStore(stateDir), stateDir, opts);
}

/** What `boson up` asks for. */
export interface DaemonRequest {
  tcp?: TcpEndpointRequest;
  dockerTcp?: TcpEndpointRequest;
  pidFile?: string;
  /** `boson up --controller`: the controller in this process too (SQLite, <stateDir>/controller.db), optionally on TCP. */
  controller?: { tcp?: TcpEndpointRequest };
  /** Serve CRI on <run dir>/cri.sock (default: the BOSON_CRI setting). */
  cri?: boolean;
}

/**
 * Builds and starts this host's daemon: the runtime (hosted by a daemon), its REST API and the Docker Engine API
 * personality on top of it. Resolves once every listener is up.
 */
export async function startHostDaemon(
  request: DaemonRequest,
  config: HostConfig = loadConfig(),
): Promise<{ socketPath: string; dockerSocket: string; criSocket: string | null; controllerSocket?: string; close(): Promise<void> }> {
  const { paths } = config;
  const socketPath = hostSocketPath(config);
  // Loaded here, so that other commands do not pay for the server's modules.
  const { dockerSocketPath, startDockerApi } = await import('../docker/index.ts');
  const dockerSocket = dockerSocketPath(paths);
  const cri = request.cri ?? config.cri;
  const criSocket = cri ? path.join(paths.runDir, 'cri.sock') : null;
  // Unsafe or unreadable endpoints are refused before anything is opened or started.
  const tcp = request.tcp ? await resolveTcpEndpoint(request.tcp, '--tcp') : undefined;
  const dockerTcp = request.dockerTcp ? await resolveTcpEndpoint(request.dockerTcp, '--docker-tcp') : undefined;
  if (request.controller?.tcp) await resolveTcpEndpoint(request.controller.tcp, '--controller-listen');
  const log = makeLogger({ level: config.logLevel, file: config.logFile });
  const daemon = await startDaemon({
    paths,
    runtime: buildRuntime('daemon', config, log.child({ component: 'runtime' })),
    log,
    socketPath,
    tcp,
    pidFile: request.pidFile ?? path.join(paths.runDir, 'boson.pid'),
    personalities: [
      (runtime) =>
        startDockerApi(runtime.machine, {
          socketPath: dockerSocket,
          tcp: dockerTcp,
          paths,
          log: log.child({ component: 'docker' }),
          registry: registryOptions(config),
          trace: config.dockerTrace,
        }),
      ...(criSocket
        ? [
            async (runtime: MachineRuntime) =>
              (await import('../cri/index.ts')).startCriServer(runtime.podMachine, {
                socketPath: criSocket,
                version: PACKAGE_VERSION,
                imageFsDir: path.join(paths.stateDir, 'images'),
                log: log.child({ component: 'cri' }),
              }),
          ]
        : []),
    ],
  });
  if (!request.controller) return { socketPath, dockerSocket, criSocket, close: () => daemon.close() };
  // Loaded only with --controller: a plain `boson up` does not pay for it.
  const { startController } = await import('./controller.ts');
  // This host is the fleet's first machine, reached over the daemon's own socket.
  const disk = await statfs(paths.stateDir);
  const localMachine = {
    socketPath,
    capacity: { cpus: os.cpus().length, memoryBytes: os.totalmem(), diskBytes: disk.bavail * disk.bsize },
  };
  const controller = await startController({
    paths,
    tcp: request.controller.tcp,
    log: log.child({ component: 'controller' }),
    localMachine,
  }).catch(async (err: unknown) => {
    await daemon.close();
    throw err;
  });
  return {
    socketPath,
    dockerSocket,
    criSocket,
    controllerSocket: controller.socketPath,
    close: async () => {
      await controller.close();
      await daemon.close();
    },
  };
}
