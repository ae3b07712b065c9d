/**
 * The runtime's lifecycle on a real state directory (SQLite, the image store with the demo image imported) and a
 * fake VMM (src/machine/fake-vmm.ts: in-process guests that speak boson-init's protocol), so that every rule is
 * checked in milliseconds: bad input changes nothing; names are claimed once; the API view hides the bookkeeping;
 * runs, stops, kills, restart policies, boot hangs, crashes, execs and concurrent operations; a killed embedded
 * host's containers are settled by the next runtime. The real-VM suites in test/ run the same paths on QEMU.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { access, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT, isBosonError } from '../common/index.ts';
import { ImageStore } from '../image/index.ts';
import { openStateStore } from './store/sqlite.ts';
import type { MachineRuntime } from './runtime.ts';
import { localContext, type ContainerSpec, type StreamSink } from './port/index.ts';
import { FakeVmm } from './fake-vmm.ts';
import { fakeRuntime } from './fake-runtime.ts';

const LAYOUT = path.join(PACKAGE_ROOT, 'build', 'images', 'busybox-oci');
const ctx = localContext('test');
let stateDir: string;

/** A runtime over this suite's state directory and a fake VMM; `detached` as a daemon hosts it. */
function runtimeOn(vmm: FakeVmm, detached: boolean, bootTimeoutMs?: number): MachineRuntime {
  return fakeRuntime({ stateDir, vmm, detached, bootTimeoutMs });
}

function embedded(): MachineRuntime {
  return runtimeOn(new FakeVmm(), false);
}

/** A sink that collects what it is given. */
function collector(): StreamSink & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return { stdout: (d) => void (out += d.toString()), stderr: (d) => void (err += d.toString()), out: () => out, err: () => err };
}

