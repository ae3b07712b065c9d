/**
 * The one conformance suite of the machine port: every implementation of Machine runs it, the runtime itself
 * (with the fake VMM) and the typed client through the REST server (src/machine/api/conformance.test.ts), so that
 * what an edge sees does not depend on whether the machine is in its process or behind a socket: the same
 * answers, the same exit codes, the same typed errors. The machine under test must have the image `busybox`
 * (a busybox whose processes behave as src/machine/fake-vmm.ts describes: `echo`, `exit N`, `sleep`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBosonError } from '../../common/index.ts';
import type { Machine, StreamSink } from './machine.ts';
import { localContext } from './values.ts';
import type { ContainerSpec } from './schemas.ts';

/** What the suite gets from an implementation: a fresh machine and how to end it. */
export interface MachineFactory {
  open(): Promise<{ machine: Machine; cleanup(): Promise<void> }>;
}

const ctx = localContext('conformance');
const spec = (args: string[], extra: Partial<ContainerSpec> = {}): ContainerSpec => ({ image: 'busybox', process: { args }, ...extra });
const code =
  (c: string) =>
  (e: unknown): boolean =>
    isBosonError(e, c as never);

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

/** Registers the suite's tests under `name`. */
export function machineConformance(name: string, factory: MachineFactory): void {
  const withMachine = (title: string, fn: (m: Machine) => Promise<void>): void => {
    test(`${name}: ${title}`, async () => {
      const { machine, cleanup } = await factory.open();
      try {
        await fn(machine);
      } finally {
        await cleanup();
      }
    });
  };

  withMachine('create, inspect, list, rename, remove; the typed errors of each', async ({ containers: c }) => {
    const created = await c.create(ctx, spec(['true'], { name: 'conf-one', labels: { a: 'b' } }));
    assert.equal(created.name, 'conf-one');
    assert.equal(created.state, 'created');
    assert.equal(created.config.labels.a, 'b');
    assert.equal((await c.inspect(ctx, created.id.slice(0, 12))).id, created.id);
    assert.deepEqual(
      (await c.list(ctx, { all: true })).map((x) => x.id),
      [created.id],
    );
    assert.deepEqual(await c.list(ctx), [], 'not running: listed only with all');
    await assert.rejects(c.create(ctx, spec(['true'], { name: 'conf-one' })), code('CONTAINER_NAME_IN_USE'));
    await assert.rejects(c.create(ctx, spec(['true'], { name: '-bad' })), code('INVALID_ARGUMENT'));
    await assert.rejects(c.create(ctx, { ...spec(['true']), process: { args: ['true'], cwd: 'relative' } }), code('INVALID_ARGUMENT'));
    await assert.rejects(c.create(ctx, spec(['true'], { image: 'no-such-image-here' })), code('IMAGE_NOT_FOUND'));
    await c.rename(ctx, 'conf-one', 'conf-two');
    assert.equal((await c.inspect(ctx, 'conf-two')).id, created.id);
    await assert.rejects(c.inspect(ctx, 'conf-one'), code('CONTAINER_NOT_FOUND'));
    await assert.rejects(c.suspend(ctx, 'conf-two'), code('CONTAINER_NOT_RUNNING'));
    await assert.rejects(c.resume(ctx, 'conf-two'), code('CONTAINER_NOT_SUSPENDED'));
    await assert.rejects(c.suspend(ctx, 'no-such-container'), code('CONTAINER_NOT_FOUND'));
    await c.remove(ctx, 'conf-two');
    await assert.rejects(c.inspect(ctx, created.id), code('CONTAINER_NOT_FOUND'));
    await assert.rejects(c.remove(ctx, created.id), code('CONTAINER_NOT_FOUND'));
    assert.deepEqual(await c.list(ctx, { all: true }), []);
  });

  withMachine(
    'start, wait, stop, kill: states and exit codes; a running container is not removed without force',
    async ({ containers: c }) => {
      const three = await c.create(ctx, spec(['exit', '3']));
      await c.start(ctx, three.id);
      assert.deepEqual(await c.wait(ctx, three.id), { statusCode: 3, error: null });
      const exited = await c.inspect(ctx, three.id);
      assert.equal(exited.state, 'exited');
      assert.equal(exited.exitCode, 3);

      const sleeper = await c.create(ctx, spec(['sleep']));
      await c.start(ctx, sleeper.id);
      assert.equal((await c.inspect(ctx, sleeper.id)).state, 'running');
      assert.deepEqual(
        (await c.list(ctx)).map((x) => x.id),
        [sleeper.id],
      );
      await assert.rejects(c.remove(ctx, sleeper.id), code('CONTAINER_RUNNING'));
      await c.stop(ctx, sleeper.id, 5);
      assert.equal((await c.wait(ctx, sleeper.id)).statusCode, 143, 'SIGTERM');

      await c.start(ctx, sleeper.id);
      await c.kill(ctx, sleeper.id, 'KILL');
      assert.equal((await c.wait(ctx, sleeper.id)).statusCode, 137);
      await assert.rejects(c.kill(ctx, sleeper.id), code('CONTAINER_NOT_RUNNING'));

      await c.start(ctx, sleeper.id);
      await c.remove(ctx, sleeper.id, { force: true });
      await assert.rejects(c.inspect(ctx, sleeper.id), code('CONTAINER_NOT_FOUND'));
    },
  );

  withMachine('update: the restart policy changes in any state; with auto-remove only to no', async ({ containers: c }) => {
    const x = await c.create(ctx, spec(['true']));
    const updated = await c.update(ctx, x.id, { restartPolicy: { name: 'on-failure', maximumRetryCount: 2 } });
    assert.deepEqual(updated.restartPolicy, { name: 'on-failure', maximumRetryCount: 2 });
    assert.deepEqual((await c.inspect(ctx, x.id)).restartPolicy, { name: 'on-failure', maximumRetryCount: 2 });
    const gone = await c.create(ctx, spec(['true'], { autoRemove: true }));
    await assert.rejects(c.update(ctx, gone.id, { restartPolicy: { name: 'always', maximumRetryCount: 0 } }), code('INVALID_ARGUMENT'));
    assert.equal((await c.inspect(ctx, gone.id)).restartPolicy.name, 'no', 'a refused update changes nothing');
    await assert.rejects(c.update(ctx, 'no-such-container', {}), code('CONTAINER_NOT_FOUND'));
  });

  withMachine("a run's output and exit status", async ({ containers: c }) => {
    const sink = collector();
    let createdFirst: string | undefined;
    const session = await c.run(ctx, spec(['echo', 'hello', 'port']), sink, { onCreated: (x) => (createdFirst = x.id) });
    assert.equal(createdFirst, session.container.id, 'told of the container before it ran');
    assert.deepEqual(await session.exit, { statusCode: 0, error: null });
    assert.equal(sink.out(), 'hello port\n');
    const failing = await c.run(ctx, spec(['exit', '7']), collector());
    assert.equal((await failing.exit).statusCode, 7);
    await assert.rejects(c.run(ctx, spec(['true'], { image: 'no-such-image-here' }), collector()), code('IMAGE_NOT_FOUND'));
  });

  withMachine('exec: output and exit code; a stopped container has none', async ({ containers: c }) => {
    const box = await c.create(ctx, spec(['sleep']));
    await c.start(ctx, box.id);
    const exec = await c.createExec(ctx, box.id, { argv: ['ls', '/'] });
    assert.equal(exec.containerId, box.id);
    assert.equal(exec.running, false);
    const sink = collector();
    const session = await c.startExec(ctx, exec.id, sink);
    assert.equal(await session.exit, 0);
    assert.match(sink.out(), /exec ls \//);
    assert.equal((await c.inspectExec(ctx, exec.id)).exitCode, 0);
    await assert.rejects(c.inspectExec(ctx, 'no-such-exec'), code('EXEC_NOT_FOUND'));
    await c.remove(ctx, box.id, { force: true });
    const stopped = await c.create(ctx, spec(['true']));
    await assert.rejects(c.createExec(ctx, stopped.id, { argv: ['ls'] }), code('CONTAINER_NOT_RUNNING'));
  });

  withMachine('logs: what a container wrote, with its stream', async ({ containers: c }) => {
    const x = await c.create(ctx, spec(['echo', 'logged']));
    await c.start(ctx, x.id);
    await c.wait(ctx, x.id);
    const lines: string[] = [];
    await c.logs(ctx, x.id, {}, false, (l) => void lines.push(`${l.stream}:${l.data.toString()}`), new AbortController().signal);
    assert.deepEqual(lines, ['stdout:logged\n']);
  });

  withMachine('images: list, inspect, tag, remove', async ({ images }) => {
    const all = await images.list(ctx);
    const busybox = all.find((i) => i.references.some((r) => r.includes('busybox')));
    assert.ok(busybox, 'the busybox image is there');
    const inspected = await images.inspect(ctx, 'busybox');
    assert.equal(inspected.id, busybox.id);
    assert.ok(inspected.configBlob, 'with its config blob');
    const tagged = await images.tag(ctx, 'busybox', 'conformance/box:1');
    assert.equal(tagged.id, busybox.id);
    assert.equal((await images.inspect(ctx, 'conformance/box:1')).id, busybox.id);
    const removed = await images.remove(ctx, 'conformance/box:1');
    assert.equal(removed.deleted, null, 'the image keeps its other name');
    assert.equal(removed.untagged.length, 1);
    await assert.rejects(images.inspect(ctx, 'conformance/box:1'), code('IMAGE_NOT_FOUND'));
  });

  withMachine('volumes: create, list, inspect, remove, prune; in use is refused', async ({ volumes, containers }) => {
    const v = await volumes.create(ctx, { name: 'conf-data', labels: { k: 'v' }, sizeBytes: 64 * 1024 * 1024 });
    assert.equal(v.name, 'conf-data');
    assert.equal(v.anonymous, false);
    assert.deepEqual((await volumes.create(ctx, { name: 'conf-data' })).created, v.created, 'an existing name is returned as it is');
    assert.deepEqual(
      (await volumes.list(ctx)).map((x) => x.name),
      ['conf-data'],
    );
    const user = await containers.create(
      ctx,
      spec(['true'], { mounts: [{ type: 'volume', name: 'conf-data', destination: '/data', readOnly: false }] }),
    );
    const inspected = await volumes.inspect(ctx, 'conf-data');
    assert.deepEqual(inspected.usedBy, [user.id]);
    assert.equal(typeof inspected.usageBytes, 'number');
    await assert.rejects(volumes.remove(ctx, 'conf-data'), code('VOLUME_IN_USE'));
    await containers.remove(ctx, user.id);
    assert.deepEqual((await volumes.prune(ctx)).removed, [], 'named volumes stay without all');
    assert.deepEqual((await volumes.prune(ctx, { all: true })).removed, ['conf-data']);
    await assert.rejects(volumes.inspect(ctx, 'conf-data'), code('VOLUME_NOT_FOUND'));
    await assert.rejects(volumes.remove(ctx, 'conf-data'), code('VOLUME_NOT_FOUND'));
  });

  withMachine("events: a container's lifecycle, logged and followed", async ({ containers: c, events }) => {
    const since = BigInt(Date.now() - 1000) * 1_000_000n;
    const followed: string[] = [];
    const abort = new AbortController();
    const following = events.follow(ctx, {}, (e) => void followed.push(`${e.actorId}:${e.action}`), abort.signal);
    // The subscription is in place once the follower has had a moment (over REST: the request is answered).
    await new Promise((r) => setTimeout(r, 100));
    const x = await c.create(ctx, spec(['exit', '0']));
    await c.start(ctx, x.id);
    await c.wait(ctx, x.id);
    await c.remove(ctx, x.id);
    const expected = ['create', 'start', 'die', 'destroy'].map((a) => `${x.id}:${a}`);
    await until('the followed events', async () => expected.every((e) => followed.includes(e)));
    abort.abort();
    await following;
    const past = (await events.past(ctx, { sinceNs: since })).filter((e) => e.actorId === x.id);
    for (const action of ['create', 'start', 'die', 'destroy'])
      assert.ok(
        past.some((e) => e.action === action && e.type === 'container'),
        `${action} is logged`,
      );
    assert.ok(
      past.every((e, i) => i === 0 || e.seq > past[i - 1]!.seq),
      'in order',
    );
    assert.equal(past.find((e) => e.action === 'create')?.attributes.name, x.name);
  });
}
