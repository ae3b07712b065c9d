/**
 * Root disks for a daemon that is not root (rootless mode). Flattening sets every file's owner to the image's
 * uid/gid (and mkfs records those owners), which an ordinary user cannot do. So a rootless store runs the whole
 * build (flatten, mkfs, removal of the staging tree) in a child process inside a **user namespace** made by
 * `unshare --map-auto --map-root-user` (util-linux, with newuidmap/newgidmap from the uidmap package): the user is
 * root there, and ids 1–65535 map to the user's subordinate ids from /etc/subuid and /etc/subgid. Inside, chown
 * works and mkfs sees the image's own ids, so the disk is the same as a root daemon builds. The flattener and mkfs
 * code are the same as the root path (userns-child.ts calls them); the root path does not go through here.
 *
 * The parent streams each layer's uncompressed tar to the child over its stdin, framed (the child asks for layer
 * i when it reaches it, as the in-process flattener opens it), and ends a layer only once the parent's stream has
 * ended without error, so a check made at the end of a layer (its diff_id) still fails the build. The child
 * reports progress, and its result or typed error, as JSON lines on stdout. The staging tree's files belong to
 * subordinate ids, so only the namespace can delete them: the child removes the tree itself; if it died first,
 * the parent removes it through a namespace, and trees of dead processes are swept the same way.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BosonError, ERROR_CATALOGUE, PACKAGE_ROOT, type ErrorCode } from '../common/index.ts';
import type { LayerInput } from './flatten.ts';
import type { RootFsType } from './rootfs.ts';
import { isNoSpace, privateDir, stagingParent } from './staging.ts';
import { pidAlive } from './tempfiles.ts';
import type { ImageProgress, RootDisk } from './types.ts';

/** unshare's arguments: the user is root in the namespace, ids 1–65535 are its first subordinate range. */
const UNSHARE = ['--map-auto', '--map-root-user'];

/** Frames on the child's stdin: [type u8][length u32 BE][payload]. */
export const FRAME = { DATA: 1, END: 2, ABORT: 3 } as const;

/** A message from the child (one JSON line on its stdout). */
export type ChildMessage =
  | { t: 'open'; i: number }
  | { t: 'progress'; e: Parameters<ImageProgress>[0] }
  | { t: 'done'; size: number }
  | { t: 'error'; code: string; message: string; details?: Record<string, unknown>; errno?: string };

/** What the child is asked to build (its one argument, as JSON). */
export interface ChildSpec {
  stage: string;
  out: string;
  fstype: RootFsType;
  layers: string[];
}

function userName(): string | null {
  try {
    return os.userInfo().username;
  } catch {
    return null;
  }
}

/** Ranges of subordinate ids of the user (`name` or uid) in an /etc/subuid-style file. */
export function subordinateRanges(text: string, name: string | null, uid: number): Array<{ start: number; count: number }> {
  const out: Array<{ start: number; count: number }> = [];
  for (const line of text.split('\n')) {
    const [who, start, count] = line.trim().split(':');
    if (who === undefined || start === undefined || count === undefined) continue;
    if (who !== name && who !== String(uid)) continue;
    const s = Number(start);
    const c = Number(count);
    if (Number.isInteger(s) && Number.isInteger(c) && c > 0) out.push({ start: s, count: c });
  }
  return out;
}

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '/usr/bin:/bin').split(':').some((d) => d !== '' && existsSync(path.join(d, cmd)));
}

let setupChecked = false;

/**
 * Checks what a user namespace with the user's subordinate ids needs: newuidmap/newgidmap, and a range for the
 * user in /etc/subuid and /etc/subgid. ROOTLESS_SETUP_MISSING saying what to add otherwise.
 */
