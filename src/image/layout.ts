/**
 * Reading import sources: an OCI image layout directory, or a `docker save` tarball (optionally gzip-compressed) in
 * either form — the OCI layout inside the tar (Docker 25+) or the legacy manifest.json form. Produces the list of
 * images (manifest descriptor + names) and a way to open blobs; verification happens in the store, which copies
 * every blob through copyVerified().
 */
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { BosonError } from '../common/index.ts';
import { digestHex, sha256Digest } from './content-store.ts';
import { isIndexType, isManifestType, MT, type Descriptor, type ImageProgress } from './types.ts';

/** One image found in a source: its manifest descriptor and the raw names given to it there. */
export interface SourceImage {
  manifest: Descriptor;
  names: string[];
}

/** An opened import source. */
export interface ImageSource {
  kind: 'oci-layout' | 'docker-save-oci' | 'docker-save-legacy';
  images: SourceImage[];
  /** Opens a blob by digest (content is verified by the caller). */
  openBlob(digest: string): Readable;
}

/** A read-only view of files by slash-separated relative name. */
interface FileView {
  exists(name: string): Promise<boolean>;
  read(name: string): Promise<Buffer>;
  open(name: string): Readable;
  size(name: string): Promise<number>;
}

const invalid = (source: string, why: string, cause?: unknown): BosonError =>
  new BosonError('IMAGE_INVALID', `${source}: ${why}`, { cause, details: { source } });

/** Lexically normalises a relative archive name; null when it is absolute or escapes with "..". */
function cleanName(name: string): string | null {
  if (name.startsWith('/')) return null;
  const out: string[] = [];
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (out.length === 0) return null;
      out.pop();
    } else out.push(c);
  }
  return out.join('/');
}

function dirView(dir: string, source: string): FileView {
  const p = (name: string): string => {
    const clean = cleanName(name);
    if (clean === null || clean === '') throw invalid(source, `unsafe file name "${name}"`);
    return path.join(dir, clean);
  };
  return {
    exists: async (name) =>
      fs.access(p(name)).then(
        () => true,
        () => false,
      ),
    read: (name) => fs.readFile(p(name)),
    open: (name) => createReadStream(p(name)),
    size: async (name) => (await fs.stat(p(name))).size,
  };
}

/** Extracts regular files of a tarball into `workDir` (flat names), recording symlinks, and returns a view. */
async function tarView(tarball: string, workDir: string, source: string, onProgress?: ImageProgress): Promise<FileView> {
  const files = new Map<string, string>();
  const links = new Map<string, string>();
  const head = Buffer.alloc(2);
  const fh = await fs.open(tarball, 'r');
  try {
    await fh.read(head, 0, 2, 0);
  } finally {
    await fh.close();
  }
  const gz = head[0] === 0x1f && head[1] === 0x8b;
  const ex = tar.extract();
  const done = pipeline(gz ? [createReadStream(tarball), createGunzip(), ex] : [createReadStream(tarball), ex]);
  done.catch(() => undefined);
  let n = 0;
  try {
    for await (const entry of ex) {
      const h = entry.header;
      const name = cleanName(h.name);
      if (name === null) throw invalid(source, `unsafe name "${h.name}" in the archive`);
      if (h.type === 'file' || h.type === 'contiguous-file') {
        const dest = path.join(workDir, `f${n++}`);
        const fh = await fs.open(dest, 'wx');
        try {
          for await (const chunk of entry) await fh.write(chunk as Buffer);
        } finally {
          await fh.close();
        }
        files.set(name, dest);
        onProgress?.({ phase: 'extract', current: n, detail: name });
      } else {
        if (h.type === 'symlink' && h.linkname) {
          const target = h.linkname.startsWith('/') ? null : cleanName(path.posix.join(path.posix.dirname(name), h.linkname));
          if (target === null) throw invalid(source, `symlink "${h.name}" points outside the archive`);
          links.set(name, target);
        } else if (h.type === 'link' && h.linkname) {
          const target = cleanName(h.linkname);
          if (target === null) throw invalid(source, `hard link "${h.name}" points outside the archive`);
          links.set(name, target);
        }
        entry.resume();
      }
    }
    await done;
  } catch (err) {
    ex.destroy();
    if (err instanceof BosonError) throw err;
    throw invalid(source, `not a readable tar archive: ${(err as Error).message}`, err);
  }
  const resolve = (name: string): string => {
    let cur = cleanName(name);
    for (let hops = 0; cur !== null && hops < 40; hops++) {
      const f = files.get(cur);
      if (f !== undefined) return f;
      const l = links.get(cur);
      if (l === undefined) break;
      cur = l;
    }
    throw Object.assign(new Error(`${name}: no such file in the archive`), { code: 'ENOENT' });
  };
  return {
    exists: async (name) => {
      try {
        resolve(name);
        return true;
      } catch {
        return false;
      }
    },
    read: async (name) => fs.readFile(resolve(name)),
    open: (name) => {
      try {
        return createReadStream(resolve(name));
      } catch (err) {
        return new Readable({
          read() {
            this.destroy(err as Error);
          },
        });
      }
    },
    size: async (name) => (await fs.stat(resolve(name))).size,
  };
}

