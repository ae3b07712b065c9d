/** Public surface of src/guest: the boot bundle and the boson-init wire protocol. */
export * from './protocol.ts';
export { prepareBootBundle, defaultKernelPath, kernelReleaseOf, kernelUsesAcpi, type BootBundle, type BundleOptions } from './bundle.ts';
export { builtinDrivers, GUEST_MODULES, OPTIONAL_GUEST_MODULES, resolveModules, type ModuleFile } from './modules.ts';
export { writeCpio, type CpioEntry } from './cpio.ts';
