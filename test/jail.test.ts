/**
 * A jailed VMM (issue 12): each QEMU of a daemon's container runs as the unprivileged boson-vmm user from its first
 * instruction (no_new_privs; its seccomp sandbox also denies set*id), chrooted into its own runtime directory, in a mount namespace of its own and in a cgroup whose
 * limits follow the container's resources; the cgroup goes with the container. Without a daemon the QEMU keeps root
 * (the parent-death signal must survive) but keeps the rest.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { qemuPidsUsing, runBoson, startUntil, useDaemonHost, waitFor } from './helpers.ts';

const { host } = useDaemonHost();
const boson = (...args: string[]): ReturnType<typeof runBoson> => runBoson(host(), args, { timeoutMs: 90_000 });

/** Uid and Seccomp of a process, from its /proc status. */
async function status(pid: number): Promise<{ uid: number; seccomp: number }> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8');
  return { uid: Number(/^Uid:\s+(\d+)/m.exec(text)![1]), seccomp: Number(/^Seccomp:\s+(\d+)/m.exec(text)![1]) };
}

/** The process's cgroup path for a v1 controller (or the v2 one). */
async function cgroupOf(pid: number, controller: string): Promise<string> {
  const lines = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).trim().split('\n');
  const v1 = lines.find((l) => l.split(':')[1]!.split(',').includes(controller));
  return (v1 ?? lines.find((l) => l.startsWith('0::'))!).split(':')[2]!;
}

test("a daemon's QEMU: unprivileged user, seccomp, chroot, own mount namespace, a cgroup sized from the container", async () => {
  const r = await boson('run', '-d', '--name', 'jailed', '-m', '320m', '--cpus', '1', 'busybox', 'sleep', '600');
  assert.equal(r.code, 0, r.stderr);
  const id = r.stdout.toString().trim();
  try {
    const [pid] = await qemuPidsUsing(host().stateDir);
    assert.ok(pid, 'the container has a QEMU');
    const s = await status(pid);
    const vmmUid = Number(/^boson-vmm:x:(\d+):/m.exec(await readFile('/etc/passwd', 'utf8'))?.[1]);
    assert.equal(s.uid, vmmUid, 'QEMU runs as boson-vmm');
    assert.notEqual(s.uid, 0);
    assert.equal(s.seccomp, 2, 'QEMU runs under a seccomp filter');
    // Dropped to boson-vmm before QEMU ran (src/vmm/prejail.ts), so its filter denies set*id calls too.
    const statusText = await readFile(`/proc/${pid}/status`, 'utf8');
    assert.match(statusText, /^NoNewPrivs:\s+1$/m, 'no_new_privs');
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    assert.ok(
      argv.some((a) => /^on,.*elevateprivileges=deny/.test(a)),
      `-sandbox denies set*id: ${argv.join(' ')}`,
    );
    assert.ok(!argv.includes('-runas'), 'no -runas left for QEMU to do');
    assert.equal(
      await readlink(`/proc/${pid}/root`),
      path.join(host().stateDir, 'run', 'vms', id.slice(0, 16)),
      'chrooted into its runtime directory',
    );
    assert.notEqual(await readlink(`/proc/${pid}/ns/mnt`), await readlink('/proc/self/ns/mnt'), 'in a mount namespace of its own');
    const group = await cgroupOf(pid, 'memory');
    assert.equal(group, `/boson/${id.slice(0, 16)}`);
    const v2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
    const limit = Number(
      await readFile(v2 ? `/sys/fs/cgroup${group}/memory.max` : `/sys/fs/cgroup/memory${group}/memory.limit_in_bytes`, 'utf8'),
    );
    assert.equal(limit, (320 + 192) * 1024 * 1024, 'memory: guest RAM plus the VMM allowance');
    const pids = (await readFile(v2 ? `/sys/fs/cgroup${group}/pids.max` : `/sys/fs/cgroup/pids${group}/pids.max`, 'utf8')).trim();
    assert.equal(pids, '256');
    // The container works as ever.
    const e = await boson('exec', 'jailed', 'uname', '-r');
    assert.match(e.stdout.toString(), /boson/);
    assert.equal((await boson('rm', '-f', 'jailed')).code, 0);
    await waitFor(() => !existsSync(v2 ? `/sys/fs/cgroup${group}` : `/sys/fs/cgroup/memory${group}`), 10_000, 'its cgroup to be removed');
  } finally {
    await boson('rm', '-f', 'jailed');
  }
});

test('without a daemon QEMU keeps root (so that it dies with boson run) but has seccomp, chroot and its cgroup', async () => {
  const env = { ...host().env, BOSON_RUN_DIR: path.join(host().stateDir, 'run-embedded') };
  const fg = await startUntil({ ...host(), env }, ['run', '--rm', 'busybox', 'sh', '-c', 'echo ready; sleep 600'], 'ready', 60_000);
  try {
    const pids = await qemuPidsUsing(host().stateDir);
    assert.equal(pids.length, 1);
    const s = await status(pids[0]!);
    assert.equal(s.uid, 0);
    assert.equal(s.seccomp, 2);
    assert.equal(await readlink(`/proc/${pids[0]}/root`), path.join(host().stateDir, 'run-embedded', 'empty'));
    assert.match(await cgroupOf(pids[0]!, 'pids'), /^\/boson\/[0-9a-f]{16}$/);
  } finally {
    fg.child.kill('SIGINT');
    fg.child.kill('SIGINT');
    await fg.result;
  }
});
