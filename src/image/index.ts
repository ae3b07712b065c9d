/**
 * Public surface of src/image: local image store (import from OCI layouts and `docker save` archives, list,
 * resolve), layer flattening with OCI whiteouts, root filesystem disks, references, and the busybox test image.
 */
export type { ImageConfig, ImageRecord, RootDisk, ImageProgress } from './types.ts';
export { ImageStore, chainId, type PullOptions, type PullResult, type PruneResult } from './store.ts';
export { CredentialStore, bosonConfigDir, dockerConfigPath, type Credentials } from './credentials.ts';
export { RegistryClient, type RegistryClientOptions } from './registry.ts';
export { parsePlatform, platformString, type Platform } from './pull.ts';
export { normaliseReference, parseReference, referenceCandidates, remoteReference, registryHostName, type ParsedReference, type RemoteReference } from './reference.ts';
export { flattenLayers, type LayerInput, type FlattenStats } from './flatten.ts';
export { defaultRootFsType, type RootFsType } from './rootfs.ts';
export { checkUserNamespaceSetup } from './userns.ts';
export { writeBusyboxImageLayout } from './busybox.ts';
