/**
 * Bind mounts on the host for pods (src/machine/pods.ts): a pod's shared directory is made a shared mount point
 * before its virtiofsd starts, so that binds made under it later (a container's volumes) propagate into virtiofsd's
 * mount namespace and reach the guest; and a directory is removed only once nothing is mounted under it, so that a
 * removal never reaches into a bound host directory.
 */
import { execFile } from 'node:child_process';
import { readFile, rm, stat, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { BosonError } from '../common/index.ts';

const run = promisify(execFile);

async function mountCmd(args: string[]): Promise<void> {
  try {
    await run('mount', args);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new BosonError('TOOL_FAILED', `mount ${args.join(' ')}: ${(e.stderr || e.message).trim()}`, { cause: err });
  }
}

/** Makes `dir` a mount point of its own with shared propagation (binds under it reach namespaces copied from it). */
export async function makeSharedMount(dir: string): Promise<void> {
  await mountCmd(['--bind', dir, dir]);
  await mountCmd(['--make-rshared', dir]);
}

/**
 * Binds the host file or directory `source` (absolute, existing) at `target` (made as a file or directory like it),
 * read-only when asked. INVALID_ARGUMENT when `source` is missing.
 */
export async function bindInto(source: string, target: string, readOnly: boolean): Promise<void> {
  if (!path.isAbsolute(source)) throw new BosonError('INVALID_ARGUMENT', `host path ${JSON.stringify(source)} is not absolute`);
  const st = await stat(source).catch(() => {
    throw new BosonError('INVALID_ARGUMENT', `host path ${source} does not exist`);
  });
  if (st.isDirectory()) await mkdir(target, { recursive: true });
  else {
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, '', { flag: 'a' });
  }
  await mountCmd(['--rbind', source, target]);
  if (readOnly) await mountCmd(['-o', 'remount,bind,ro', target]);
}

/** Mount points at or under `dir` on this host, deepest first. */
async function mountsUnder(dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return info
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((m): m is string => m !== undefined)
    .map(unescape)
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** Unmounts everything at or under `dir` (lazily); INTERNAL when something stays mounted. */
export async function unmountUnder(dir: string): Promise<void> {
  for (let round = 0; round < 4; round++) {
    const mounts = await mountsUnder(dir);
    if (mounts.length === 0) return;
    for (const m of mounts) await run('umount', ['-l', m]).catch(() => undefined);
  }
  const left = await mountsUnder(dir);
  if (left.length > 0) throw new BosonError('INTERNAL', `cannot unmount ${left.join(', ')}: ${dir} is not removed`);
}

/** Removes `dir` once nothing is mounted under it (never following a bind into the host's files). */
export async function removeUnmounted(dir: string): Promise<void> {
  await unmountUnder(dir);
  await rm(dir, { recursive: true, force: true });
}
