/** Public surface of src/machine: the port, the runtime of this host, its daemon and the daemon's client. */
export * from './port/index.ts';
export { MachineRuntime, type RuntimeOptions, type RuntimeParts, type ExecRecord, type JailPolicy } from './runtime.ts';
export { ImageService, type ImageServiceOptions } from './images.ts';
export { VolumeService, volumeUsersAmong } from './volume-service.ts';
export { NetworkService, type NetworkServiceContainers } from './network-service.ts';
export { EventService, eventView, type EventLog } from './event-service.ts';
export { ContainerRegistry, validateContainerName, type ContainerRecord } from './containers.ts';
export {
  DEFAULT_MEMORY_MIB,
  parseSignal,
  parseRestartPolicy,
  parseMemory,
  parseSizeMiB,
  parseCpus,
  parseEnvFile,
  expandEnvArgs,
  parseLogOptions,
  type ProcessConfig,
} from './container-config.ts';
export { MachineClient, StreamDemuxer, execStatusError } from './api/client.ts';
export { RemoteMachine, RemoteImages, RemoteVolumes, RemoteNetworks, RemoteEvents } from './api/remote.ts';
export { pipeClientStdin, type ExecStatus } from './api/exec-stream.ts';
export type { MachineEvent } from './containers.ts';
export { readLog } from './logs.ts';
export { VolumeManager, type VolumeRecord } from './volumes/index.ts';
export { SqliteStateStore, openStateStore } from './store/sqlite.ts';
export { acquireFileLock, type DaemonLock } from './daemon-lock.ts';
export type { EtcdStateStore, EtcdStoreOptions } from './store/etcd.ts';

/**
 * Opens the state store on etcd (the controller's distributed store; an AsyncStateStore). Loaded on demand, so that
 * commands that never use etcd do not load gRPC.
 */
export async function openEtcdStateStore(
  options: import('./store/etcd.ts').EtcdStoreOptions,
): Promise<import('./store/etcd.ts').EtcdStateStore> {
  const etcd = await import('./store/etcd.ts');
  return etcd.openEtcdStore(options);
}
export type { DaemonOptions, RunningDaemon, DaemonPersonality } from './daemon.ts';

/** The machine API's server over any port Machine (loaded on demand): what a controller serves for a project. */
export async function buildPortApi(
  ...args: Parameters<typeof import('./api/server.ts').buildPortApi>
): ReturnType<typeof import('./api/server.ts').buildPortApi> {
  return (await import('./api/server.ts')).buildPortApi(...args);
}

/** Starts the machine daemon (loaded on demand, so that other commands do not pay for the server's modules). */
export async function startDaemon(options: import('./daemon.ts').DaemonOptions): Promise<import('./daemon.ts').RunningDaemon> {
  const daemon = await import('./daemon.ts');
  return daemon.startDaemon(options);
}
export { NetworkManager, parsePortSpec, type NetworkManagerOptions } from './network/index.ts';
export { PodNetworks, type PodNetworkOptions } from './pod-network.ts';
export { parseVolumeSpec, DEFAULT_VOLUME_BYTES } from './volumes/index.ts';
export { humanDuration, statusText } from './status.ts';
export { bootBundle, type GuestKernelOptions } from './boot-bundle.ts';
export { hostCpuCount } from './capacity.ts';
export { defaultBindPolicy, PROTECTED_PATHS, type BindPolicy } from './bind-policy.ts';
