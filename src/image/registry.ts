/**
 * A client of the OCI distribution API (v2) for pulling: `/v2/` probe, manifests by tag or digest, blobs (with
 * Range for resuming). Written on node:http/https with keep-alive agents.
 *
 * Transport: HTTPS with the system CAs, plus `caFile` (BOSON_REGISTRY_CA, a PEM file) and
 * <configDir>/certs.d/<host>/ca.crt when present. Plain HTTP only for loopback hosts (localhost, 127.0.0.0/8, ::1)
 * and hosts listed in `insecure` (BOSON_INSECURE_REGISTRIES), and even then HTTPS when a CA file is configured for
 * that host. The composition root reads those settings and passes them in (RegistryClientOptions).
 *
 * Auth: anonymous first; a 401 brings a `WWW-Authenticate` challenge. Basic: the stored credentials are sent.
 * Bearer: a token is fetched from the challenge's realm (service, scope "repository:<repo>:pull"; with Basic
 * credentials when there are some), cached per scope until `expires_in` (default 60 s) runs out, and re-fetched
 * once when the registry rejects it. Redirects (blob storage) are followed up to 5 times; Authorization is dropped
 * when a redirect leaves the registry's origin, and a redirect from HTTPS to plain HTTP is refused.
 *
 * Retries: connection errors (ECONNRESET, ECONNREFUSED, timeouts…) and 5xx/429 answers are retried with
 * exponential backoff (4 attempts by default); then REGISTRY_UNREACHABLE or REGISTRY_ERROR.
 */
import { readFileSync, existsSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { rootCertificates } from 'node:tls';
import { BosonError } from '../common/index.ts';
import type { Credentials } from './credentials.ts';
import { sha256Digest } from './content-store.ts';
import { MT } from './types.ts';

/** Largest manifest or index accepted, in bytes (Docker and containerd use 4 MiB too). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** Every manifest media type a pull accepts, for the Accept header. */
export const MANIFEST_ACCEPT = [MT.ociIndex, MT.dockerList, MT.ociManifest, MT.dockerManifest].join(', ');

/** Settings of a registry client (the composition root fills them from the host configuration). */
export interface RegistryClientOptions {
  /** Extra hosts (host[:port]) allowed over plain HTTP (BOSON_INSECURE_REGISTRIES); default none. */
  insecure?: string[];
  /** A PEM CA bundle trusted besides the system CAs (BOSON_REGISTRY_CA); default none. */
  caFile?: string;
  /** Where certs.d/<host>/ca.crt is looked up (Boson's configuration directory); default: not looked up. */
  configDir?: string;
  /** Credentials source; default anonymous. */
  credentials?: (host: string) => Promise<Credentials | null>;
  /** Attempts for transient failures (default 4) and the first backoff (default 200 ms, doubling). */
  attempts?: number;
  backoffMs?: number;
  /** Socket inactivity timeout (default 30 s). */
  timeoutMs?: number;
}

interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Record<string, string>;
}

/** Parses a WWW-Authenticate header (first challenge only). */
export function parseChallenge(header: string | undefined): Challenge | null {
  if (!header) return null;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return null;
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'basic' && scheme !== 'bearer') return null;
  const params: Record<string, string> = {};
  for (const p of m[2]!.matchAll(/([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g))
    params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '');
  return { scheme, params };
}

const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNABORTED',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
]);

/** True for a network error worth retrying. */
export function isTransientNetworkError(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException;
  return Boolean(e && (TRANSIENT_CODES.has(e.code ?? '') || e.message === 'aborted' || e.message === 'socket hang up'));
}

/** True for hosts that may be reached over plain HTTP without being listed as insecure. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/** A response whose body has not been read yet. */
export interface RegistryResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
}

/** A client for one registry host. `what` names the reference in errors. */
export class RegistryClient {
  readonly baseUrl: string;
  private readonly agent: http.Agent;
  private readonly tls: boolean;
  private readonly attempts: number;
  private readonly backoffMs: number;
  private readonly timeoutMs: number;
  private readonly creds: (host: string) => Promise<Credentials | null>;
  private challenge: Challenge | null = null;
  private probe: Promise<void> | null = null;
  private readonly tokens = new Map<string, { token: string; expires: number }>();

