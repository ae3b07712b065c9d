import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { killOrphanedVms } from './orphans.ts';
import { ORIGIN_FILE } from '../vmm/index.ts';

/** A process that looks like a QEMU to /proc/<pid>/cmdline (argv[0] and the arguments), but is an idle node. */
function fake(argv0: string, args: string[]): ChildProcess {
  return spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e6)', '--', ...args], { argv0, stdio: 'ignore' });
}

const alive = (child: ChildProcess): boolean => child.exitCode === null && child.signalCode === null;

test('killOrphanedVms kills the QEMUs of unknown VM directories of its run dir, and nothing else', async (t) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'boson-orphans-'));
  const runDir = path.join(root, 'run');
  const known = 'a'.repeat(64);
  const procs = {
    orphan: fake('/usr/bin/qemu-system-x86_64', [
      '-chardev',
      `socket,id=ctl,path=${runDir}/vms/0123456789abcdef/ctl.sock,server=on`,
      '-serial',
      `file:${runDir}/vms/0123456789abcdef/console.log`,
    ]),
    knownVm: fake('qemu-system-x86_64', ['-chardev', `socket,id=ctl,path=${runDir}/vms/${known.slice(0, 16)}/ctl.sock`]),
    otherRunDir: fake('qemu-system-x86_64', ['-chardev', `socket,path=${root}/run2/vms/0123456789abcdef/ctl.sock`]),
    nestedPath: fake('qemu-system-x86_64', ['-chardev', `socket,path=/elsewhere${runDir}/vms/0123456789abcdef/ctl.sock`]),
    notQemu: fake('tail', ['-f', `${runDir}/vms/0123456789abcdef/console.log`]),
  };
  t.after(async () => {
    for (const p of Object.values(procs)) p.kill('SIGKILL');
    await rm(root, { recursive: true, force: true });
  });
  await Promise.all(Object.values(procs).map((p) => new Promise((r) => p.once('spawn', r))));
  const orphanGone = new Promise((r) => procs.orphan.once('exit', (_code, signal) => r(signal)));
  const killed = await killOrphanedVms(runDir, new Set([known]));
  assert.deepEqual(killed, [{ pid: procs.orphan.pid, dir: '0123456789abcdef' }]);
  assert.equal(await orphanGone, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 100));
  for (const [name, p] of Object.entries(procs)) if (name !== 'orphan') assert.ok(alive(p), `${name} is left running`);
  assert.deepEqual(await killOrphanedVms(runDir, [known]), [], 'a second pass finds nothing');
});

test('killOrphanedVms kills the passt of an unknown VM directory (argv[0] names it), not a known one or a foreign passt', async (t) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'boson-orphans-'));
  const runDir = path.join(root, 'run');
  const known = 'c'.repeat(64);
  const procs = {
    orphan: fake(`${runDir}/vms/0123456789abcdef/passt`, ['--foreground', '--no-map-gw', '--fd', '3']),
    knownVm: fake(`${runDir}/vms/${known.slice(0, 16)}/passt`, ['--foreground', '--fd', '3']),
    foreign: fake('/usr/bin/passt', ['--socket', `${runDir}/vms/0123456789abcdef/x.sock`]),
  };
  t.after(async () => {
    for (const p of Object.values(procs)) p.kill('SIGKILL');
    await rm(root, { recursive: true, force: true });
  });
  await Promise.all(Object.values(procs).map((p) => new Promise((r) => p.once('spawn', r))));
  const orphanGone = new Promise((r) => procs.orphan.once('exit', (_code, signal) => r(signal)));
  assert.deepEqual(await killOrphanedVms(runDir, [known]), [{ pid: procs.orphan.pid, dir: '0123456789abcdef' }]);
  assert.equal(await orphanGone, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(alive(procs.knownVm) && alive(procs.foreign));
});

test('killOrphanedVms keeps a relocated VM of a known container (its command line names the directory it started in)', async (t) => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'boson-orphans-'));
  const runDir = path.join(root, 'run');
  const known = 'b'.repeat(64);
  // A warm VM moved into a running container's directory, which records where it started; and one that was not.
  await mkdir(path.join(runDir, 'vms', known.slice(0, 16)), { recursive: true });
  await writeFile(path.join(runDir, 'vms', known.slice(0, 16), ORIGIN_FILE), path.join(runDir, 'vms', 'w-0123456789ab'));
  const procs = {
    relocated: fake('qemu-system-x86_64', ['-chardev', `socket,id=ctl,path=${runDir}/vms/w-0123456789ab/ctl.sock`]),
    strayWarm: fake('qemu-system-x86_64', ['-chardev', `socket,id=ctl,path=${runDir}/vms/w-ba9876543210/ctl.sock`]),
  };
  t.after(async () => {
    for (const p of Object.values(procs)) p.kill('SIGKILL');
    await rm(root, { recursive: true, force: true });
  });
  await Promise.all(Object.values(procs).map((p) => new Promise((r) => p.once('spawn', r))));
  const killed = await killOrphanedVms(runDir, [known]);
  assert.deepEqual(killed, [{ pid: procs.strayWarm.pid, dir: 'w-ba9876543210' }]);
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(alive(procs.relocated), 'the relocated VM is left running');
});