async function until(what: string, predicate: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const spec = (extra: Partial<ContainerSpec> = {}): ContainerSpec => ({ image: 'busybox', process: { args: ['true'] }, ...extra });

before(async () => {
  await access(path.join(LAYOUT, 'index.json'));
  stateDir = await mkdtemp(path.join(os.tmpdir(), 'boson-runtime-'));
  const store = openStateStore(stateDir);
  await new ImageStore(store, stateDir).importPath(LAYOUT);
  store.close();
});
after(async () => {
  await rm(stateDir, { recursive: true, force: true });
});

test('bad input is refused with a typed error and leaves no record, directory or volume behind', async () => {
  const rt = embedded();
  await rt.init();
  try {
    const refused: Array<[ContainerSpec, string]> = [
      [spec({ mounts: [{ type: 'volume', name: '', destination: 'relative', readOnly: false }] }), 'INVALID_ARGUMENT'],
      [spec({ mounts: [{ type: 'volume', name: 'data', destination: '/data', readOnly: false }] }), 'INVALID_ARGUMENT'],
      [spec({ mounts: [{ type: 'volume', name: 'bad name', destination: '/data', readOnly: false }] }), 'INVALID_ARGUMENT'],
      [spec({ autoRemove: true, restartPolicy: { name: 'always', maximumRetryCount: 0 } }), 'INVALID_ARGUMENT'],
      [spec({ ports: [{ hostIp: '', hostPort: 8080, containerPort: 80, protocol: 'tcp' }] }), 'INVALID_ARGUMENT'],
      [spec({ name: '-dash' }), 'INVALID_ARGUMENT'],
      [spec({ process: { args: ['true'], cwd: 'rel' } }), 'INVALID_ARGUMENT'],
      [spec({ image: 'no-such-image' }), 'IMAGE_NOT_FOUND'],
    ];
    for (const [bad, code] of refused) {
      await assert.rejects(rt.create(ctx, bad), (e) => isBosonError(e) && e.code === code, JSON.stringify(bad));
    }
    assert.deepEqual(await rt.list(ctx, { all: true }), []);
    assert.deepEqual(await readdir(path.join(stateDir, 'containers')), []);
    assert.deepEqual(rt.volumes.list(), []);
  } finally {
    await rt.close();
  }
});

test('a name is claimed once; the API view hides the bookkeeping; remove takes the record and its files', async () => {
  const rt = embedded();
  await rt.init();
  try {
    const c = await rt.create(
      ctx,
      spec({ name: 'only', process: { entrypoint: ['sh', '-c'], args: ['exit 3'], env: ['A=1'], tty: true } }),
    );
    assert.equal(c.name, 'only');
    assert.equal(c.state, 'created');
    assert.deepEqual(c.config.argv, ['sh', '-c', 'exit 3']);
    assert.ok(c.config.env.includes('A=1'));
    assert.equal(c.config.tty, true);
    assert.equal(c.network, 'none', 'an embedded runtime has no networks');
    for (const hidden of ['managed', 'ownerPid', 'stoppedByUser']) assert.ok(!(hidden in c), `${hidden} is not part of the view`);
    await assert.rejects(rt.create(ctx, spec({ name: 'only' })), (e) => isBosonError(e, 'CONTAINER_NAME_IN_USE'));
    assert.equal((await rt.list(ctx, { all: true })).length, 1);
    assert.deepEqual(
      (await rt.list(ctx)).map((x) => x.id),
      [],
      'not running, so not listed without all',
    );
    assert.equal((await rt.inspect(ctx, c.id.slice(0, 8))).id, c.id, 'an id prefix finds it');
    await rt.rename(ctx, 'only', 'renamed');
    assert.equal((await rt.inspect(ctx, 'renamed')).id, c.id);
    await rt.remove(ctx, 'renamed');
    await assert.rejects(rt.inspect(ctx, c.id), (e) => isBosonError(e, 'CONTAINER_NOT_FOUND'));
    assert.deepEqual(await readdir(path.join(stateDir, 'containers')), []);
  } finally {
    await rt.close();
  }
});

test('the next runtime settles what a killed embedded host left: its container exited 137, an --rm one removed', async () => {
  const rt = embedded();
  await rt.init();
  const kept = await rt.create(ctx, spec({ name: 'kept' }));
  const gone = await rt.create(ctx, spec({ name: 'gone', autoRemove: true }));
  // As if a `boson run` (pid now dead) had started them and been killed with kill -9.
  const deadPid = spawnSync('true').pid!;
  for (const id of [kept.id, gone.id]) {
    const record = rt.registry.get(id);
    await rt.registry.save({ ...record, state: 'running', ownerPid: deadPid, startedAt: new Date().toISOString() });
  }
  await rt.close();

  const next = embedded();
  await next.init();
  try {
    const settled = await next.inspect(ctx, 'kept');
    assert.equal(settled.state, 'exited');
    assert.equal(settled.exitCode, 137);
    assert.match(settled.error ?? '', /killed/);
    await assert.rejects(next.inspect(ctx, 'gone'), (e) => isBosonError(e, 'CONTAINER_NOT_FOUND'));
    await next.remove(ctx, 'kept');
  } finally {
    await next.close();
  }
});

test('run: output from the first byte, the exit status, and --rm leaves nothing', async () => {
  const vmm = new FakeVmm();
  const rt = runtimeOn(vmm, false);
  await rt.init();
  try {
    const sink = collector();
    const session = await rt.run(ctx, spec({ autoRemove: true, process: { args: ['echo', 'hello', 'world'] } }), sink);
    assert.deepEqual(await session.exit, { statusCode: 0, error: null });
    assert.equal(sink.out(), 'hello world\n');
    assert.deepEqual(await rt.list(ctx, { all: true }), []);
    assert.equal(vmm.live, 0, 'the VM is gone');
    const kept = await rt.run(ctx, spec({ name: 'three', process: { args: ['exit', '3'] } }), collector());
    assert.equal((await kept.exit).statusCode, 3);
    const after = await rt.inspect(ctx, 'three');
    assert.equal(after.state, 'exited');
    assert.equal(after.exitCode, 3);
    await rt.remove(ctx, 'three');
  } finally {
    await rt.close();
  }
});

test('a command that cannot start: the typed error, exit 127 recorded, and an --rm one removed', async () => {
  const rt = runtimeOn(new FakeVmm(), false);
  await rt.init();
  try {
    await assert.rejects(rt.run(ctx, spec({ name: 'missing', process: { args: ['nosuch'] } }), collector()), (e) =>
      isBosonError(e, 'COMMAND_NOT_FOUND'),
    );
    const c = await rt.inspect(ctx, 'missing');
    assert.equal(c.exitCode, 127);
    assert.match(c.error ?? '', /executable file not found/);
    await rt.remove(ctx, 'missing');
    await assert.rejects(rt.run(ctx, spec({ autoRemove: true, process: { args: ['nosuch'] } }), collector()), (e) =>
      isBosonError(e, 'COMMAND_NOT_FOUND'),
    );
    assert.deepEqual(await rt.list(ctx, { all: true }), []);
  } finally {
    await rt.close();
  }
});

test('stop sends SIGTERM (143), kills after the timeout when it is ignored (137); kill takes a signal name', async () => {
  const vmm = new FakeVmm();
  const rt = runtimeOn(vmm, true);
  await rt.init();
  try {
    const a = await rt.create(ctx, spec({ name: 'sleeper', process: { args: ['sleep'] } }));
    await rt.start(ctx, a.id);
    assert.equal((await rt.inspect(ctx, a.id)).state, 'running');
    await rt.stop(ctx, a.id, 5);
    assert.deepEqual(await rt.wait(ctx, a.id), { statusCode: 143, error: null });
    const b = await rt.create(ctx, spec({ name: 'stubborn', process: { args: ['ignore-term'] } }));
    await rt.start(ctx, b.id);
    const t0 = Date.now();
    await rt.stop(ctx, b.id, 0.2);
    assert.ok(Date.now() - t0 >= 150, 'waited for the timeout');
    assert.equal((await rt.wait(ctx, b.id)).statusCode, 137);
    await rt.start(ctx, b.id);
    await rt.kill(ctx, b.id, 'SIGHUP');
    await until('the HUP to end it', async () => (await rt.inspect(ctx, b.id)).state === 'exited');
    assert.equal((await rt.inspect(ctx, b.id)).exitCode, 129);
    await assert.rejects(rt.kill(ctx, b.id, 'SIGNOPE'), (e) => isBosonError(e, 'INVALID_ARGUMENT'));
    await assert.rejects(rt.kill(ctx, b.id), (e) => isBosonError(e, 'CONTAINER_NOT_RUNNING'));
    await rt.remove(ctx, a.id);
    await rt.remove(ctx, b.id);
    assert.equal(vmm.live, 0);
  } finally {
    await rt.close();
  }
});

test('restart policies: on-failure:2 restarts twice then stays down; always restarts until stopped; a removal while running needs force', async () => {
  const vmm = new FakeVmm();
  const rt = runtimeOn(vmm, true);
  await rt.init();
  try {
    const flaky = await rt.create(
      ctx,
      spec({ name: 'flaky', restartPolicy: { name: 'on-failure', maximumRetryCount: 2 }, process: { args: ['exit', '3'] } }),
    );
    await rt.start(ctx, flaky.id);
    await until('two restarts and a final exit', async () => {
      const c = await rt.inspect(ctx, flaky.id);
      return c.restartCount === 2 && c.state === 'exited';
    });
    await new Promise((r) => setTimeout(r, 500));
    const settled = await rt.inspect(ctx, flaky.id);
    assert.equal(settled.restartCount, 2, 'no third restart');
    assert.equal(settled.exitCode, 3);
    const ok = await rt.create(
      ctx,
      spec({ name: 'fine', restartPolicy: { name: 'on-failure', maximumRetryCount: 0 }, process: { args: ['exit', '0'] } }),
    );
    await rt.start(ctx, ok.id);
    await until('the clean exit', async () => (await rt.inspect(ctx, ok.id)).state === 'exited');
    assert.equal((await rt.inspect(ctx, ok.id)).restartCount, 0, 'on-failure does not restart a clean exit');

    const forever = await rt.create(
      ctx,
      spec({ name: 'forever', restartPolicy: { name: 'always', maximumRetryCount: 0 }, process: { args: ['exit', '0'] } }),
    );
    await rt.start(ctx, forever.id);
    await until('two restarts', async () => (await rt.inspect(ctx, forever.id)).restartCount >= 2);
    await rt.stop(ctx, forever.id, 1);
    await until('it to stay stopped', async () => (await rt.inspect(ctx, forever.id)).state === 'exited');
    const count = (await rt.inspect(ctx, forever.id)).restartCount;
    await new Promise((r) => setTimeout(r, 400));
    assert.equal((await rt.inspect(ctx, forever.id)).restartCount, count, 'a stopped container is not restarted');

    const running = await rt.create(ctx, spec({ name: 'busy', process: { args: ['sleep'] } }));
    await rt.start(ctx, running.id);
    await assert.rejects(rt.remove(ctx, running.id), (e) => isBosonError(e, 'CONTAINER_RUNNING'));
    await rt.remove(ctx, running.id, { force: true });
    for (const c of await rt.list(ctx, { all: true })) await rt.remove(ctx, c.id, { force: true });
    assert.equal(vmm.live, 0);
  } finally {
    await rt.close();
  }
});

test('a boot that hangs is retried (with a notice), three hangs are GUEST_BOOT_TIMEOUT; a VM that dies is exit 137 with why', async () => {
  const vmm = new FakeVmm();
  const rt = runtimeOn(vmm, false, 50);
  await rt.init();
  try {
    vmm.hangNext = 1;
    const notices: string[] = [];
    const s = await rt.run(ctx, spec({ autoRemove: true, process: { args: ['exit', '0'] } }), collector(), {
      onNotice: (n) => notices.push(n),
    });
    assert.equal((await s.exit).statusCode, 0);
    assert.deepEqual(notices, ['micro-VM boot hung, retrying (attempt 2)']);
    vmm.crashNext = 1;
    const crashNotices: string[] = [];
    const again = await rt.run(ctx, spec({ autoRemove: true, process: { args: ['exit', '0'] } }), collector(), {
      onNotice: (n) => crashNotices.push(n),
    });
    assert.equal((await again.exit).statusCode, 0, 'a guest that crashed while booting is booted again');
    assert.deepEqual(crashNotices, ['micro-VM boot crashed, retrying (attempt 2)']);
    vmm.hangNext = 3;
    await assert.rejects(rt.run(ctx, spec({ autoRemove: true }), collector()), (e) => isBosonError(e, 'GUEST_BOOT_TIMEOUT'));
    assert.equal(vmm.live, 0, 'every hung VM was killed');
    const died = await rt.run(ctx, spec({ name: 'died', process: { args: ['die'] } }), collector());
    assert.equal((await died.exit).statusCode, 137);
    assert.match((await rt.inspect(ctx, 'died')).error ?? '', /without an exit status/);
    await rt.remove(ctx, 'died');
    assert.deepEqual(await rt.list(ctx, { all: true }), []);
  } finally {
    await rt.close();
  }
});

test('exec in a running container: output and exit code on its own session; refused when not running', async () => {
  const rt = runtimeOn(new FakeVmm(), true);
  await rt.init();
  try {
    const c = await rt.create(ctx, spec({ process: { args: ['sleep'] } }));
    await rt.start(ctx, c.id);
    const exec = await rt.createExec(ctx, c.id, { argv: ['uname', '-r'], env: ['X=1'] });
    assert.ok(exec.env.includes('X=1'));
    const sink = collector();
    const started = await rt.startExec(ctx, exec.id, sink);
    assert.equal(await started.exit, 0);
    assert.equal(sink.out(), 'exec uname -r\n');
    assert.equal((await rt.inspectExec(ctx, exec.id)).exitCode, 0);
    assert.equal(exec.user, '0', 'the container runs as root: so does its exec');
    await rt.stop(ctx, c.id, 1);
    await assert.rejects(rt.createExec(ctx, c.id, { argv: ['true'] }), (e) => isBosonError(e, 'CONTAINER_NOT_RUNNING'));
    await rt.remove(ctx, c.id);
  } finally {
    await rt.close();
  }
});

test('offline execs of a container that is not running: one helper VM serves them, and goes before a start; the container stays as it was', async () => {
  const vmm = new FakeVmm();
  const rt = runtimeOn(vmm, true);
  await rt.init();
  try {
    const c = await rt.create(ctx, spec({ process: { args: ['sleep'] } }));
    await assert.rejects(rt.createExec(ctx, c.id, { argv: ['true'] }), (e) => isBosonError(e, 'CONTAINER_NOT_RUNNING'));
    const run = async (argv: string[]): Promise<string> => {
      const exec = await rt.createExec(ctx, c.id, { argv, offline: true });
      const sink = collector();
      assert.equal(await (await rt.startExec(ctx, exec.id, sink)).exit, 0);
      return sink.out();
    };
    assert.equal(await run(['stat', '/etc']), 'exec stat /etc\n');
    assert.equal(vmm.launches, 1, 'a helper VM was booted');
    assert.equal(await run(['tar', 'cf', '-', 'etc']), 'exec tar cf - etc\n');
    assert.equal(vmm.launches, 1, 'the second exec reused it');
    const seen = await rt.inspect(ctx, c.id);
    assert.equal(seen.state, 'created');
    assert.equal(seen.vmPid, null);
    assert.equal(vmm.live, 1);
    // A start ends the helper first (its stdin closed: it exits), then boots the container's own VM.
    await rt.start(ctx, c.id);
    assert.equal(vmm.launches, 2);
    assert.equal(vmm.live, 1, "only the container's VM runs");
    assert.equal(await run(['ls']), 'exec ls\n');
    assert.equal(vmm.launches, 2, 'a running container serves offline execs itself');
    await rt.stop(ctx, c.id, 1);
    assert.equal(await run(['ls']), 'exec ls\n');
    // A removal ends the helper.
    await rt.remove(ctx, c.id);
    assert.equal(vmm.live, 0);
  } finally {
    await rt.close();
  }
});

test("exec runs as the container's user unless it names one, as Docker's does", async () => {
  const rt = runtimeOn(new FakeVmm(), true);
  await rt.init();
  try {
    const c = await rt.create(ctx, spec({ process: { args: ['sleep'], user: 'daemon' } }));
    await rt.start(ctx, c.id);
    assert.equal((await rt.createExec(ctx, c.id, { argv: ['id'] })).user, 'daemon');
    assert.equal((await rt.createExec(ctx, c.id, { argv: ['id'], user: '0' })).user, '0');
    await rt.remove(ctx, c.id, { force: true });
  } finally {
    await rt.close();
  }
});

test('concurrent operations: one of ten creates wins a name; twenty runs at once each get their own output; start/stop races end consistent', async () => {
  const vmm = new FakeVmm();
  const rt = runtimeOn(vmm, true);
  await rt.init();
  try {
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => rt.create(ctx, spec({ name: 'contested' }))));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    assert.ok(
      results
        .filter((r) => r.status === 'rejected')
        .every((r) => isBosonError((r as PromiseRejectedResult).reason, 'CONTAINER_NAME_IN_USE')),
    );
    await rt.remove(ctx, 'contested');

    const runs = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const sink = collector();
        const s = await rt.run(ctx, spec({ autoRemove: true, process: { args: ['echo', `run-${i}`] } }), sink);
        return { status: (await s.exit).statusCode, out: sink.out(), i };
      }),
    );
    for (const r of runs) assert.deepEqual([r.status, r.out], [0, `run-${r.i}\n`]);

    const c = await rt.create(ctx, spec({ name: 'raced', process: { args: ['sleep'] } }));
    await Promise.allSettled(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? rt.start(ctx, c.id) : rt.stop(ctx, c.id, 1))));
    const state = (await rt.inspect(ctx, c.id)).state;
    assert.ok(state === 'running' || state === 'exited', state);
    assert.equal(vmm.live, state === 'running' ? 1 : 0, 'exactly the VMs the record says');
    await rt.remove(ctx, c.id, { force: true });
    assert.equal(vmm.live, 0);
    assert.deepEqual(await rt.list(ctx, { all: true }), []);
  } finally {
    await rt.close();
  }
});

