/**
 * A throwaway system user for suites that run Boson as an unprivileged user (root only): a home in a fresh
 * directory under /var/tmp, and a range of 65536 subordinate uids and gids of its own in /etc/subuid and
 * /etc/subgid (edited under shadow-utils' lock files). cleanup() kills what the user still runs (by pid), removes
 * the user, its subordinate id lines, its directories and its per-uid directories in /dev/shm and /tmp.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The user and where it lives. */
export interface ThrowawayUser {
  user: string;
  uid: number;
  gid: number;
  /** A 0755 directory holding the home (and whatever the suite puts next to it); removed by cleanup. */
  base: string;
  home: string;
  /** PIDs of every process running as the user. */
  pids(): Promise<number[]>;
  cleanup(): Promise<void>;
}

/**
 * Runs `fn` holding /etc/subuid.lock and /etc/subgid.lock, the lock files shadow-utils' own tools take (a file
 * holding the owner's pid, made exclusively): suites that make users at once, and usermod, then never lose each
 * other's lines. A lock whose process is gone is taken over.
 */
async function withSubIdLock<T>(fn: () => Promise<T>): Promise<T> {
  const locks = ['/etc/subuid.lock', '/etc/subgid.lock'];
  const held: string[] = [];
  const deadline = Date.now() + 30_000;
  try {
    for (const lock of locks) {
      for (;;) {
        try {
          await fs.writeFile(lock, String(process.pid), { flag: 'wx' });
          held.push(lock);
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
          const owner = Number((await fs.readFile(lock, 'utf8').catch(() => '')).trim());
          if (Number.isInteger(owner) && owner > 0 && !alive(owner)) await fs.rm(lock, { force: true });
          else if (Date.now() > deadline) throw new Error(`${lock} is held by pid ${owner}`);
          else await new Promise((r) => setTimeout(r, 50));
        }
      }
    }
    return await fn();
  } finally {
    for (const lock of held.reverse()) await fs.rm(lock, { force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes the lines of `user` from /etc/subuid or /etc/subgid (replaced whole, by rename); call under the lock. */
async function dropSubIds(file: string, user: string): Promise<void> {
  const text = await fs.readFile(file, 'utf8').catch(() => null);
  if (text === null) return;
  const kept = text
    .split('\n')
    .filter((l) => !l.startsWith(`${user}:`))
    .join('\n');
  if (kept === text) return;
  await fs.writeFile(`${file}+`, kept, { mode: 0o644 });
  await fs.rename(`${file}+`, file);
}

/** Creates the user `<prefix>-<pid>` (see the module comment); on failure, what was made is removed. */
export async function createThrowawayUser(prefix: string): Promise<ThrowawayUser> {
  const user = `${prefix}-${process.pid}`;
  let uid = -1;
  let created = false;
  const base = await fs.mkdtemp(`/var/tmp/${prefix}-`);
  await fs.chmod(base, 0o755);
  const home = path.join(base, 'home');
  const pids = async (): Promise<number[]> => {
    const out: number[] = [];
    if (uid < 0) return out;
    for (const name of await fs.readdir('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      const status = await fs.readFile(`/proc/${name}/status`, 'utf8').catch(() => '');
      const m = /^Uid:\s+(\d+)/m.exec(status);
      if (m && Number(m[1]) === uid) out.push(Number(name));
    }
    return out;
  };
  const cleanup = async (): Promise<void> => {
    // Twice, for children started late.
    for (let round = 0; round < 2 && uid >= 0; round++) {
      for (const pid of await pids()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    if (created) await run('userdel', [user]).catch(() => undefined);
    await withSubIdLock(async () => {
      await dropSubIds('/etc/subuid', user);
      await dropSubIds('/etc/subgid', user);
    });
    await fs.rm(base, { recursive: true, force: true });
    if (uid >= 0) {
      for (const p of [`/dev/shm/boson-${uid}`, `/tmp/boson-${uid}`, `/tmp/tsx-${uid}`]) await fs.rm(p, { recursive: true, force: true });
    }
  };
  try {
    await run('useradd', ['--system', '--user-group', '--create-home', '--home-dir', home, '--shell', '/usr/sbin/nologin', user]);
    created = true;
    uid = Number((await run('id', ['-u', user])).stdout.trim());
    const gid = Number((await run('id', ['-g', user])).stdout.trim());
    // System users get no subordinate ids from useradd: a range of our own, picked by pid, or above every range
    // there is when that one is taken; chosen and written under the lock, so two suites never pick the same.
    await withSubIdLock(async () => {
      let start = 2_000_000_000 + (process.pid % 4096) * 65536;
      let end = 0;
      let taken = false;
      for (const file of ['/etc/subuid', '/etc/subgid']) {
        for (const line of (await fs.readFile(file, 'utf8').catch(() => '')).split('\n')) {
          const [, s, c] = line.split(':');
          if (s === undefined || c === undefined) continue;
          end = Math.max(end, Number(s) + Number(c));
          if (Number(s) < start + 65536 && start < Number(s) + Number(c)) taken = true;
        }
      }
      if (taken) start = Math.max(end, start);
      for (const file of ['/etc/subuid', '/etc/subgid']) await fs.appendFile(file, `${user}:${start}:65536\n`);
    });
    return { user, uid, gid, base, home, pids, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
