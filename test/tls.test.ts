/**
 * Remote access Docker's way: `boson tls init` makes the certificates; TCP endpoints need TLS with a client
 * certificate (or are plain only on loopback and only with --insecure-tcp); every TCP request is checked (browser
 * Origin, Host, body type) and carries the certificate's subject as its principal. End to end: the stock docker CLI
 * over TLS with a client certificate runs a container in a micro-VM; without one it is refused.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { PRINCIPAL_HEADER, isBosonError, resolveTcpEndpoint, serveTcpEndpoint } from '../src/common/index.ts';
import { DEBIAN_DOCKER_PATH } from './docker-clis.ts';
import { BOSON, freePort, makeTestHost, qemuPidsUsing, runBoson, waitFor, type TestHost } from './helpers.ts';

const run = promisify(execFile);
let dir: string;
let tlsDir: string;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'boson-tls-'));
  tlsDir = path.join(dir, 'tls');
  await run(BOSON, ['tls', 'init', '--dir', tlsDir, '--user', 'alice'], { env: { ...process.env, BOSON_CONFIG_DIR: dir } });
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const files = (): { ca: string; cert: string; key: string; serverCert: string; serverKey: string } => ({
  ca: path.join(tlsDir, 'ca.pem'),
  cert: path.join(tlsDir, 'cert.pem'),
  key: path.join(tlsDir, 'key.pem'),
  serverCert: path.join(tlsDir, 'server-cert.pem'),
  serverKey: path.join(tlsDir, 'server-key.pem'),
});

describe('TCP endpoints', () => {
  test('an unsafe listener is refused before anything starts, with what to do instead', async () => {
    const refused = async (req: Parameters<typeof resolveTcpEndpoint>[0], pattern: RegExp): Promise<void> => {
      await assert.rejects(resolveTcpEndpoint(req, '--docker-tcp'), (e) => isBosonError(e, 'INVALID_ARGUMENT') && pattern.test(e.message));
    };
    await refused({ address: '0.0.0.0:2375', tlsVerify: false, insecure: true }, /own this host.*--tlsverify/);
    await refused({ address: '192.0.2.1:2375', tlsVerify: false, insecure: true }, /--tlsverify/);
    await refused({ address: '127.0.0.1:2375', tlsVerify: false, insecure: false }, /--insecure-tcp/);
    await refused(
      {
        address: '127.0.0.1:2376',
        tlsVerify: true,
        insecure: false,
        tlsCaCert: '/nonexistent/ca.pem',
        tlsCert: files().serverCert,
        tlsKey: files().serverKey,
      },
      /cannot read/,
    );
    await refused({ address: 'nonsense', tlsVerify: true, insecure: false }, /host:port/);
    const ok = await resolveTcpEndpoint({ address: '127.0.0.1:2375', tlsVerify: false, insecure: true }, '--tcp');
    assert.equal(ok.tls, null);
  });

  test('TLS with a client certificate; the subject is the principal; browser, Host and body-type checks', async () => {
    const f = files();
    const endpoint = await resolveTcpEndpoint(
      {
        address: `127.0.0.1:${await freePort()}`,
        tlsVerify: true,
        insecure: false,
        tlsCaCert: f.ca,
        tlsCert: f.serverCert,
        tlsKey: f.serverKey,
      },
      '--tcp',
    );
    // The API behind it: echoes the principal it was given.
    const target = http.createServer((req, res) => res.end(JSON.stringify({ principal: req.headers[PRINCIPAL_HEADER] ?? null })));
    const server: net.Server = await serveTcpEndpoint(endpoint, target);
    const [ca, cert, key] = await Promise.all([readFile(f.ca), readFile(f.cert), readFile(f.key)]);
    const request = (headers: Record<string, string>, body?: string, withCert = true): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const req = https.request(
          {
            host: '127.0.0.1',
            servername: 'localhost',
            port: endpoint.port,
            method: body === undefined ? 'GET' : 'POST',
            path: '/v1/containers',
            ca,
            ...(withCert ? { cert, key } : {}),
            headers,
          },
          (res) => {
            let text = '';
            res.on('data', (d: Buffer) => (text += d.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    try {
      const ok = await request({ [PRINCIPAL_HEADER]: 'CN=mallory' });
      assert.equal(ok.status, 200);
      assert.deepEqual(JSON.parse(ok.body), { principal: 'CN=alice' }, 'the certificate decides, not a header the client sent');
      await assert.rejects(request({}, undefined, false), 'no client certificate: the handshake fails');
      assert.equal((await request({ Origin: 'http://evil.example' })).status, 403);
      assert.equal((await request({ Host: 'evil.example' })).status, 421, 'DNS rebinding: a Host this endpoint is not');
      assert.equal((await request({ 'Content-Type': 'text/plain' }, '{"Image":"busybox"}')).status, 415);
      assert.equal((await request({ 'Content-Type': 'application/x-www-form-urlencoded' }, 'a=b')).status, 415);
      assert.equal((await request({ 'Content-Type': 'application/json' }, '{"Image":"busybox"}')).status, 200);
    } finally {
      server.close();
    }
  });
});

describe('the stock docker CLI over TLS', () => {
  let host: TestHost;
  let daemon: ChildProcess;
  let port: number;
  before(async () => {
    host = await makeTestHost();
    port = await freePort();
    const f = files();
    daemon = spawn(
      BOSON,
      ['up', '--tlsverify', '--tlscacert', f.ca, '--tlscert', f.serverCert, '--tlskey', f.serverKey, '--docker-tcp', `127.0.0.1:${port}`],
      { env: host.env, stdio: 'ignore' },
    );
    await waitFor(async () => (await runBoson(host, ['ps'])).code === 0, 30_000, 'the daemon to answer');
  });
  after(async () => {
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
    await host.cleanup();
  });

  const docker = (env: NodeJS.ProcessEnv, ...args: string[]): Promise<{ stdout: string; stderr: string }> =>
    run(DEBIAN_DOCKER_PATH, args, { env: { ...process.env, DOCKER_HOST: `tcp://127.0.0.1:${port}`, ...env }, timeout: 120_000 });

  test('with the client certificate it runs a container in a micro-VM; without one it is refused', async () => {
    const withCert = { DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: tlsDir };
    const r = await docker(withCert, 'run', '--rm', 'busybox', 'uname', '-r');
    assert.match(r.stdout.trim(), /boson/, 'the guest kernel answered');
    assert.deepEqual(await qemuPidsUsing(host.stateDir), []);
    await assert.rejects(docker({ DOCKER_TLS_VERIFY: '', DOCKER_CERT_PATH: '' }, 'ps'), 'plain HTTP to a TLS endpoint');
    // TLS, but no client certificate (only the CA, to trust the server): the handshake is refused.
    const anonymous = await mkdtemp(path.join(os.tmpdir(), 'boson-anon-'));
    try {
      await run('cp', [files().ca, path.join(anonymous, 'ca.pem')]);
      await assert.rejects(
        run('curl', ['-sS', '--fail', '--cacert', path.join(anonymous, 'ca.pem'), `https://127.0.0.1:${port}/_ping`], { timeout: 30_000 }),
      );
    } finally {
      await rm(anonymous, { recursive: true, force: true });
    }
  });
});
