/**
 * Image references, local-only rules for now (full Docker normalisation comes later):
 *   "busybox"            -> "localhost/busybox:latest"
 *   "ns/app:1"           -> "localhost/ns/app:1"
 *   "quay.io/ns/app"     -> "quay.io/ns/app:latest"   (a first component with '.', ':' or "localhost" is a registry)
 *   "app@sha256:<hex>"   -> "localhost/app@sha256:<hex>" (no tag added when a digest is given)
 */
import { BosonError } from '../common/index.ts';

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN = /^(?:localhost|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*)(?::[0-9]+)?$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** A reference split into its parts; `domain` is null when the reference names no registry. */
export interface ParsedReference {
  domain: string | null;
  path: string;
  tag: string | null;
  digest: string | null;
}

/** Splits and validates a reference; throws INVALID_ARGUMENT when it is malformed. */
export function parseReference(ref: string): ParsedReference {
  const bad = (why: string): never => {
    throw new BosonError('INVALID_ARGUMENT', `invalid image reference "${ref}": ${why}`, { details: { reference: ref } });
  };
  if (ref.length === 0 || ref.length > 512) bad('empty or too long');
  let rest = ref;
  let digest: string | null = null;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) bad('digest must be sha256:<64 hex>');
  }
  let tag: string | null = null;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) bad(`bad tag "${tag}"`);
  }
  const parts = rest.split('/');
  let domain: string | null = null;
  const first = parts[0] ?? '';
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    domain = first;
    parts.shift();
    if (!DOMAIN.test(domain)) bad(`bad registry "${domain}"`);
  }
  for (const c of parts) if (!COMPONENT.test(c)) bad(`bad name component "${c}" (lowercase letters, digits, separators)`);
  return { domain, path: parts.join('/'), tag, digest };
}

function format(domain: string, p: ParsedReference): string {
  let s = `${domain}/${p.path}`;
  if (p.tag !== null) s += `:${p.tag}`;
  else if (p.digest === null) s += ':latest';
  if (p.digest !== null) s += `@${p.digest}`;
  return s;
}

/**
 * Normalises a reference by the local-only rules above. Throws INVALID_ARGUMENT for a malformed reference.
 * Idempotent: normaliseReference(normaliseReference(x)) === normaliseReference(x).
 */
export function normaliseReference(ref: string): string {
  const p = parseReference(ref);
  return format(p.domain ?? 'localhost', p);
}

/**
 * The normalised names resolve() tries for `ref`, in order: for a name without a registry, first
 * "localhost/<name>", then the Docker Hub spelling ("docker.io/library/<name>" or "docker.io/<ns>/<name>") so that
 * images imported from `docker save` with their full names are found by short name.
 */
export function referenceCandidates(ref: string): string[] {
  const p = parseReference(ref);
  if (p.domain !== null) return [format(p.domain, p)];
  const hub = p.path.includes('/') ? p : { ...p, path: `library/${p.path}` };
  return [format('localhost', p), format('docker.io', hub)];
}

/** Docker Hub's registry name in references, and the host that serves its API. */
export const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_API = 'registry-1.docker.io';

/** A reference as a registry sees it: where to connect, which repository, and which tag or digest. */
export interface RemoteReference {
  /** The registry as written in the canonical name ("docker.io", "127.0.0.1:5000"). */
  registry: string;
  /** host[:port] to connect to ("registry-1.docker.io" for Docker Hub). */
  host: string;
  /** Repository path inside the registry ("library/alpine"). */
  repository: string;
  tag: string | null;
  digest: string | null;
  /** Canonical name: "docker.io/library/alpine:latest", "127.0.0.1:5000/ns/app@sha256:…". */
  canonical: string;
  /** Canonical name without tag or digest: "docker.io/library/alpine". */
  name: string;
}

/**
 * Normalises a reference by Docker's rules for pulling: a name without a registry is on Docker Hub
 * ("alpine" -> "docker.io/library/alpine:latest", "ns/app" -> "docker.io/ns/app:latest"); a missing tag is "latest"
 * unless a digest is given. "index.docker.io" is spelled "docker.io". Throws INVALID_ARGUMENT when malformed.
 */
export function remoteReference(ref: string): RemoteReference {
  const p = parseReference(ref);
  let registry = p.domain ?? DOCKER_HUB;
  if (registry === 'index.docker.io') registry = DOCKER_HUB;
  const repository = registry === DOCKER_HUB && !p.path.includes('/') ? `library/${p.path}` : p.path;
  const tag = p.tag ?? (p.digest === null ? 'latest' : null);
  const name = `${registry}/${repository}`;
  const canonical = `${name}${tag !== null ? `:${tag}` : ''}${p.digest !== null ? `@${p.digest}` : ''}`;
  return { registry, host: registry === DOCKER_HUB ? DOCKER_HUB_API : registry, repository, tag, digest: p.digest, canonical, name };
}

/** The registry host a user names in `login`/`logout` ("docker.io" for Hub, its aliases folded), lowercased. */
export function registryHostName(host: string): string {
  let h = host
    .trim()
    .replace(/^https?:\/\//, '')
    .replace(/\/.*$/, '')
    .toLowerCase();
  if (h === 'index.docker.io' || h === 'registry-1.docker.io' || h === '') h = DOCKER_HUB;
  if (!DOMAIN.test(h)) throw new BosonError('INVALID_ARGUMENT', `invalid registry host "${host}"`, { details: { host } });
  return h;
}
