/**
 * The composition root: the one place that reads the configuration and builds the implementations, in order:
 * state store -> images -> volumes -> networks -> the runtime -> the personalities. Everything below takes what
 * it needs as arguments; nothing below constructs its own collaborators.
 */
import path from 'node:path';
import { ImageStore } from '../image/index.ts';
import { ContainerRegistry, ImageService, MachineRuntime, NetworkManager, VolumeManager, daemonSocketPath, startDaemon } from '../machine/index.ts';
import { loadConfig, type HostConfig } from './config.ts';

export { loadConfig, type HostConfig };

/** How a runtime is hosted: by a daemon (VMs outlive it) or embedded in a CLI process (VMs die with it). */
export type RuntimeHosting = 'daemon' | 'embedded';

/** The image service over this host's store; the images containers use come from `registry`. */
function imageService(config: HostConfig, images: ImageStore, registry: ContainerRegistry): ImageService {
  return new ImageService(images, {
    spoolDir: path.join(config.paths.stateDir, 'tmp'),
    imagesInUse: async () => new Set((await registry.list().catch(() => [])).map((r) => r.imageId)),
  });
}

/** Builds the runtime of this host for `hosting`, from `config` (default: read from the environment). */
export function buildRuntime(hosting: RuntimeHosting, config: HostConfig = loadConfig()): MachineRuntime {
  const { paths } = config;
  const registry = new ContainerRegistry(paths.stateDir);
  const images = new ImageStore(paths.stateDir, { rootless: paths.rootless });
  const volumes = new VolumeManager(paths.stateDir);
  const networks = hosting === 'daemon'
    ? new NetworkManager({ stateDir: paths.stateDir, rootless: paths.rootless, prefix: config.netPrefix, defaultSubnet: config.netSubnet, subnetPool: config.netPool })
    : null;
  return new MachineRuntime(
    { paths, detached: hosting === 'daemon', bootTimeoutMs: config.bootTimeoutMs, virtiofsd: config.virtiofsd, debug: config.debug },
    { registry, images, imageService: imageService(config, images, registry), volumes, networks },
  );
}

/** What `boson up` asks for. */
export interface DaemonRequest {
  tcp?: string;
  dockerTcp?: string;
  pidFile?: string;
}

/**
 * Builds and starts this host's daemon: the runtime (hosted by a daemon), its REST API and the Docker Engine API
 * personality on top of it. Resolves once every listener is up.
 */
export async function startHostDaemon(request: DaemonRequest, config: HostConfig = loadConfig()): Promise<{ socketPath: string; dockerSocket: string; close(): Promise<void> }> {
  const { paths } = config;
  const socketPath = daemonSocketPath(paths);
  // Loaded here, so that other commands do not pay for the server's modules.
  const { dockerSocketPath, startDockerApi } = await import('../docker/index.ts');
  const dockerSocket = dockerSocketPath(paths);
  const daemon = await startDaemon({
    paths, runtime: buildRuntime('daemon', config), socketPath, tcp: request.tcp, pidFile: request.pidFile ?? path.join(paths.runDir, 'boson.pid'),
    personalities: [(runtime) => startDockerApi(runtime, { socketPath: dockerSocket, tcp: request.dockerTcp, paths })],
  });
  return { socketPath, dockerSocket, close: () => daemon.close() };
}
