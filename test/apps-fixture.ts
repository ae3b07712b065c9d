/**
 * Real applications for the apps suite and benchmark: the images that scripts/build-app-images.sh builds from
 * Debian's packages (redis-server, nginx) and, for each, how to ask it something from the host with its own
 * client (redis-cli from Debian's redis-tools; HTTP for nginx) once its port is published on 127.0.0.1.
 */
import { execFile, spawn } from 'node:child_process';
import { access } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../src/common/index.ts';
import { collect, type BosonResult } from './helpers.ts';
import { pushLayout, startRegistry, type TestRegistry } from './registry-fixture.ts';

const run = promisify(execFile);

/** The OCI layout with the entries "redis" and "nginx", built by the setup command. */
export const APP_LAYOUT = path.join(PACKAGE_ROOT, 'build', 'app-images', 'oci');

/** The page scripts/build-app-images.sh puts in the nginx image. */
export const NGINX_PAGE = 'Hello from nginx in a Boson micro-VM';

/** One application image. */
export interface App {
  /** Its entry in APP_LAYOUT, and the repository it is pushed to (apps/<name>). */
  name: string;
  /** The port it listens on in the container. */
  port: number;
  /** One request with the app's own client; resolves with its answer, rejects while the app does not answer. */
  probe(hostPort: number): Promise<string>;
}

/**
 * redis-cli against 127.0.0.1:port; its stdout, or a rejection. Killed after 2 s (this redis-cli has no connect
 * timeout, and a SYN to a guest that is not up yet may go unanswered).
 */
export async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 2000 });
  // redis-cli prints errors (e.g. "Could not connect") on stdout with exit 0 in some versions: treat them as failures.
  if (/^(Could not connect|Error:)/m.test(stdout)) throw new Error(stdout.trim());
  return stdout;
}

/** GET http://127.0.0.1:port/path with a 1 s timeout: status and body. */
export async function httpGet(port: number, urlPath = '/'): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${urlPath}`, { signal: AbortSignal.timeout(1000) });
  return { status: res.status, body: await res.text() };
}

/**
 * Resolves once a TCP connection to 127.0.0.1:port is accepted, rejects after 200 ms. Probes call it first: a SYN
 * sent before the guest is up goes unanswered and is retried by the kernel only after a second, which would make
 * the measured time to the first answer a matter of client timeouts.
 */
export function tcpOpen(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => socket.destroy(new Error('connect timed out')), 200);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.end();
      resolve();
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

export const APPS: App[] = [
  {
    name: 'redis',
    port: 6379,
    probe: async (p) => {
      await tcpOpen(p);
      return (await redisCli(p, 'PING')).trim();
    },
  },
  {
    name: 'nginx',
    port: 80,
    probe: async (p) => {
      await tcpOpen(p);
      const r = await httpGet(p);
      if (r.status !== 200) throw new Error(`HTTP ${r.status}`);
      return r.body;
    },
  },
];

/** Fails with a clear message when the setup command has not built the application images. */
export async function requireAppLayout(): Promise<void> {
  await access(path.join(APP_LAYOUT, 'index.json')).catch(() => {
    throw new Error(`application images missing at ${APP_LAYOUT}: run the setup command (scripts/build-app-images.sh)`);
  });
}

/** A loopback registry holding every app as <host>/apps/<name>:latest. */
export async function startAppRegistry(): Promise<TestRegistry> {
  await requireAppLayout();
  const registry = await startRegistry();
  try {
    for (const app of APPS) await pushLayout(APP_LAYOUT, app.name, `${registry.host}/apps/${app.name}:latest`);
  } catch (err) {
    await registry.stop();
    throw err;
  }
  return registry;
}

/** Runs the docker CLI `bin` with `env` to completion. */
export function dockerIn(bin: string, env: NodeJS.ProcessEnv, args: string[], timeoutMs = 180_000): Promise<BosonResult> {
  return collect(spawn(bin, args, { env, stdio: ['pipe', 'pipe', 'pipe'] }), undefined, timeoutMs, [bin, ...args]);
}

/** Polls `probe` every 20 ms until it answers; resolves with the answer and when it came (performance.now()). */
export async function firstAnswer(probe: () => Promise<string>, timeoutMs: number): Promise<{ answer: string; at: number }> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const answer = await probe();
      return { answer, at: performance.now() };
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no answer in ${timeoutMs} ms: ${(last as Error)?.message}`);
}
