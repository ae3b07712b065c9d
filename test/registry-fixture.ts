/**
 * Real registries for the pull suites and the pull benchmark: Debian's docker-registry (distribution 2.8) on a
 * random loopback port with a temporary storage directory, plain, with htpasswd Basic auth, or behind a token
 * server written here (RS256 JWTs whose x5c certificate the registry checks against its rootcertbundle). Test
 * images are built as OCI layouts with src/image/oci-writer.ts and pushed with skopeo.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createGunzip } from 'node:zlib';
import { X509Certificate, createPrivateKey, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createReadStream } from 'node:fs';
import { promisify } from 'node:util';
import { SignJWT } from 'jose';
import { PACKAGE_ROOT } from '../src/common/index.ts';
import { buildOciLayout, saveOciLayout, type LayoutImage } from '../src/image/oci-writer.ts';
import { sha256Digest } from '../src/image/content-store.ts';

const run = promisify(execFile);

/** A free TCP port on 127.0.0.1 (closed again: another process may take it before the caller binds it). */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** A running registry. */
export interface TestRegistry {
  host: string;
  dir: string;
  stop(): Promise<void>;
}

/** The token service of a token-auth registry. */
export interface TokenServer {
  realm: string;
  /** Requests served, with whether they carried valid credentials. */
  requests: { scope: string | null; authorized: boolean }[];
  stop(): Promise<void>;
}

export type RegistryAuth =
  | { kind: 'none' }
  | { kind: 'htpasswd'; user: string; password: string }
  | { kind: 'token'; user: string; password: string; tokenTtlSeconds?: number };

async function waitHttp(url: string, child: ChildProcess, log: () => string): Promise<void> {
  const end = Date.now() + 15_000;
  while (Date.now() < end) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited (${child.exitCode}): ${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      // A TLS registry's certificate is the test's own: only whether it answers counts here.
      const get = url.startsWith('https:')
        ? (u: string, cb: (res: http.IncomingMessage) => void) => https.get(u, { rejectUnauthorized: false }, cb)
        : (u: string, cb: (res: http.IncomingMessage) => void) => http.get(u, cb);
      const req = get(url, (res) => {
        res.resume();
        resolve(true);
      });
      req.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`docker-registry did not answer at ${url}: ${log()}`);
}

async function startTokenServer(
  dir: string,
  service: string,
  issuer: string,
  user: string,
  password: string,
  ttl: number,
): Promise<{ server: TokenServer; cert: string }> {
  const key = path.join(dir, 'token-key.pem');
  const cert = path.join(dir, 'token-cert.pem');
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    '/CN=boson-test-token',
  ]);
  const privateKey = createPrivateKey(await fs.readFile(key));
  const x5c = [new X509Certificate(await fs.readFile(cert)).raw.toString('base64')];
  const requests: TokenServer['requests'] = [];
  const expected = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const srv = http.createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const scope = url.searchParams.get('scope');
      const authorized = req.headers.authorization === expected;
      requests.push({ scope, authorized });
      if (req.headers.authorization && !authorized) {
        res.writeHead(401, { 'Content-Type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
        return;
      }
      const access: { type: string; name: string; actions: string[] }[] = [];
      // Anonymous callers get a token without rights (the registry then answers 401); users get what they ask.
      if (authorized && scope) {
        const [type, name, actions] = scope.split(':');
        access.push({ type: type!, name: name!, actions: actions!.split(',') });
      }
      const now = Math.floor(Date.now() / 1000);
      const token = await new SignJWT({ access })
        .setProtectedHeader({ alg: 'RS256', typ: 'JWT', x5c })
        .setIssuer(issuer)
        .setSubject(authorized ? user : '')
        .setAudience(url.searchParams.get('service') ?? '')
        .setIssuedAt(now)
        .setNotBefore(now - 10)
        .setExpirationTime(now + ttl)
        .setJti(randomUUID())
        .sign(privateKey);
      res
        .writeHead(200, { 'Content-Type': 'application/json' })
        .end(JSON.stringify({ token, access_token: token, expires_in: ttl, issued_at: new Date().toISOString() }));
    })().catch((err: Error) => res.writeHead(500).end(err.message));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const realm = `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}/token`;
  return {
    cert,
    server: {
      realm,
      requests,
      stop: () =>
        new Promise<void>((r) => {
          srv.closeAllConnections();
          srv.close(() => r());
        }),
    },
  };
}

/** Where and how a test registry listens: an address other than 127.0.0.1, and TLS with a certificate and key. */
export interface RegistryListen {
  address?: string;
  tls?: { cert: string; key: string };
}

/**
 * Starts docker-registry with `auth`; for token auth, also the token server (returned). Its port was free a moment
 * before the registry binds it: when another process took it meanwhile, it starts again on another port.
 */
export async function startRegistry(
  auth: RegistryAuth = { kind: 'none' },
  listen: RegistryListen = {},
): Promise<TestRegistry & { token?: TokenServer }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startRegistryOnce(auth, listen);
    } catch (err) {
      if (attempt === 5 || !/address already in use/.test((err as Error).message)) throw err;
    }
  }
}

