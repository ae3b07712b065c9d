/**
 * Images in Docker's shapes (`GET /images/json`, `GET /images/{name}/json`) and the pull progress stream of
 * `POST /images/create`, over the machine port's images.
 */
import type { ServerResponse } from 'node:http';
import { toBosonError } from '../common/index.ts';
import { remoteReference, registryHostName, RegistryClient, type RegistryClientOptions } from '../image/index.ts';
import { localContext, type Image, type ImageProgressListener, type MachineImages } from '../machine/port/index.ts';
import { badRequest, DockerError, dockerErrorOf } from './errors.ts';
import { familiarName, unixSeconds, withSha } from './format.ts';
import { sendError } from './http.ts';

type Obj = Record<string, unknown>;

const LOCAL = localContext('docker');

const repoTags = (img: Image): string[] => img.references.map(familiarName);

/** A `GET /images/json` entry. */
export function imageSummary(img: Image, containers = -1): Obj {
  return {
    Id: withSha(img.id),
    ParentId: '',
    RepoTags: repoTags(img),
    RepoDigests: (img.repoDigests ?? []).map(familiarName),
    Created: unixSeconds(img.created),
    Size: img.size,
    SharedSize: -1,
    Labels: img.config.labels ?? {},
    Containers: containers,
  };
}

/** A `GET /images/{name}/json` document. */
export function imageInspect(img: Image): Obj {
  const volumes: Obj = {};
  for (const v of img.config.volumes) volumes[v] = {};
  return {
    Id: withSha(img.id),
    RepoTags: repoTags(img),
    RepoDigests: (img.repoDigests ?? []).map(familiarName),
    Parent: '',
    Comment: '',
    Created: img.created ?? '',
    DockerVersion: '',
    Author: '',
    Config: {
      Hostname: '',
      Domainname: '',
      User: img.config.user,
      AttachStdin: false,
      AttachStdout: false,
      AttachStderr: false,
      Tty: false,
      OpenStdin: false,
      StdinOnce: false,
      Env: img.config.env,
      Cmd: img.config.cmd,
      Image: '',
      Volumes: Object.keys(volumes).length > 0 ? volumes : null,
      WorkingDir: img.config.workingDir,
      Entrypoint: img.config.entrypoint,
      OnBuild: null,
      Labels: img.config.labels ?? {},
    },
    Architecture: img.architecture,
    Os: img.os,
    Size: img.size,
    GraphDriver: { Name: 'boson-microvm', Data: null },
    RootFS: { Type: 'layers', Layers: img.layers.map((l) => l.diffId ?? l.digest) },
    Metadata: { LastTagTime: '0001-01-01T00:00:00Z' },
  };
}

/** The reference `POST /images/create` names (fromImage plus tag, which may be a digest). */
export function pullReference(fromImage: string, tag: string): string {
  if (!fromImage) throw badRequest('fromImage is required (importing with fromSrc is not supported by Boson)');
  if (!tag) return fromImage;
  return tag.startsWith('sha256:') ? `${fromImage}@${tag}` : `${fromImage}:${tag}`;
}

