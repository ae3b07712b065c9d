/**
 * A VM's whole state to and from a file, over QEMU's migration stream on a `unix:` socket. Private to src/vmm.
 *
 * QEMU 7.2 has no `file:` migration URI and a jailed QEMU's seccomp sandbox forbids `exec:` (it spawns a shell), so
 * the stream goes over a UNIX socket in the VM's runtime directory, which is inside its chroot: to save, this
 * process listens there, QEMU connects (`migrate unix:...`) and the bytes are written to the file; to restore, a QEMU
 * started with `-incoming defer` listens there (`migrate-incoming unix:...`) and this process connects and feeds it
 * the file. The paths QEMU is given are its own view: `/<name>` when it is chrooted into the runtime directory.
 */
import { createReadStream, createWriteStream, readlinkSync } from 'node:fs';
import { chmod, chown, rename, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { BosonError } from '../common/index.ts';
import type { QmpClient } from './qmp.ts';

/** The socket a save streams through, in the runtime directory. */
export const MIGRATE_OUT_SOCKET = 'mig-out.sock';
/** The socket a restore streams through, in the runtime directory. */
export const MIGRATE_IN_SOCKET = 'mig-in.sock';

/** How a migration went: the bytes of the stream and how long it took. */
export interface MigrationResult {
  bytes: number;
  ms: number;
}

/** How QEMU `pid` names `file` of `runtimeDir`: relative to its root, which is the runtime directory when it is chrooted. */
export function qemuPath(pid: number, runtimeDir: string, file: string): string {
  let root = '/';
  try {
    root = readlinkSync(`/proc/${pid}/root`);
  } catch {
    // Not ours to read: assume the host's root.
  }
  return root === '/' ? path.join(runtimeDir, file) : `/${file}`;
}

/**
 * Resolves when QEMU reports the migration `completed`; rejects on `failed`/`cancelled`, when `failed` returns an
 * error (this end's side of the stream broke), or after `timeoutMs`. A QEMU whose incoming migration fails exits
 * (7.2): QMP closes, which rejects too.
 */
async function migrationDone(qmp: QmpClient, timeoutMs: number, what: string, failed?: () => Error | undefined): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const err = failed?.();
    if (err) throw new BosonError('TOOL_FAILED', `${what} failed: ${err.message}`, { cause: err });
    const info = (await qmp.execute('query-migrate')) as { status?: string; 'error-desc'?: string };
    if (info.status === 'completed') return;
    if (info.status === 'failed' || info.status === 'cancelled')
      throw new BosonError('TOOL_FAILED', `${what} failed in QEMU: ${info['error-desc'] ?? info.status}`);
    if (Date.now() > end) throw new BosonError('TOOL_FAILED', `${what} did not complete within ${timeoutMs} ms (status ${info.status})`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Migration settings for a stopped VM to a local stream: no bandwidth cap (QEMU's default throttles to 128 MiB/s). */
async function unthrottle(qmp: QmpClient): Promise<void> {
  await qmp.execute('migrate-set-parameters', { 'max-bandwidth': 16 * 1024 * 1024 * 1024 }).catch(() => undefined);
}

/**
 * Streams the whole state of the (already stopped) VM of QEMU `pid` into `file` (mode 0600, replaced whole: written
 * to a temporary name, renamed when QEMU reports completion). The VM stays stopped; the caller ends QEMU.
 */
export async function saveState(
  qmp: QmpClient,
  pid: number,
  runtimeDir: string,
  file: string,
  options: { timeoutMs?: number } = {},
): Promise<MigrationResult> {
  const t0 = performance.now();
  const sock = path.join(runtimeDir, MIGRATE_OUT_SOCKET);
  await rm(sock, { force: true });
  const tmp = `${file}.partial`;
  let bytes = 0;
  let received!: Promise<void>;
  const server = net.createServer();
  const connected = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(sock, () => resolve());
  });
  try {
    // A jailed QEMU runs as its own user: the socket is made its own, so that it alone may connect.
    await chmod(sock, 0o600);
    if (process.geteuid?.() === 0) {
      const owner = await stat(`/proc/${pid}`);
      await chown(sock, owner.uid, owner.gid);
    }
    await unthrottle(qmp);
    const timeoutMs = options.timeoutMs ?? 120_000;
    await qmp.execute('migrate', { uri: `unix:${qemuPath(pid, runtimeDir, MIGRATE_OUT_SOCKET)}` });
    const conn = await Promise.race([
      connected,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new BosonError('TOOL_FAILED', 'QEMU did not connect to the migration socket')), 10_000).unref(),
      ),
    ]);
    conn.on('data', (d: Buffer) => (bytes += d.length));
    received = pipeline(conn, createWriteStream(tmp, { mode: 0o600 }));
    await migrationDone(qmp, timeoutMs, 'saving the micro-VM');
    await received;
    await rename(tmp, file);
  } catch (err) {
    await qmp.execute('migrate_cancel').catch(() => undefined);
    await received?.catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  } finally {
    server.close();
    await rm(sock, { force: true });
  }
  return { bytes, ms: performance.now() - t0 };
}

/**
 * Feeds `file` to QEMU `pid`, started with `-incoming defer`, as its incoming migration and waits until QEMU has
 * loaded it. The VM is then in the run state the saved one had (paused, for a VM saved by saveState): the caller
 * continues it.
 */
export async function loadState(
  qmp: QmpClient,
  pid: number,
  runtimeDir: string,
  file: string,
  options: { timeoutMs?: number } = {},
): Promise<MigrationResult> {
  const t0 = performance.now();
  const { size } = await stat(file).catch((cause: unknown) => {
    throw new BosonError('SUSPEND_STATE_LOST', `the saved state ${file} cannot be read: ${(cause as Error).message}`, { cause });
  });
  const sock = path.join(runtimeDir, MIGRATE_IN_SOCKET);
  await rm(sock, { force: true });
  await qmp.execute('migrate-incoming', { uri: `unix:${qemuPath(pid, runtimeDir, MIGRATE_IN_SOCKET)}` });
  const conn = await connectRetry(sock, 10_000);
  try {
    // QEMU's verdict is the one that counts: it may close the socket as soon as it has read the last byte, before
    // this end has seen its write finish ("Premature close", ECONNRESET), which is not a failure. A file that
    // cannot be read is one: QEMU would wait for the rest.
    let readError: Error | undefined;
    const source = createReadStream(file);
    // pipeline() destroys the file's stream with ERR_STREAM_PREMATURE_CLOSE when QEMU closes early: not a read error.
    source.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ERR_STREAM_PREMATURE_CLOSE') readError = err;
    });
    const sent = pipeline(source, conn).catch(() => undefined);
    await migrationDone(qmp, options.timeoutMs ?? 120_000, 'restoring the micro-VM', () => readError);
    await sent;
  } finally {
    conn.destroy();
    await rm(sock, { force: true });
  }
  return { bytes: size, ms: performance.now() - t0 };
}

async function connectRetry(socketPath: string, timeoutMs: number): Promise<net.Socket> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect(socketPath);
        s.once('connect', () => {
          s.off('error', reject);
          resolve(s);
        });
        s.once('error', reject);
      });
    } catch (err) {
      if (Date.now() > end)
        throw new BosonError('TOOL_FAILED', `QEMU did not open its incoming migration socket: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}