async function startRegistryOnce(auth: RegistryAuth, listen: RegistryListen): Promise<TestRegistry & { token?: TokenServer }> {
  const address = listen.address ?? '127.0.0.1';
  const dir = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'boson-registry-')));
  const port = await freePort();
  let authYaml = '';
  let token: TokenServer | undefined;
  try {
    if (auth.kind === 'htpasswd') {
      const { stdout } = await run('htpasswd', ['-Bbn', auth.user, auth.password]);
      await fs.writeFile(path.join(dir, 'htpasswd'), stdout);
      authYaml = `auth:\n  htpasswd:\n    realm: boson-test\n    path: ${dir}/htpasswd\n`;
    } else if (auth.kind === 'token') {
      const t = await startTokenServer(
        dir,
        'boson-test-registry',
        'boson-test-issuer',
        auth.user,
        auth.password,
        auth.tokenTtlSeconds ?? 300,
      );
      token = t.server;
      authYaml = `auth:\n  token:\n    realm: ${t.server.realm}\n    service: boson-test-registry\n    issuer: boson-test-issuer\n    rootcertbundle: ${t.cert}\n`;
    }
    const config = `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${dir}/data
  delete:
    enabled: true
http:
  addr: ${address}:${port}
  secret: boson-test-secret
${listen.tls ? `  tls:\n    certificate: ${listen.tls.cert}\n    key: ${listen.tls.key}\n` : ''}${authYaml}`;
    await fs.writeFile(path.join(dir, 'config.yml'), config);
  } catch (err) {
    await token?.stop();
    await fs.rm(dir, { recursive: true, force: true });
    throw err;
  }
  const child = spawn('/usr/bin/docker-registry', ['serve', path.join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  child.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    await token?.stop();
    await fs.rm(dir, { recursive: true, force: true });
  };
  try {
    await waitHttp(`${listen.tls ? 'https' : 'http'}://${address}:${port}/v2/`, child, () => log);
  } catch (err) {
    await stop();
    throw err;
  }
  return { host: `${address}:${port}`, dir, token, stop };
}

/** Pushes the OCI layout `layoutDir` (entry `refName`) to docker://<dest> with skopeo. */
export async function pushLayout(
  layoutDir: string,
  refName: string,
  dest: string,
  opts: { format?: 'v2s2' | 'oci'; all?: boolean; creds?: string } = {},
): Promise<void> {
  const args = ['copy', '--quiet', '--dest-tls-verify=false'];
  if (opts.format) args.push('--format', opts.format);
  if (opts.all) args.push('--all');
  if (opts.creds) args.push('--dest-creds', opts.creds);
  args.push(`oci:${layoutDir}:${refName}`, `docker://${dest}`);
  try {
    await run('skopeo', args, { maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    throw new Error(`skopeo ${args.join(' ')} failed: ${(err as { stderr?: string }).stderr ?? (err as Error).message}`);
  }
}

/** The uncompressed layer tar of the demo busybox image (its only layer): a base with /bin/busybox and a shell. */
export async function busyboxLayerTar(): Promise<Buffer> {
  const layout = path.join(PACKAGE_ROOT, 'build', 'images', 'busybox-oci');
  const index = JSON.parse(await fs.readFile(path.join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const blob = (d: string): string => path.join(layout, 'blobs', 'sha256', d.slice(7));
  const manifest = JSON.parse(await fs.readFile(blob(index.manifests[0]!.digest), 'utf8')) as { layers: { digest: string }[] };
  const chunks: Buffer[] = [];
  await pipeline(createReadStream(blob(manifest.layers[0]!.digest)), createGunzip(), async function* (src) {
    for await (const c of src) chunks.push(c as Buffer);
  });
  return Buffer.concat(chunks);
}

/** A config for a test image (Cmd sh, PATH set). */
export function testConfig(extra: Record<string, unknown> = {}, arch = 'amd64'): Record<string, unknown> {
  return {
    architecture: arch,
    os: 'linux',
    created: '2024-01-01T00:00:00Z',
    config: { Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['sh'], ...extra },
  };
}

/** Writes `images` as one multi-platform index entry named `refName` (for `skopeo copy --all`). */
export async function writeIndexLayout(dir: string, refName: string, images: LayoutImage[]): Promise<string> {
  const files = buildOciLayout(images);
  const inner = JSON.parse(files.indexJson.toString('utf8')) as { manifests: unknown[] };
  const indexBlob = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: inner.manifests }),
  );
  const indexDigest = sha256Digest(indexBlob);
  files.blobs.set(indexDigest, indexBlob);
  files.indexJson = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.index.v1+json',
          digest: indexDigest,
          size: indexBlob.length,
          annotations: { 'org.opencontainers.image.ref.name': refName },
        },
      ],
    }),
  );
  await saveOciLayout(files, dir);
  return indexDigest;
}