  constructor(
    readonly host: string,
    /** The registry name used for credentials ("docker.io" for Hub). */
    private readonly registry: string,
    opts: RegistryClientOptions = {},
  ) {
    const insecure = opts.insecure ?? [];
    const hostCaFile = opts.configDir === undefined ? undefined : path.join(opts.configDir, 'certs.d', host, 'ca.crt');
    const caFiles = [opts.caFile, hostCaFile].filter((f): f is string => Boolean(f) && existsSync(f!));
    const hostCa = hostCaFile !== undefined && existsSync(hostCaFile);
    this.tls = !(isLoopbackHost(host) || insecure.includes(host) || insecure.includes(registry)) || hostCa;
    this.baseUrl = `${this.tls ? 'https' : 'http'}://${host}`;
    this.attempts = opts.attempts ?? 4;
    this.backoffMs = opts.backoffMs ?? 200;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.creds = opts.credentials ?? (async () => null);
    if (this.tls) {
      let ca: string[] | undefined;
      if (caFiles.length > 0) {
        ca = [...rootCertificates];
        for (const f of caFiles) ca.push(readFileSync(f, 'utf8'));
      }
      this.agent = new https.Agent({ keepAlive: true, maxSockets: 8, ca });
    } else {
      this.agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    }
  }

  /** Closes idle connections. */
  close(): void {
    this.agent.destroy();
  }

  // ---- transport ----------------------------------------------------------------------------------------------