/** Credentials from the X-Registry-Auth header (base64url JSON), if any. */
export function registryAuth(header: string | string[] | undefined): { username: string; password: string } | null {
  if (typeof header !== 'string' || header === '') return null;
  try {
    const json = JSON.parse(Buffer.from(header.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8')) as {
      username?: string;
      password?: string;
      identitytoken?: string;
    };
    if (json.username && json.password) return { username: json.username, password: json.password };
  } catch {
    // Docker ignores an unreadable auth header (the pull then goes anonymous).
  }
  return null;
}

const short = (d: string | undefined): string => (d ?? '').replace(/^sha256:/, '').slice(0, 12);

function bar(current: number, total: number): string {
  const width = 50;
  const filled = total > 0 ? Math.min(width, Math.floor((current / total) * width)) : 0;
  const mb = (n: number): string => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}MB` : `${(n / 1e3).toFixed(2)}kB`);
  return `[${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? '>' : ''}${' '.repeat(width - filled)}] ${mb(current)}/${mb(total)}`;
}

/**
 * Pulls `reference`, streaming Docker's progress messages. Errors before any progress are an HTTP error (so that
 * `docker run` reports "not found" properly); later ones are an `errorDetail` message in the stream. A client that
 * goes away does not stop the pull (the image lands in the store).
 */
export async function pullStream(
  images: Pick<MachineImages, 'inspect' | 'pull'>,
  res: ServerResponse,
  reference: string,
  opts: { platform?: string; auth: { username: string; password: string } | null },
): Promise<void> {
  const ref = remoteReference(reference);
  const display = familiarName(ref.canonical);
  let started = false;
  const write = (msg: Obj): void => {
    if (!started) {
      started = true;
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write(JSON.stringify({ status: `Pulling from ${familiarName(ref.name)}`, id: ref.tag ?? ref.digest ?? 'latest' }) + '\r\n');
    }
    if (!res.destroyed) res.write(JSON.stringify(msg) + '\r\n');
  };
  const seen = new Set<string>();
  const lastShown = new Map<string, number>();
  const layers: string[] = [];
  const onProgress: ImageProgressListener = (e) => {
    const id = short(e.detail);
    switch (e.phase) {
      case 'download': {
        if (!seen.has(id)) {
          seen.add(id);
          layers.push(id);
          write({ status: 'Pulling fs layer', progressDetail: {}, id });
        }
        const now = Date.now();
        if (now - (lastShown.get(id) ?? 0) < 100 && (e.current ?? 0) < (e.total ?? 0)) return;
        lastShown.set(id, now);
        write({
          status: 'Downloading',
          progressDetail: { current: e.current ?? 0, total: e.total ?? 0 },
          progress: bar(e.current ?? 0, e.total ?? 0),
          id,
        });
        return;
      }
      case 'downloaded':
        if (!seen.has(id)) {
          seen.add(id);
          layers.push(id);
        }
        write({ status: 'Download complete', progressDetail: {}, id });
        return;
      case 'exists':
        seen.add(id);
        write({ status: 'Already exists', progressDetail: {}, id });
        return;
      case 'mkfs':
        write({ status: `Building the micro-VM root disk (${e.detail ?? ''})`.replace(' ()', '') });
        return;
      case 'warning':
        write({ status: `Warning: ${e.detail ?? ''}` });
        return;
      default:
    }
  };
  // Docker says "up to date" only when the name already pointed at the image.
  const had = await images.inspect(LOCAL, ref.canonical).then(
    () => true,
    () => false,
  );
  try {
    const result = await images.pull(
      LOCAL,
      // Only what the client sent: without X-Registry-Auth the pull is anonymous (auth null), never with the daemon
      // user's stored credentials (Boson's auth.json, ~/.docker/config.json), as dockerd does.
      { reference, ...(opts.platform ? { platform: opts.platform } : {}), auth: opts.auth },
      onProgress,
    );
    for (const id of layers) write({ status: 'Pull complete', progressDetail: {}, id });
    write({ status: `Digest: ${result.digest}` });
    write({ status: `Status: ${had && result.upToDate ? 'Image is up to date for' : 'Downloaded newer image for'} ${display}` });
    res.end();
  } catch (err) {
    if (!started) {
      const e = toBosonError(err);
      const why = e.message;
      if (e.code === 'MANIFEST_UNKNOWN')
        sendError(res, new DockerError(404, `manifest for ${display} not found: manifest unknown: ${why}`));
      else if (e.code === 'REGISTRY_AUTH_FAILED')
        sendError(
          res,
          new DockerError(
            404,
            `pull access denied for ${familiarName(ref.name)}, repository does not exist or may require 'docker login': ${why}`,
          ),
        );
      else sendError(res, err);
      return;
    }
    const { message } = dockerErrorOf(err);
    write({ errorDetail: { message }, error: message });
    res.end();
  }
}

/** Checks credentials against a registry (`POST /auth`), reached as `registry` says (insecure hosts, CAs). */
export async function checkLogin(server: string, username: string, password: string, registry: RegistryClientOptions = {}): Promise<void> {
  const name = registryHostName(server || 'docker.io');
  const apiHost = name === 'docker.io' ? 'registry-1.docker.io' : name;
  const client = new RegistryClient(apiHost, name, { ...registry, credentials: async () => ({ username, password }), attempts: 1 });
  try {
    await client.checkLogin(`login ${name}`);
  } finally {
    client.close();
  }
}