async function readJsonFile(view: FileView, name: string, source: string): Promise<unknown> {
  let text: Buffer;
  try {
    text = await view.read(name);
  } catch (err) {
    throw invalid(source, `cannot read ${name}`, err);
  }
  try {
    return JSON.parse(text.toString('utf8'));
  } catch (err) {
    throw invalid(source, `${name} is not valid JSON`, err);
  }
}

function asDescriptor(x: unknown, source: string, where: string): Descriptor {
  const d = x as Partial<Descriptor> | null;
  if (
    !d ||
    typeof d !== 'object' ||
    typeof d.digest !== 'string' ||
    typeof d.size !== 'number' ||
    !Number.isSafeInteger(d.size) ||
    d.size < 0
  ) {
    throw invalid(source, `${where}: malformed descriptor`);
  }
  digestHex(d.digest);
  return {
    mediaType: typeof d.mediaType === 'string' ? d.mediaType : '',
    digest: d.digest,
    size: d.size,
    annotations: d.annotations ?? {},
    platform: d.platform,
  };
}

const isAmd64 = (d: Descriptor): boolean => d.platform?.os === 'linux' && d.platform?.architecture === 'amd64';

/** Reads a blob fully, checking size and digest; IMAGE_CORRUPT when it does not match. */
async function readVerified(view: FileView, d: Descriptor, source: string): Promise<Buffer> {
  const name = `blobs/sha256/${digestHex(d.digest)}`;
  let buf: Buffer;
  try {
    buf = await view.read(name);
  } catch (err) {
    throw new BosonError('IMAGE_CORRUPT', `${source}: blob ${d.digest} is missing`, { cause: err, details: { digest: d.digest } });
  }
  if (buf.length !== d.size || sha256Digest(buf) !== d.digest) {
    throw new BosonError('IMAGE_CORRUPT', `${source}: blob ${d.digest} does not match its descriptor`, { details: { digest: d.digest } });
  }
  return buf;
}

/** Picks the linux/amd64 manifest of an index; IMAGE_INVALID when there is none. */
function pickPlatform(manifests: Descriptor[], source: string): Descriptor {
  if (manifests.length === 1 && !manifests[0]!.platform) return manifests[0]!;
  const amd = manifests.filter((m) => isAmd64(m) && isManifestType(m.mediaType));
  if (amd.length === 0) throw invalid(source, 'the image index has no linux/amd64 manifest');
  return amd.find((m) => !m.platform?.variant) ?? amd[0]!;
}

function namesOf(d: Descriptor): string[] {
  const a = d.annotations ?? {};
  const full = a['io.containerd.image.name'];
  if (full) return [full];
  const ref = a['org.opencontainers.image.ref.name'];
  // A ref.name that is only a tag ("latest") names no repository: the image is then reachable by id (or opts.tag).
  if (ref && /[/:@]/.test(ref)) return [ref];
  return [];
}

async function readOciLayout(view: FileView, source: string): Promise<SourceImage[]> {
  const layout = (await readJsonFile(view, 'oci-layout', source)) as { imageLayoutVersion?: unknown };
  if (typeof layout?.imageLayoutVersion !== 'string') throw invalid(source, 'oci-layout has no imageLayoutVersion');
  const index = (await readJsonFile(view, 'index.json', source)) as { manifests?: unknown };
  if (!Array.isArray(index?.manifests)) throw invalid(source, 'index.json has no manifests');
  const top = index.manifests.map((m, i) => asDescriptor(m, source, `index.json manifests[${i}]`));
  const groups = new Map<string, { names: string[]; manifests: Descriptor[] }>();
  let anon = 0;
  for (const d of top) {
    let mt = d.mediaType;
    if (mt === '') {
      const blob = JSON.parse((await readVerified(view, d, source)).toString('utf8')) as { mediaType?: string; manifests?: unknown };
      mt = blob.mediaType ?? (Array.isArray(blob.manifests) ? MT.ociIndex : MT.ociManifest);
      d.mediaType = mt;
    }
    let chosen: Descriptor;
    if (isIndexType(mt)) {
      const nested = JSON.parse((await readVerified(view, d, source)).toString('utf8')) as { manifests?: unknown };
      if (!Array.isArray(nested.manifests)) throw invalid(source, `index ${d.digest} has no manifests`);
      chosen = pickPlatform(
        nested.manifests.map((m, i) => asDescriptor(m, source, `index ${d.digest} manifests[${i}]`)),
        source,
      );
      chosen.platform ??= { os: 'linux', architecture: 'amd64' };
    } else if (isManifestType(mt)) {
      chosen = d;
    } else {
      throw invalid(source, `unsupported media type "${mt}" in index.json`);
    }
    const names = namesOf(d);
    const key = names[0] ?? `\0${anon++}`;
    const g = groups.get(key) ?? { names, manifests: [] };
    g.manifests.push(chosen);
    groups.set(key, g);
  }
  return [...groups.values()].map((g) => ({
    names: g.names,
    manifest: g.manifests.length === 1 ? g.manifests[0]! : pickPlatform(g.manifests, source),
  }));
}

