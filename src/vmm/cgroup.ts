/**
 * A cgroup per micro-VM, with the limits its container's resources imply: memory (guest RAM plus the VMM's own
 * allowance), pids, and CPU time (a CFS quota). cgroup v2 (one unified hierarchy, modern hosts) and v1 (one
 * hierarchy per controller, the hybrid layout some hosts still have) are both handled; where neither can be used
 * (no controllers, not root) the VM runs without one and `describeCgroups` says so.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

const ROOT = '/sys/fs/cgroup';

/** The limits of one VM's cgroup. */
export interface CgroupLimits {
  memoryBytes: number;
  pids: number;
  /** CPU time per period, in CPUs (1.5 = one and a half cores). */
  cpus: number;
}

/** Which cgroup layout this host has, as far as Boson can use it. */
export type CgroupMode =
  { version: 2; dir: string } | { version: 1; dirs: Record<'memory' | 'pids' | 'cpu', string> } | { version: 0; why: string };

/** The host's cgroup layout for VMs under group `parent` (e.g. "boson"). */
export function cgroupMode(parent: string, root = ROOT): CgroupMode {
  if ((process.geteuid?.() ?? 0) !== 0) return { version: 0, why: 'not root (rootless cgroups need a delegated subtree)' };
  if (existsSync(path.join(root, 'cgroup.controllers'))) return { version: 2, dir: path.join(root, parent) };
  const v1 = { memory: path.join(root, 'memory', parent), pids: path.join(root, 'pids', parent), cpu: path.join(root, 'cpu', parent) };
  if (Object.values(v1).every((d) => existsSync(path.dirname(d)))) return { version: 1, dirs: v1 };
  return { version: 0, why: 'no usable cgroup hierarchy (neither v2 nor v1 memory, pids and cpu controllers)' };
}

/** One line for `boson info`. */
export function describeCgroups(mode: CgroupMode): string {
  if (mode.version === 2) return `cgroup v2 (${mode.dir}/<vm>: memory.max, pids.max, cpu.max)`;
  if (mode.version === 1) return 'cgroup v1 (memory, pids and cpu controllers: <controller>/boson/<vm>)';
  return `none: ${mode.why}`;
}

const PERIOD_US = 100_000;

/** A VM's cgroup directories (one per controller on v1). */
export interface VmCgroup {
  dirs: string[];
}

/**
 * Makes the cgroup `name` under the layout's parent with `limits` and moves `pid` into it. Returns the directories
 * made (for removal once the VM is gone), or null where the host has no usable cgroups.
 */
export async function confine(mode: CgroupMode, name: string, pid: number, limits: CgroupLimits): Promise<VmCgroup | null> {
  const quota = String(Math.max(1000, Math.round(limits.cpus * PERIOD_US)));
  if (mode.version === 2) {
    await mkdir(mode.dir, { recursive: true });
    // The parent hands the controllers down (the root of a v2 hierarchy lists which ones exist).
    const available = (await readFile(path.join(path.dirname(mode.dir), 'cgroup.controllers'), 'utf8').catch(() => '')).split(/\s+/);
    const wanted = ['memory', 'pids', 'cpu'].filter((c) => available.includes(c));
    await writeFile(path.join(path.dirname(mode.dir), 'cgroup.subtree_control'), wanted.map((c) => `+${c}`).join(' ')).catch(
      () => undefined,
    );
    await writeFile(path.join(mode.dir, 'cgroup.subtree_control'), wanted.map((c) => `+${c}`).join(' ')).catch(() => undefined);
    const dir = path.join(mode.dir, name);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'memory.max'), String(limits.memoryBytes));
    await writeFile(path.join(dir, 'pids.max'), String(limits.pids));
    await writeFile(path.join(dir, 'cpu.max'), `${quota} ${PERIOD_US}`);
    await join(dir, pid);
    return { dirs: [dir] };
  }
  if (mode.version === 1) {
    const dirs = { memory: path.join(mode.dirs.memory, name), pids: path.join(mode.dirs.pids, name), cpu: path.join(mode.dirs.cpu, name) };
    for (const d of Object.values(dirs)) await mkdir(d, { recursive: true });
    await writeFile(path.join(dirs.memory, 'memory.limit_in_bytes'), String(limits.memoryBytes));
    await writeFile(path.join(dirs.pids, 'pids.max'), String(limits.pids));
    await writeFile(path.join(dirs.cpu, 'cpu.cfs_period_us'), String(PERIOD_US));
    await writeFile(path.join(dirs.cpu, 'cpu.cfs_quota_us'), quota);
    for (const d of Object.values(dirs)) await join(d, pid);
    return { dirs: Object.values(dirs) };
  }
  return null;
}

/**
 * Moves a process into one cgroup directory. A process that has already exited (ESRCH: a QEMU that refused its
 * arguments can end within milliseconds) is not an error here: whoever waits for it reports how it ended, and the
 * directories are released with the VM.
 */
async function join(dir: string, pid: number): Promise<void> {
  try {
    await writeFile(path.join(dir, 'cgroup.procs'), String(pid));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/**
 * Removes the cgroup `name` of a VM under the layout's parent where it exists and is empty (a VM whose process
 * ended while no one who knew its cgroup was there: a killed daemon or `boson run`). A group that still holds a
 * process is left alone; true if nothing of it is left.
 */
export async function releaseIfEmpty(mode: CgroupMode, name: string): Promise<boolean> {
  const dirs =
    mode.version === 2 ? [path.join(mode.dir, name)] : mode.version === 1 ? Object.values(mode.dirs).map((d) => path.join(d, name)) : [];
  let left = false;
  for (const d of dirs) {
    const procs = await readFile(path.join(d, 'cgroup.procs'), 'utf8').catch(() => null);
    if (procs === null) continue;
    if (procs.trim() !== '') {
      left = true;
      continue;
    }
    await release({ dirs: [d] }).catch(() => undefined);
    if (existsSync(d)) left = true;
  }
  return !left;
}

/** Removes a VM's cgroup directories (they must be empty: call once its processes are gone). */
export async function release(cgroup: VmCgroup): Promise<void> {
  for (const d of cgroup.dirs) {
    // A process that has just exited can hold the group for a moment.
    for (let i = 0; i < 20; i++) {
      try {
        await rmdir(d);
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        if (code !== 'EBUSY') throw err;
        await new Promise((r) => setTimeout(r, 25));
      }
    }
  }
}