test('two containers starting at once with one volume: exactly one runs, the other is VOLUME_IN_USE; the volume is free again once it ends', async () => {
  const vmm = new FakeVmm();
  vmm.launchDelayMs = 100;
  const rt = runtimeOn(vmm, true);
  await rt.init();
  try {
    const mount = { type: 'volume' as const, name: 'shared-vol', destination: '/data', readOnly: false };
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push((await rt.create(ctx, spec({ process: { args: ['sleep'] }, mounts: [mount] }))).id);
    const results = await Promise.allSettled(ids.map((id) => rt.start(ctx, id)));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, 'one start wins');
    for (const r of results) if (r.status === 'rejected') assert.ok(isBosonError(r.reason, 'VOLUME_IN_USE'), String(r.reason));
    assert.equal(vmm.live, 1);
    const winner = ids[results.findIndex((r) => r.status === 'fulfilled')]!;
    const loser = ids.find((id) => id !== winner)!;
    await rt.stop(ctx, winner, 1);
    await rt.start(ctx, loser);
    assert.equal((await rt.inspect(ctx, loser)).state, 'running');
    for (const id of ids) await rt.remove(ctx, id, { force: true });
    assert.equal(vmm.live, 0);
  } finally {
    await rt.close();
  }
});

test('a daemon restart re-attaches to running containers; one that ended meanwhile is settled from its log', async () => {
  const vmm = new FakeVmm();
  const first = runtimeOn(vmm, true);
  await first.init();
  const keep = await first.create(ctx, spec({ name: 'keeps', process: { args: ['sleep'] } }));
  await first.start(ctx, keep.id);
  await first.close();
  assert.equal(vmm.live, 1, 'the VM outlives its daemon');
  const second = runtimeOn(vmm, true);
  await second.init();
  try {
    assert.equal((await second.inspect(ctx, keep.id)).state, 'running');
    await second.stop(ctx, keep.id, 1);
    assert.equal((await second.wait(ctx, keep.id)).statusCode, 143);
    await second.remove(ctx, keep.id);
  } finally {
    await second.close();
  }
});

test('a damaged log never stops the daemon: the container is settled and its log read up to the damage', async () => {
  const vmm = new FakeVmm();
  const first = runtimeOn(vmm, true);
  await first.init();
  const c = await first.run(ctx, spec({ name: 'damaged', process: { args: ['echo', 'before'] } }), collector());
  await c.exit;
  // As if it were running when its daemon went away, and its log then got damaged (a header no writer makes).
  const record = first.registry.get('damaged');
  await first.registry.save({ ...record, state: 'running', startedAt: new Date().toISOString() });
  const log = path.join(stateDir, 'containers', record.id, 'container.log');
  const { appendFile } = await import('node:fs/promises');
  await appendFile(log, Buffer.from([0x03, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3]));
  await first.close();
  const second = runtimeOn(vmm, true);
  await second.init();
  try {
    const settled = await second.inspect(ctx, 'damaged');
    assert.equal(settled.state, 'exited');
    let text = '';
    await second.logs(ctx, 'damaged', {}, false, (l) => void (text += l.data.toString()), new AbortController().signal);
    assert.equal(text, 'before\n');
    await second.remove(ctx, 'damaged');
  } finally {
    await second.close();
  }
});
