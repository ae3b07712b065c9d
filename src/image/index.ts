/**
 * Public surface of src/image: local image store (import from OCI layouts and `docker save` archives, list,
 * resolve), layer flattening with OCI whiteouts, root filesystem disks, references, and the busybox test image.
 */
export type { ImageConfig, ImageRecord, RootDisk, ImageProgress } from './types.ts';
export { ImageStore, chainId } from './store.ts';
export { normaliseReference, parseReference, referenceCandidates, type ParsedReference } from './reference.ts';
export { flattenLayers, type LayerInput, type FlattenStats } from './flatten.ts';
export { defaultRootFsType, type RootFsType } from './rootfs.ts';
export { writeBusyboxImageLayout } from './busybox.ts';
