/**
 * Public surface of src/image: local image store (import from OCI layouts and `docker save` archives, list,
 * resolve), layer flattening with OCI whiteouts, root filesystem disks, references, and the busybox test image.
 */
export type { ImageConfig, ImageRecord, RootDisk, ImageProgress } from './types.ts';
export { ImageStore, chainId, type ImageStoreOptions, type PullOptions, type PullResult, type PruneResult } from './store.ts';
export { CredentialStore, type CredentialFiles, type Credentials } from './credentials.ts';
export { RegistryClient, type RegistryClientOptions } from './registry.ts';
export { parsePlatform, platformString, type Platform } from './pull.ts';
export {
  normaliseReference,
  parseReference,
  referenceCandidates,
  remoteReference,
  registryHostName,
  type ParsedReference,
  type RemoteReference,
} from './reference.ts';
export type { LayerInput, FlattenStats } from './flatten.ts';
export { DEFAULT_ROOTFS, type RootFsType } from './rootfs.ts';
export { checkUserNamespaceSetup } from './userns.ts';

// The flattener and the busybox layout writer load tar-stream; they are loaded on first use so that importing this
// surface (every CLI command does) stays cheap.
/** See flatten.ts. */
export async function flattenLayers(
  ...args: Parameters<typeof import('./flatten.ts').flattenLayers>
): ReturnType<typeof import('./flatten.ts').flattenLayers> {
  return (await import('./flatten.ts')).flattenLayers(...args);
}
/** See busybox.ts. */
export async function writeBusyboxImageLayout(
  ...args: Parameters<typeof import('./busybox.ts').writeBusyboxImageLayout>
): ReturnType<typeof import('./busybox.ts').writeBusyboxImageLayout> {
  return (await import('./busybox.ts')).writeBusyboxImageLayout(...args);
}