  /** One HTTP exchange, following redirects; no retries, no auth handling. */
  private async exchange(method: string, url: URL, headers: Record<string, string>): Promise<RegistryResponse> {
    const origin = url.origin;
    let current = url;
    for (let hop = 0; ; hop++) {
      const h = { ...headers };
      if (current.origin !== origin) delete h.Authorization;
      const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
        const mod = current.protocol === 'https:' ? https : http;
        const agent = current.origin === origin ? this.agent : undefined;
        const req = mod.request(current, { method, headers: { 'User-Agent': 'boson/0.1', ...h }, agent }, resolve);
        req.setTimeout(this.timeoutMs, () =>
          req.destroy(Object.assign(new Error(`no answer from ${current.host} in ${this.timeoutMs} ms`), { code: 'ETIMEDOUT' })),
        );
        req.on('error', reject);
        req.end();
      });
      const status = res.statusCode ?? 0;
      if ([301, 302, 303, 307, 308].includes(status) && res.headers.location) {
        res.resume();
        if (hop >= 5) throw new BosonError('REGISTRY_ERROR', `${this.host}: too many redirects for ${url.pathname}`);
        const next = new URL(res.headers.location, current);
        if (current.protocol === 'https:' && next.protocol !== 'https:') {
          throw new BosonError('REGISTRY_ERROR', `${this.host}: refusing a redirect from HTTPS to ${next.origin}`);
        }
        current = next;
        if (status === 303) method = 'GET';
        continue;
      }
      return { status, headers: res.headers, body: res };
    }
  }

  /** exchange() with retries on transient network errors and 5xx/429. */
  private async exchangeRetrying(method: string, url: URL, headers: Record<string, string>, what: string): Promise<RegistryResponse> {
    let lastErr: unknown;
    for (let attempt = 1; attempt <= this.attempts; attempt++) {
      if (attempt > 1) await sleep(this.backoffMs * 2 ** (attempt - 2));
      try {
        const res = await this.exchange(method, url, headers);
        if ((res.status >= 500 && res.status !== 501) || res.status === 429) {
          res.body.resume();
          lastErr = new BosonError(
            'REGISTRY_ERROR',
            `${what}: ${this.host} answered ${res.status} ${res.body.statusMessage ?? ''}`.trim(),
            { details: { status: res.status, host: this.host } },
          );
          continue;
        }
        return res;
      } catch (err) {
        if (err instanceof BosonError) throw err;
        lastErr = err;
        if (!isTransientNetworkError(err)) break; // e.g. ENOTFOUND, a TLS certificate error: retrying cannot help
      }
    }
    if (lastErr instanceof BosonError) throw lastErr;
    const e = lastErr as NodeJS.ErrnoException;
    throw new BosonError(
      'REGISTRY_UNREACHABLE',
      `${what}: cannot reach registry ${this.host} (${this.baseUrl}): ${e.code ?? ''} ${e.message}`.replace(/\s+/g, ' ').trim(),
      {
        cause: lastErr,
        details: { host: this.host, code: e.code },
      },
    );
  }

  // ---- auth ---------------------------------------------------------------------------------------------------

  private async token(ch: Challenge, scope: string | null, what: string): Promise<string> {
    const realm = ch.params.realm;
    if (!realm) throw new BosonError('REGISTRY_ERROR', `${what}: ${this.host} sent a Bearer challenge without a realm`);
    const key = `${realm} ${ch.params.service ?? ''} ${scope ?? ''}`;
    const cached = this.tokens.get(key);
    if (cached && cached.expires > Date.now()) return cached.token;
    const url = new URL(realm);
    if (ch.params.service) url.searchParams.set('service', ch.params.service);
    if (scope) url.searchParams.set('scope', scope);
    if (url.protocol !== 'https:' && !isLoopbackHost(url.host) && this.tls) {
      throw new BosonError('REGISTRY_ERROR', `${what}: refusing a token realm over plain HTTP (${url.origin})`);
    }
    const creds = await this.creds(this.registry);
    const headers: Record<string, string> = {};
    if (creds) headers.Authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
    const res = await this.exchangeRetrying('GET', url, headers, what);
    const body = await readLimited(res.body, 1024 * 1024, `${what}: token`);
    if (res.status === 401 || res.status === 403) {
      throw new BosonError(
        'REGISTRY_AUTH_FAILED',
        `${what}: ${creds ? `the credentials for ${this.registry} were rejected` : `${this.registry} requires authentication (boson login ${this.registry})`} by the token service ${url.origin}`,
        {
          details: { host: this.host, status: res.status },
        },
      );
    }
    if (res.status !== 200)
      throw new BosonError('REGISTRY_ERROR', `${what}: token service ${url.origin} answered ${res.status}`, {
        details: { status: res.status },
      });
    let parsed: { token?: string; access_token?: string; expires_in?: number };
    try {
      parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
    } catch (err) {
      throw new BosonError('REGISTRY_ERROR', `${what}: token service ${url.origin} sent invalid JSON`, { cause: err });
    }
    const token = parsed.token ?? parsed.access_token;
    if (typeof token !== 'string' || token === '')
      throw new BosonError('REGISTRY_ERROR', `${what}: token service ${url.origin} sent no token`);
    const life = typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : 60;
    this.tokens.set(key, { token, expires: Date.now() + Math.max(1, life - 10) * 1000 });
    return token;
  }

  private async authorization(scope: string | null, what: string): Promise<string | null> {
    const ch = this.challenge;
    if (!ch) return null;
    if (ch.scheme === 'basic') {
      const c = await this.creds(this.registry);
      return c ? `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}` : null;
    }
    return `Bearer ${await this.token(ch, scope, what)}`;
  }

  /**
   * An authenticated request: sends the authorization the last challenge asks for; on 401 takes the new challenge
   * and tries once more (with a fresh token). A second 401 is REGISTRY_AUTH_FAILED.
   */
  async request(
    method: string,
    pathname: string,
    opts: { headers?: Record<string, string>; repository?: string; what: string },
  ): Promise<RegistryResponse> {
    const scope = opts.repository ? `repository:${opts.repository}:pull` : null;
    const url = new URL(pathname, this.baseUrl);
    for (let round = 0; ; round++) {
      const headers = { ...(opts.headers ?? {}) };
      const auth = await this.authorization(scope, opts.what);
      if (auth) headers.Authorization = auth;
      const res = await this.exchangeRetrying(method, url, headers, opts.what);
      if (res.status !== 401) {
        if (res.status === 403) {
          res.body.resume();
          throw new BosonError('REGISTRY_AUTH_FAILED', `${opts.what}: access denied by ${this.host}`, {
            details: { host: this.host, status: 403 },
          });
        }
        return res;
      }
      res.body.resume();
      const ch = parseChallenge(res.headers['www-authenticate']);
      const creds = await this.creds(this.registry);
      if (round >= 1 || ch === null || (ch.scheme === 'basic' && !creds)) {
        throw new BosonError(
          'REGISTRY_AUTH_FAILED',
          creds
            ? `${opts.what}: ${this.host} rejected the credentials of ${creds.username}`
            : `${opts.what}: ${this.host} requires authentication (boson login ${this.registry})`,
          { details: { host: this.host, status: 401 } },
        );
      }
      this.challenge = ch;
      this.tokens.clear();
    }
  }

  /**
   * GET /v2/: checks that this is a v2 registry and learns its auth challenge. Done once per client: later calls
   * (also while the first is under way) share its outcome, so a caller may start it early to overlap it.
   */
  ping(what: string): Promise<void> {
    this.probe ??= (async () => {
      const res = await this.exchangeRetrying('GET', new URL('/v2/', this.baseUrl), {}, what);
      res.body.resume();
      if (res.status === 401) this.challenge = parseChallenge(res.headers['www-authenticate']);
      else if (res.status !== 200)
        throw new BosonError('REGISTRY_ERROR', `${what}: ${this.host} is not a v2 registry (GET /v2/ answered ${res.status})`, {
          details: { status: res.status },
        });
    })();
    return this.probe;
  }

  /** Checks that the stored credentials are accepted (for `login`): /v2/ with auth. */
  async checkLogin(what: string): Promise<void> {
    await this.ping(what);
    if (!this.challenge) return;
    const res = await this.request('GET', '/v2/', { what });
    res.body.resume();
    if (res.status !== 200) throw new BosonError('REGISTRY_ERROR', `${what}: GET /v2/ answered ${res.status}`);
  }

  /**
   * Fetches a manifest or index by tag or digest. Verifies its digest when fetched by digest, and against the
   * Docker-Content-Digest header otherwise. MANIFEST_UNKNOWN on 404; IMAGE_INVALID when it is larger than 4 MiB.
   */
  async manifest(repository: string, reference: string, what: string): Promise<{ body: Buffer; mediaType: string; digest: string }> {
    await this.ping(what);
    const res = await this.request('GET', `/v2/${repository}/manifests/${reference}`, {
      headers: { Accept: MANIFEST_ACCEPT },
      repository,
      what,
    });
    if (res.status === 404) {
      res.body.resume();
      throw new BosonError('MANIFEST_UNKNOWN', `${what}: manifest unknown (${this.host} has no ${repository}:${reference})`, {
        details: { repository, reference },
      });
    }
    if (res.status !== 200) {
      res.body.resume();
      throw new BosonError('REGISTRY_ERROR', `${what}: ${this.host} answered ${res.status} for the manifest`, {
        details: { status: res.status },
      });
    }
    const length = Number(res.headers['content-length']);
    if (Number.isFinite(length) && length > MAX_MANIFEST_BYTES) {
      res.body.destroy();
      throw new BosonError('IMAGE_INVALID', `${what}: the manifest is ${length} bytes, more than the ${MAX_MANIFEST_BYTES}-byte limit`, {
        details: { size: length },
      });
    }
    let body: Buffer;
    try {
      body = await readLimited(res.body, MAX_MANIFEST_BYTES, `${what}: manifest`);
    } catch (err) {
      if (err instanceof BosonError) throw err;
      throw new BosonError(
        'REGISTRY_UNREACHABLE',
        `${what}: the connection to ${this.host} broke while reading the manifest: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const digest = sha256Digest(body);
    const expected = reference.startsWith('sha256:') ? reference : (res.headers['docker-content-digest'] as string | undefined);
    if (expected !== undefined && expected.startsWith('sha256:') && expected !== digest) {
      throw new BosonError('IMAGE_CORRUPT', `${what}: the manifest does not match its digest ${expected} (content is ${digest})`, {
        details: { digest: expected, actual: digest },
      });
    }
    let mediaType = (res.headers['content-type'] ?? '').split(';')[0]!.trim();
    try {
      const inner = (JSON.parse(body.toString('utf8')) as { mediaType?: unknown }).mediaType;
      if (typeof inner === 'string' && inner !== '') mediaType = inner;
    } catch {
      /* the caller reports invalid JSON */
    }
    return { body, mediaType, digest };
  }

  /**
   * Opens a blob, from byte `offset` when > 0 (Range). The caller checks `status`: 200 (whole blob) or 206 (from
   * `offset`). 404 is REGISTRY_ERROR (the manifest names a blob the registry does not have).
   */
  async blob(repository: string, digest: string, offset: number, what: string): Promise<RegistryResponse> {
    await this.ping(what);
    const headers: Record<string, string> = offset > 0 ? { Range: `bytes=${offset}-` } : {};
    const res = await this.request('GET', `/v2/${repository}/blobs/${digest}`, { headers, repository, what });
    if (res.status === 200 || res.status === 206 || res.status === 416) return res;
    res.body.resume();
    throw new BosonError('REGISTRY_ERROR', `${what}: ${this.host} answered ${res.status} for blob ${digest}`, {
      details: { status: res.status, digest },
    });
  }
}

/** Reads a whole body, refusing more than `limit` bytes (IMAGE_INVALID). Network errors propagate. */
export async function readLimited(body: http.IncomingMessage, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += (c as Buffer).length;
    if (n > limit) {
      body.destroy();
      throw new BosonError('IMAGE_INVALID', `${what} is larger than the ${limit}-byte limit`, { details: { limit } });
    }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}
