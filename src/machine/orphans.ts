/**
 * Orphaned micro-VMs: QEMU processes started by a daemon of this run directory (their command line names a disk,
 * socket or log under `<runDir>/vms/<dir>`) that no container record of the daemon accounts for any more: the
 * record was removed, or says the container is not running, while its QEMU still runs (a daemon killed between
 * two steps, a `rm` whose kill failed). Nothing would ever stop them, and they hold memory, a tap and a volume's
 * disk. The daemon kills them at start, once it has re-attached to the VMs it knows.
 *
 * Only processes whose argv[0] is a `qemu-system-*` binary, or the passt of a rootless VM (argv[0] names its
 * directory: passtArgv0), are considered, so that a user's `tail -f` of a console log in the same directory is never
 * touched. A passt quits by itself once its QEMU is gone; killing it here too is the net under that. The check reads /proc/<pid>/cmdline and then signals the
 * pid; a pid reused in between by another QEMU of the same directory is the only (harmless) race left.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { isPasstCommand, ORIGIN_FILE } from '../vmm/index.ts';

/** A QEMU (or passt) process that was killed, and the VM directory it used. */
export interface KilledOrphan {
  pid: number;
  /** The `<dir>` of `<runDir>/vms/<dir>` (16 hex digits of the container id, as the daemon names it). */
  dir: string;
}

/** Characters that may stand before a path in an argument (`path=…`, `file:…`, `,…`), i.e. not inside a longer path. */
const BOUNDARY = /[=,:\s]/;

/** The VM directory names under `vmsDir` that one command line mentions. */
function vmDirsIn(argv: string[], vmsDir: string): string[] {
  const dirs = new Set<string>();
  const prefix = `${vmsDir}/`;
  for (const arg of argv) {
    let from = 0;
    for (;;) {
      const at = arg.indexOf(prefix, from);
      if (at < 0) break;
      from = at + prefix.length;
      if (at > 0 && !BOUNDARY.test(arg[at - 1]!)) continue; // e.g. /x/run/boson/vms/… for a run dir /run/boson
      const dir = /^[^/,\s]+/.exec(arg.slice(from))?.[0];
      if (dir) dirs.add(dir);
    }
  }
  return [...dirs];
}

/**
 * Kills (SIGKILL) every QEMU process of `runDir`'s VM directories whose directory name is not in `knownDirs`
 * (the daemon's running containers, each as `id.slice(0, 16)`; a full id or any prefix of one naming the same
 * directory works too). Returns what it killed; never this process.
 */
export async function killOrphanedVms(runDir: string, knownDirs: Iterable<string>): Promise<KilledOrphan[]> {
  const vmsDir = path.join(path.resolve(runDir), 'vms');
  const known = [...knownDirs].filter((k) => k.length > 0);
  const isKnown = (dir: string): boolean => known.some((k) => k.startsWith(dir) || dir.startsWith(k));
  // A VM booted ahead of its container (the warm pool) was moved into the container's directory; its command line
  // still names the one it started in, which the moved directory records (ORIGIN_FILE).
  for (const dir of await readdir(vmsDir).catch(() => [] as string[])) {
    if (!isKnown(dir)) continue;
    const origin = (await readFile(path.join(vmsDir, dir, ORIGIN_FILE), 'utf8').catch(() => '')).trim();
    if (origin !== '') known.push(path.basename(origin));
  }
  const killed: KilledOrphan[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    let argv: string[];
    try {
      argv = (await readFile(`/proc/${name}/cmdline`, 'utf8')).split('\0');
    } catch {
      continue; // exited meanwhile, or not ours to read
    }
    if (!path.basename(argv[0] ?? '').startsWith('qemu-system') && !isPasstCommand(argv)) continue;
    const dirs = vmDirsIn(argv, vmsDir);
    if (dirs.length === 0 || dirs.some(isKnown)) continue;
    try {
      process.kill(pid, 'SIGKILL');
      killed.push({ pid, dir: dirs[0]! });
    } catch {
      // gone meanwhile
    }
  }
  return killed;
}
