/**
 * The runtime's lifecycle rules that need no micro-VM, on a real state directory (SQLite, the image store with the
 * demo image imported): bad input is refused with a typed error and changes nothing; names are claimed once; the
 * API view hides the bookkeeping; a killed embedded host's containers are settled by the next runtime.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { access, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT, isBosonError } from '../common/index.ts';
import { ImageStore } from '../image/index.ts';
import { ContainerRegistry } from './containers.ts';
import { MachineRuntime } from './runtime.ts';
import { VolumeManager } from './volumes/index.ts';
import { ImageService } from './images.ts';
import { localContext, type ContainerSpec } from './port/index.ts';

const LAYOUT = path.join(PACKAGE_ROOT, 'build', 'images', 'busybox-oci');
const ctx = localContext('test');
let stateDir: string;

function embedded(): MachineRuntime {
  const paths = { stateDir, runDir: path.join(stateDir, 'run'), guestDir: path.join(PACKAGE_ROOT, 'build', 'guest'), rootless: false };
  const images = new ImageStore(stateDir);
  return new MachineRuntime(
    { paths, detached: false, virtiofsd: '/usr/lib/qemu/virtiofsd' },
    { registry: new ContainerRegistry(stateDir), images, imageService: new ImageService(images, { spoolDir: path.join(stateDir, 'tmp') }), volumes: new VolumeManager(stateDir), networks: null },
  );
}

const spec = (extra: Partial<ContainerSpec> = {}): ContainerSpec => ({ image: 'busybox', process: { args: ['true'] }, ...extra });

before(async () => {
  await access(path.join(LAYOUT, 'index.json'));
  stateDir = await mkdtemp(path.join(os.tmpdir(), 'boson-runtime-'));
  await new ImageStore(stateDir).importPath(LAYOUT);
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
    const c = await rt.create(ctx, spec({ name: 'only', process: { entrypoint: ['sh', '-c'], args: ['exit 3'], env: ['A=1'], tty: true } }));
    assert.equal(c.name, 'only');
    assert.equal(c.state, 'created');
    assert.deepEqual(c.config.argv, ['sh', '-c', 'exit 3']);
    assert.ok(c.config.env.includes('A=1'));
    assert.equal(c.config.tty, true);
    assert.equal(c.network, 'none', 'an embedded runtime has no networks');
    for (const hidden of ['managed', 'ownerPid', 'stoppedByUser']) assert.ok(!(hidden in c), `${hidden} is not part of the view`);
    await assert.rejects(rt.create(ctx, spec({ name: 'only' })), (e) => isBosonError(e, 'CONTAINER_NAME_IN_USE'));
    assert.equal((await rt.list(ctx, { all: true })).length, 1);
    assert.deepEqual((await rt.list(ctx)).map((x) => x.id), [], 'not running, so not listed without all');
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
