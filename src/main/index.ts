/** Public surface of src/main: the composition root (configuration in, built implementations out). */
export {
  jailPolicy,
  qemuOptions,
  guestKernelOptions,
  hostSocketPath,
  buildRuntime,
  startHostDaemon,
  loadConfig,
  openHostStore,
  openImageStore,
  type HostConfig,
  type RuntimeHosting,
  type DaemonRequest,
} from './root.ts';
export { SETTINGS, parseEtcdEndpoints, type Setting, type ControllerEtcd, type ControllerEtcdOptions } from './config.ts';
export { terminalSettings, clientSocketPath, clientCredentialStore } from './client-settings.ts';
export { buildImages, credentialStore, registryOptions, imageStoreOptions } from './images.ts';
/** The guest kernel and initramfs this host boots (for `boson info`). */
export { bootBundle } from '../machine/index.ts';
export type { ControllerRequest, RunningController } from './controller.ts';
export { controllerSocketPath, hostLogger, CONTROLLER_DB } from './root.ts';

/** Starts the controller (src/main/controller.ts, loaded on first use so that other commands do not pay for it). */
export async function startController(
  request: import('./controller.ts').ControllerRequest,
): Promise<import('./controller.ts').RunningController> {
  return (await import('./controller.ts')).startController(request);
}

export type { MigrationRequest, MigrationSummary } from './controller-migrate.ts';

/** Copies a controller's SQLite state into etcd (src/main/controller-migrate.ts, loaded on first use: it loads gRPC). */
export async function migrateControllerToEtcd(
  request: import('./controller-migrate.ts').MigrationRequest,
): Promise<import('./controller-migrate.ts').MigrationSummary> {
  return (await import('./controller-migrate.ts')).migrateControllerToEtcd(request);
}