export async function checkUserNamespaceSetup(files = { subuid: '/etc/subuid', subgid: '/etc/subgid' }): Promise<void> {
  if (setupChecked) return;
  const name = userName();
  const uid = process.geteuid?.() ?? 0;
  const who = name ?? String(uid);
  const missing: string[] = [];
  for (const file of [files.subuid, files.subgid]) {
    const text = await fs.readFile(file, 'utf8').catch(() => '');
    if (subordinateRanges(text, name, uid).length === 0) missing.push(file);
  }
  if (missing.length > 0) {
    throw new BosonError(
      'ROOTLESS_SETUP_MISSING',
      `rootless mode builds root disks in a user namespace, which needs subordinate ids for user ${who} (uid ${uid}), and ${missing.join(' and ')} ${missing.length > 1 ? 'have' : 'has'} none: as root, add a line "${who}:100000:65536" to /etc/subuid and /etc/subgid (a range no other user has), e.g. usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${who}`,
      { details: { user: who, uid, missing } },
    );
  }
  if (!onPath('newuidmap') || !onPath('newgidmap')) {
    throw new BosonError(
      'ROOTLESS_SETUP_MISSING',
      'rootless mode needs newuidmap and newgidmap: install the uidmap package (apt-get install uidmap)',
      { details: { user: who, uid } },
    );
  }
  setupChecked = true;
}