/** Legacy `docker save`: manifest.json lists config file and layer tar files; a schema2 manifest is synthesised. */
async function readLegacy(view: FileView, source: string, inline: Map<string, Buffer>, files: Map<string, string>): Promise<SourceImage[]> {
  const list = await readJsonFile(view, 'manifest.json', source);
  if (!Array.isArray(list) || list.length === 0) throw invalid(source, 'manifest.json is not a non-empty list');
  const images: SourceImage[] = [];
  for (const [i, item] of (list as { Config?: unknown; RepoTags?: unknown; Layers?: unknown }[]).entries()) {
    if (typeof item?.Config !== 'string' || !Array.isArray(item.Layers))
      throw invalid(source, `manifest.json[${i}] has no Config or Layers`);
    const configName = item.Config;
    let config: Buffer;
    try {
      config = await view.read(configName);
    } catch (err) {
      throw new BosonError('IMAGE_CORRUPT', `${source}: config ${configName} is missing`, { cause: err });
    }
    const configDigest = sha256Digest(config);
    const base = path.posix.basename(configName).replace(/\.json$/, '');
    if (/^[0-9a-f]{64}$/.test(base) && `sha256:${base}` !== configDigest) {
      throw new BosonError('IMAGE_CORRUPT', `${source}: config ${configName} does not match its digest`, {
        details: { digest: `sha256:${base}` },
      });
    }
    let diffIds: unknown;
    try {
      diffIds = (JSON.parse(config.toString('utf8')) as { rootfs?: { diff_ids?: unknown } }).rootfs?.diff_ids;
    } catch (err) {
      throw invalid(source, `config ${configName} is not valid JSON`, err);
    }
    if (!Array.isArray(diffIds) || diffIds.length !== item.Layers.length) {
      throw invalid(source, `config ${configName}: rootfs.diff_ids does not match the ${item.Layers.length} layers`);
    }
    inline.set(configDigest, config);
    const layers: Descriptor[] = [];
    for (const [j, layerName] of (item.Layers as unknown[]).entries()) {
      if (typeof layerName !== 'string') throw invalid(source, `manifest.json[${i}].Layers[${j}] is not a string`);
      const diffId = diffIds[j];
      if (typeof diffId !== 'string') throw invalid(source, `config diff_ids[${j}] is not a string`);
      digestHex(diffId);
      let size: number;
      try {
        size = await view.size(layerName);
      } catch (err) {
        throw new BosonError('IMAGE_CORRUPT', `${source}: layer ${layerName} is missing`, { cause: err });
      }
      // Legacy layers are uncompressed tars, so a layer's digest is its diff_id; the copy verifies it.
      layers.push({ mediaType: MT.dockerLayerTar, digest: diffId, size });
      files.set(diffId, layerName);
    }
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MT.dockerManifest,
        config: { mediaType: MT.dockerConfig, digest: configDigest, size: config.length },
        layers,
      }),
    );
    const md = sha256Digest(manifest);
    inline.set(md, manifest);
    images.push({
      manifest: { mediaType: MT.dockerManifest, digest: md, size: manifest.length },
      names: Array.isArray(item.RepoTags) ? item.RepoTags.filter((t): t is string => typeof t === 'string') : [],
    });
  }
  return images;
}

/**
 * Opens `source` (a directory or a tar file). `workDir` is an empty private directory that the caller removes
 * afterwards (a tarball is extracted into it). Throws IMAGE_SOURCE_NOT_FOUND, IMAGE_INVALID or IMAGE_CORRUPT.
 */
export async function openImageSource(source: string, workDir: string, onProgress?: ImageProgress): Promise<ImageSource> {
  let st;
  try {
    st = await fs.stat(source);
  } catch (err) {
    throw new BosonError('IMAGE_SOURCE_NOT_FOUND', `image source ${source} does not exist`, { cause: err, details: { source } });
  }
  const view = st.isDirectory() ? dirView(source, source) : await tarView(source, workDir, source, onProgress);
  const isOci = (await view.exists('oci-layout')) && (await view.exists('index.json'));
  const inline = new Map<string, Buffer>();
  const files = new Map<string, string>();
  let images: SourceImage[];
  let kind: ImageSource['kind'];
  if (isOci) {
    images = await readOciLayout(view, source);
    kind = st.isDirectory() ? 'oci-layout' : 'docker-save-oci';
  } else if (!st.isDirectory() && (await view.exists('manifest.json'))) {
    images = await readLegacy(view, source, inline, files);
    kind = 'docker-save-legacy';
  } else {
    throw invalid(source, 'neither an OCI image layout (oci-layout, index.json) nor a docker save archive (manifest.json)');
  }
  if (images.length === 0) throw invalid(source, 'contains no images');
  return {
    kind,
    images,
    openBlob(digest) {
      const buf = inline.get(digest);
      if (buf) return Readable.from([buf]);
      return view.open(files.get(digest) ?? `blobs/sha256/${digestHex(digest)}`);
    },
  };
}
