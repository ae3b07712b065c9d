/**
 * Shared types and media-type constants of the local image store. Pure declarations: no I/O.
 */

/** The runtime configuration of an image, taken from its config blob (`config` object), with defaults filled in. */
export interface ImageConfig {
  entrypoint: string[] | null;
  cmd: string[] | null;
  env: string[];
  workingDir: string;
  user: string;
  volumes: string[];
  labels: Record<string, string>;
  /** The image's ExposedPorts keys ("80/tcp"); absent in records stored before it was read. */
  exposedPorts?: string[];
}

/** One image known to the store. `id` is the sha256 of the config blob (Docker's image ID). */
export interface ImageRecord {
  /** "sha256:<hex>" of the config blob. */
  id: string;
  /** "sha256:<hex>" of the manifest the image was imported from (synthesised for legacy `docker save`). */
  manifestDigest: string;
  /** Normalised names pointing at this image, e.g. ["localhost/busybox:latest"]. */
  references: string[];
  config: ImageConfig;
  layers: { digest: string; size: number; mediaType: string; diffId?: string }[];
  /** Sum of layer sizes as stored (compressed when the layers are). */
  size: number;
  created: string | null;
  architecture: string;
  os: string;
  /** "<registry>/<repository>@<digest>" of the manifest or index it was pulled by (pulled images only). */
  repoDigests?: string[];
  /** Digest of the image index the manifest was chosen from, when it came from one (stored as a blob). */
  indexDigest?: string;
}

/** A flattened, read-only root filesystem disk image for the guest. */
export interface RootDisk {
  path: string;
  fstype: 'erofs' | 'ext4';
  sizeBytes: number;
}

/**
 * Progress callback: phases 'extract', 'copy', 'verify', 'unpack', 'mkfs', 'done', and 'warning' (something the user
 * should know that did not fail the operation, in `detail`). Never throws into the library.
 */
export type ImageProgress = (event: { phase: string; current?: number; total?: number; detail?: string }) => void;

/** An OCI / Docker content descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture?: string; os?: string; variant?: string };
}

/** Media types the store reads and writes (OCI and Docker schema2). */
export const MT = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  ociLayerTar: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerLayerTar: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** How a layer blob is compressed, or null when the media type is not a layer type we accept. */
export function layerCompression(mediaType: string): 'none' | 'gzip' | 'zstd' | null {
  switch (mediaType) {
    case MT.ociLayerTar:
    case MT.dockerLayerTar:
    case 'application/vnd.oci.image.layer.nondistributable.v1.tar':
      return 'none';
    case MT.ociLayerGzip:
    case MT.dockerLayerGzip:
    case 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip':
    case 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip':
      return 'gzip';
    case MT.ociLayerZstd:
    case 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd':
      return 'zstd';
    default:
      return null;
  }
}

/** True for a manifest media type (OCI image manifest or Docker schema2 manifest). */
export function isManifestType(mediaType: string | undefined): boolean {
  return mediaType === MT.ociManifest || mediaType === MT.dockerManifest;
}

/** True for an index media type (OCI image index or Docker manifest list). */
export function isIndexType(mediaType: string | undefined): boolean {
  return mediaType === MT.ociIndex || mediaType === MT.dockerList;
}