/** The command that runs userns-child: the bundled script next to this chunk, or the source through tsx. */
function childCommand(): { argv: string[]; env: NodeJS.ProcessEnv } {
  const self = fileURLToPath(import.meta.url);
  if (self.endsWith('.ts')) {
    const loader = pathToFileURL(path.join(PACKAGE_ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
    // tsx's cache directory would be /tmp/tsx-0 in the namespace, which may belong to the real root.
    return {
      argv: [process.execPath, '--no-warnings=ExperimentalWarning', '--import', loader, path.join(path.dirname(self), 'userns-child.ts')],
      env: { ...process.env, TSX_DISABLE_CACHE: '1' },
    };
  }
  return { argv: [process.execPath, path.join(path.dirname(self), 'userns-child.mjs')], env: process.env };
}

/** Runs `argv` in a user namespace with the user's subordinate ids; TOOL_FAILED with its stderr if it fails. */
export async function runInUserNamespace(argv: string[]): Promise<void> {
  await checkUserNamespaceSetup();
  await new Promise<void>((resolve, reject) => {
    const p = spawn('unshare', [...UNSHARE, '--', ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) =>
      code === 0
        ? resolve()
        : reject(
            new BosonError('TOOL_FAILED', `unshare ${argv[0]} failed (exit ${code}): ${err.trim().slice(-2000)}`, {
              details: { tool: 'unshare' },
            }),
          ),
    );
  });
}

/** Removes `p` (a tree with files of subordinate ids) from inside a user namespace. */
export async function removeInUserNamespace(p: string): Promise<void> {
  await runInUserNamespace(['rm', '-rf', '--', p]);
}

/** Removes staging trees in `dir` whose process is gone (named stage-<pid>-<hex>). */
async function sweepStages(dir: string): Promise<void> {
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) {
    const m = /^stage-(\d+)-[0-9a-f]+$/.exec(name);
    if (m && !pidAlive(Number(m[1]))) await removeInUserNamespace(path.join(dir, name)).catch(() => undefined);
  }
}

function frame(type: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head[0] = type;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

function errorFromChild(m: Extract<ChildMessage, { t: 'error' }>): BosonError {
  const code = (m.code in ERROR_CATALOGUE ? m.code : 'INTERNAL') as ErrorCode;
  // The errno is kept as the cause's code, so callers can still tell a full filesystem (ENOSPC) apart.
  const cause = m.errno ? Object.assign(new Error(m.errno), { code: m.errno }) : undefined;
  return new BosonError(code, m.message, { details: m.details, cause });
}

/**
 * Builds the root disk `final` from `layers` in a user namespace (see the module comment). The staging tree goes in
 * a `userns/` directory of the staging parent (the private tmpfs when it has room, see staging.ts, else the store's
 * tmp directory; the general sweeps leave `userns/` alone), the disk file in `tmpDir` and is then renamed.
 */
export async function flattenToDiskInUserNamespace(
  layers: LayerInput[],
  fstype: RootFsType,
  final: string,
  tmpDir: string,
  estimate: number,
  stagingDir: string | undefined,
  onProgress?: ImageProgress,
): Promise<RootDisk> {
  await checkUserNamespaceSetup();
  const tag = `${process.pid}-${randomBytes(6).toString('hex')}`;
  const out = path.join(tmpDir, `disk-${tag}.${fstype}`);
  await privateDir(tmpDir);
  let parent = await stagingParent(estimate, stagingDir);
  try {
    for (;;) {
      const stages = path.join(parent ?? tmpDir, 'userns');
      await privateDir(stages);
      await sweepStages(stages);
      // 0700: the child flattens into <stage>/rootfs, which gets the image's "./" metadata (see store.ts).
      const stage = path.join(stages, `stage-${tag}`);
      await fs.mkdir(stage, { mode: 0o700 });
      try {
        const size = await runChild({ stage, out, fstype, layers: layers.map((l) => l.name) }, layers, onProgress);
        await fs.rename(out, final);
        onProgress?.({ phase: 'done', detail: final });
        return { path: final, fstype, sizeBytes: size };
      } catch (err) {
        if (parent !== null && isNoSpace(err)) {
          parent = null; // the tmpfs is full: again, in the store's tmp directory
          continue;
        }
        throw err;
      } finally {
        if (existsSync(stage)) await removeInUserNamespace(stage).catch(() => undefined);
      }
    }
  } finally {
    await fs.rm(out, { force: true });
  }
}

function runChild(spec: ChildSpec, layers: LayerInput[], onProgress?: ImageProgress): Promise<number> {
  const { argv, env } = childCommand();
  // Detached: a signal to the daemon's process group does not kill the build halfway; it ends (and cleans up)
  // when its stdin closes.
  const child = spawn('unshare', [...UNSHARE, '--', ...argv, JSON.stringify(spec)], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env,
    detached: true,
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  child.stdin.on('error', () => undefined);
  let layerError: unknown;
  let result: ChildMessage | undefined;

  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const write = async (b: Buffer): Promise<void> => {
    if (child.stdin.destroyed || child.exitCode !== null) return;
    if (!child.stdin.write(b)) await Promise.race([once(child.stdin, 'drain').catch(() => undefined), exited]);
  };

  const sendLayer = async (i: number): Promise<void> => {
    const layer = layers[i];
    try {
      if (!layer) throw new BosonError('INTERNAL', `the root disk builder asked for layer ${i} of ${layers.length}`);
      for await (const chunk of layer.open()) {
        if (child.exitCode !== null || child.stdin.destroyed) return; // the build ended: stop reading the layer
        const buf = chunk as Buffer;
        // Frames of at most 1 MiB, so a huge chunk does not become one huge allocation.
        for (let off = 0; off < buf.length; off += 1 << 20) await write(frame(FRAME.DATA, buf.subarray(off, off + (1 << 20))));
      }
      await write(frame(FRAME.END));
    } catch (err) {
      layerError ??= err;
      await write(frame(FRAME.ABORT, Buffer.from((err as Error).message ?? String(err))));
    }
  };

  let lineBuf = '';
  child.stdout.on('data', (d: Buffer) => {
    lineBuf += d.toString();
    let nl: number;
    while ((nl = lineBuf.indexOf('\n')) >= 0) {
      const line = lineBuf.slice(0, nl);
      lineBuf = lineBuf.slice(nl + 1);
      let m: ChildMessage;
      try {
        m = JSON.parse(line) as ChildMessage;
      } catch {
        continue;
      }
      if (m.t === 'open') void sendLayer(m.i);
      else if (m.t === 'progress') onProgress?.(m.e);
      else result = m;
    }
  });

  return new Promise<number>((resolve, reject) => {
    child.on('error', (err) =>
      reject(
        new BosonError('TOOL_FAILED', `cannot start unshare for the root disk build: ${err.message}`, {
          cause: err,
          details: { tool: 'unshare' },
        }),
      ),
    );
    child.on('close', (code, signal) => {
      if (layerError !== undefined) return reject(layerError);
      if (result?.t === 'done') return resolve(result.size);
      if (result?.t === 'error') return reject(errorFromChild(result));
      reject(
        new BosonError(
          'TOOL_FAILED',
          `the root disk build in a user namespace ended (${signal ?? `exit ${code}`}) without a result: ${stderr.trim().slice(-2000)}`,
          { details: { tool: 'unshare' } },
        ),
      );
    });
  }).finally(() => child.stdin.destroy());
}
