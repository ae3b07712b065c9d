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
export { SETTINGS, terminalSettings, type Setting } from './config.ts';
export { buildImages, credentialStore, registryOptions, imageStoreOptions } from './images.ts';
/** The guest kernel and initramfs this host boots (for `boson info`). */
export { bootBundle } from '../machine/index.ts';
