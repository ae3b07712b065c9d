/**
 * Image locality fed by the machines themselves: over the memory store and two fake machines (the machine's real
 * REST API over an in-memory table: bench/fake-machine.ts), the health checks record the images each machine lists,
 * in the locality spelling the scheduler compares with ("busybox" and "docker.io/library/busybox:latest" are one
 * image), writing the machine record only when its list changed; a pull through a project records the lists at once;
 * and spread placement then prefers the machine that has the image over an equal one that has not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { asyncStore, MemoryStateStore } from '../src/common/index.ts';
import { Controller, HealthChecker, openFleet } from '../src/controller/index.ts';
import { imageLocalityKey, machineImageKeys } from '../src/controller/fleet/image-locality.ts';
import { fakeImage, fakeMachineApp } from '../bench/fake-machine.ts';

const GiB = 1024 ** 3;

test('locality keys: one spelling per image, digests without tags, ids as they are, localhost images for short names', () => {
  const busybox = 'docker.io/library/busybox:latest';
  for (const r of ['busybox', 'busybox:latest', 'library/busybox', 'docker.io/library/busybox', 'index.docker.io/library/busybox:latest'])
    assert.equal(imageLocalityKey(r), busybox, r);
  assert.notEqual(imageLocalityKey('busybox:1.36'), busybox);
  assert.equal(imageLocalityKey('quay.io/ns/app'), 'quay.io/ns/app:latest');
  const digest = `sha256:${'a'.repeat(64)}`;
  assert.equal(imageLocalityKey(`busybox:1.36@${digest}`), `docker.io/library/busybox@${digest}`);
  assert.equal(imageLocalityKey(digest), digest);
  assert.equal(imageLocalityKey('Not A Name'), 'Not A Name');
  const local = fakeImage(['localhost/app:1']);
  const pulled = { ...fakeImage([busybox]), repoDigests: [`docker.io/library/busybox@${digest}`] };
  assert.deepEqual(
    machineImageKeys([pulled, local, pulled]),
    [`docker.io/library/busybox@${digest}`, busybox, 'docker.io/library/app:1', 'localhost/app:1', local.id, pulled.id].sort(),
  );
  assert.ok(machineImageKeys([local]).includes(imageLocalityKey('app:1')), 'a short name runs the localhost image there');
});

test('machines report their images through the health checks; spread placement prefers the machine with the image', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-locality-'));
  const store = asyncStore(new MemoryStateStore());
  const ctl = new Controller(store);
  const fakes = [await fakeMachineApp(), await fakeMachineApp()];
  const listeners = await Promise.all(fakes.map((f, i) => f.listenAs(`${dir}/m${i}.sock`)));
  const opened = await openFleet(store, ctl.tenants, { lostAfterMs: 60_000, checkIntervalMs: 0, checkTimeoutMs: 5000 });
  t.after(async () => {
    await opened.close();
    for (const l of listeners) await new Promise((r) => l.close(r));
    for (const f of fakes) await f.close();
    await rm(dir, { recursive: true, force: true });
  });
  const { fleet, containers } = opened;
  // Two equal machines, large enough that a few containers hardly move their load (less than the locality bonus).
  const capacity = { cpus: 256, memoryBytes: 1024 * GiB, diskBytes: 100_000 * GiB };
  const [a, b] = [
    await fleet.registerLocal(`unix://${dir}/m0.sock`, capacity),
    await fleet.registerLocal(`unix://${dir}/m1.sock`, capacity),
  ];
  assert.ok(a && b && a !== b);
  const checker = new HealthChecker(fleet, { intervalMs: 0, timeoutMs: 5000, imagesEvery: 1 });

  // Only machine a has busybox (under its full name); b has an unrelated image.
  fakes[0]!.images.push(fakeImage(['docker.io/library/busybox:latest']));
  fakes[1]!.images.push(fakeImage(['docker.io/library/alpine:3.20']));
  await checker.checkAll();
  assert.deepEqual((await fleet.record(a)).images, machineImageKeys(fakes[0]!.images));
  assert.ok((await fleet.record(a)).images.includes('docker.io/library/busybox:latest'));
  assert.ok(!(await fleet.record(b)).images.includes('docker.io/library/busybox:latest'));

  // Unchanged lists: a round of checks commits nothing (the health records are fresh, the lists the same).
  const rev = await store.revision();
  await checker.checkAll();
  assert.equal(await store.revision(), rev, 'no commit when nothing changed');

  // One container per project (spread's per-project penalty plays no part): an image neither machine has spreads
  // them evenly (the control: without locality the two machines take turns) ...
  await ctl.tenants.createTenant('acme', []);
  let n = 0;
  const place = async (image: string): Promise<string> => {
    const project = `p${n++}`;
    await ctl.tenants.createProject('acme', project, []);
    return (await containers.create('acme', project, { image, resources: { cpus: 1, memoryMiB: 256 } }, { start: false })).machineId;
  };
  const control: string[] = [];
  for (let i = 0; i < 4; i++) control.push(await place('debian'));
  assert.deepEqual(
    [a, b].map((m) => control.filter((x) => x === m).length),
    [2, 2],
  );
  // ... while busybox, named the short way, goes to the machine that has it, every time.
  for (let i = 0; i < 4; i++) assert.equal(await place('busybox'), a, 'placed where the image is');

  // A pull through a project records the pulled image on every machine at once (no health check needed).
  await opened.projectMachine('acme', 'p0').images.pull({ principal: 'test' }, { reference: 'nginx:1.27' });
  for (const m of [a, b]) assert.ok((await fleet.record(m)).images.includes('docker.io/library/nginx:1.27'), m);

  // A machine's list that changes is recorded at its next check: busybox now only on b.
  fakes[0]!.images.splice(0, fakes[0]!.images.length);
  fakes[1]!.images.push(fakeImage(['docker.io/library/busybox:latest']));
  await checker.checkAll();
  assert.ok(!(await fleet.record(a)).images.includes('docker.io/library/busybox:latest'));
  assert.ok((await fleet.record(b)).images.includes('docker.io/library/busybox:latest'));
  for (let i = 0; i < 3; i++) assert.equal(await place('docker.io/library/busybox:latest'), b, 'placed where the image is now');
});

test('the image list is asked for every `imagesEvery` answered checks, and at once after a failed one', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-locality-'));
  const store = asyncStore(new MemoryStateStore());
  const ctl = new Controller(store);
  const fake = await fakeMachineApp();
  let listener = await fake.listenAs(`${dir}/m.sock`);
  const opened = await openFleet(store, ctl.tenants, { lostAfterMs: 60_000, checkIntervalMs: 0, checkTimeoutMs: 5000 });
  t.after(async () => {
    await opened.close();
    await new Promise((r) => listener.close(r));
    await fake.close();
    await rm(dir, { recursive: true, force: true });
  });
  const id = await opened.fleet.registerLocal(`unix://${dir}/m.sock`, { cpus: 4, memoryBytes: 8 * GiB, diskBytes: 100 * GiB });
  const checker = new HealthChecker(opened.fleet, { intervalMs: 0, timeoutMs: 5000, imagesEvery: 3 });
  const images = async (): Promise<string[]> => (await opened.fleet.record(id)).images;
  fake.images.push(fakeImage(['docker.io/library/busybox:latest']));
  await checker.checkAll(); // 1st answered: asked
  assert.deepEqual(await images(), machineImageKeys(fake.images));
  fake.images.push(fakeImage(['docker.io/library/alpine:latest']));
  await checker.checkAll(); // 2nd, 3rd: not asked
  await checker.checkAll();
  assert.equal((await images()).length, 2, 'not asked between');
  await checker.checkAll(); // 4th: asked
  assert.deepEqual(await images(), machineImageKeys(fake.images));
  // A failed check, then an answer: asked at once.
  fake.images.pop();
  await new Promise((r) => listener.close(r));
  await rm(`${dir}/m.sock`, { force: true });
  await checker.checkAll();
  assert.ok((await opened.fleet.get(id)).lastError, 'the check failed');
  listener = await fake.listenAs(`${dir}/m.sock`);
  await checker.checkAll();
  assert.deepEqual(await images(), machineImageKeys(fake.images));
});
