/**
 * A throwaway system user for suites that run Boson as an unprivileged user (root only): a home in a fresh
 * directory under /var/tmp, and a range of 65536 subordinate uids and gids of its own in /etc/subuid and
 * /etc/subgid, above every range there is. cleanup() kills what the user still runs (by pid), removes the user, its
 * subordinate id lines, its directories and its per-uid directories in /dev/shm and /tmp.
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

/** Removes the lines of `user` from /etc/subuid or /etc/subgid. */
async function dropSubIds(file: string, user: string): Promise<void> {
  const text = await fs.readFile(file, 'utf8').catch(() => null);
  if (text === null) return;
  const kept = text
    .split('\n')
    .filter((l) => !l.startsWith(`${user}:`))
    .join('\n');
  if (kept !== text) await fs.writeFile(file, kept);
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
    await dropSubIds('/etc/subuid', user);
    await dropSubIds('/etc/subgid', user);
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
    // System users get no subordinate ids from useradd: a range of our own, picked by pid (so that two suites
    // creating users at once do not pick the same), or above every range there is when that one is taken.
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
    return { user, uid, gid, base, home, pids, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
