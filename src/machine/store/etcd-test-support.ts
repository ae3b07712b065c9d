/**
 * A real etcd for tests and benchmarks: Debian's etcd-server (installed by scripts/setup.sh, its service masked),
 * started on loopback with a temporary data directory and random ports, bound to this process (setpriv
 * --pdeathsig KILL: it dies with the test process even when that is killed), and stopped and removed by `stop()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** A running test etcd. */
export interface TestEtcd {
  /** The client URL, e.g. http://127.0.0.1:40123. */
  endpoint: string;
  /** Stops etcd and removes its data directory (idempotent). */
  stop(): Promise<void>;
}

const freePort = async (): Promise<number> =>
  new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });

const exited = (proc: ChildProcess): Promise<void> =>
  proc.exitCode !== null || proc.signalCode !== null ? Promise.resolve() : new Promise((r) => proc.once('exit', () => r()));

/** Waits until etcd answers /health on its client URL, or fails with what it printed. */
async function waitHealthy(endpoint: string, proc: ChildProcess, output: () => string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`etcd exited at start:\n${output().slice(-2000)}`);
    try {
      const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
      if (res.ok && ((await res.json()) as { health?: string }).health === 'true') return;
    } catch {
      /* not up yet */
    }
    if (Date.now() > end) throw new Error(`etcd did not become healthy within ${ms} ms:\n${output().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Starts etcd on loopback. `maxTxnOps` is raised above etcd's default of 128 because the store conformance suite
 * writes 10,005 records in one commit (each a record and a change-log entry in one etcd transaction).
 */
export async function startTestEtcd(opts: { maxTxnOps?: number } = {}): Promise<TestEtcd> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-etcd-'));
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const [client, peer] = [await freePort(), await freePort()];
    const endpoint = `http://127.0.0.1:${client}`;
    const peerUrl = `http://127.0.0.1:${peer}`;
    const args = [
      '--name=boson-test',
      `--data-dir=${path.join(dir, `data${attempt}`)}`,
      `--listen-client-urls=${endpoint}`,
      `--advertise-client-urls=${endpoint}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=boson-test=${peerUrl}`,
      '--initial-cluster-state=new',
      `--max-txn-ops=${opts.maxTxnOps ?? 50_000}`,
      `--max-request-bytes=${64 * 1024 * 1024}`,
      '--quota-backend-bytes=4294967296',
      '--logger=zap',
      '--log-level=warn',
    ];
    const proc = spawn('setpriv', ['--pdeathsig', 'KILL', '--', 'etcd', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    proc.on('error', (err) => (out += `\nspawn: ${err.message}`));
    try {
      await waitHealthy(endpoint, proc, () => out, 30_000);
    } catch (err) {
      lastError = err;
      proc.kill('SIGKILL');
      await exited(proc);
      if (/address already in use/.test(out)) continue; // a port was taken between the probe and the bind
      break;
    }
    let stopped = false;
    return {
      endpoint,
      async stop() {
        if (stopped) return;
        stopped = true;
        proc.kill('SIGTERM');
        const killer = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited(proc);
        clearTimeout(killer);
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
  await rm(dir, { recursive: true, force: true });
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}
