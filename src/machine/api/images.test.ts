/**
 * The image routes of the REST API and the typed client over them, without micro-VMs: the app of buildApi over an
 * embedded runtime on a temporary state directory with the demo image imported, served on a real UNIX socket.
 * A pull reaches a registry that is not there (a closed loopback port), so its stream and its errors are checked
 * without a network.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { access, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { PACKAGE_ROOT, isBosonError } from '../../common/index.ts';
import { ImageStore } from '../../image/index.ts';
import type { MachineRuntime } from '../runtime.ts';
import { FakeVmm } from '../fake-vmm.ts';
import { fakeRuntime } from '../fake-runtime.ts';
import { openStateStore } from '../store/sqlite.ts';
import { localContext, type ImageProgressEvent } from '../port/index.ts';
import { buildApi } from './server.ts';
import { MachineClient } from './client.ts';
import { RemoteMachine } from './remote.ts';

const LAYOUT = path.join(PACKAGE_ROOT, 'build', 'images', 'busybox-oci');
const ctx = localContext('test');
let stateDir: string;
let runtime: MachineRuntime;
let app: FastifyInstance;
let socketPath: string;
let remote: RemoteMachine;

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

before(async () => {
  await access(path.join(LAYOUT, 'index.json'));
  stateDir = await mkdtemp(path.join(os.tmpdir(), 'boson-image-api-'));
  const store = openStateStore(stateDir);
  const images = new ImageStore(store, stateDir);
  await images.importPath(LAYOUT);
  store.close();
  runtime = fakeRuntime({
    stateDir,
    vmm: new FakeVmm(),
    detached: false,
    bootBundle: async () => {
      throw new Error('no VM in this test');
    },
  });
  await runtime.init();
  app = await buildApi(runtime);
  socketPath = path.join(stateDir, 'api.sock');
  await app.listen({ path: socketPath });
  remote = new RemoteMachine(new MachineClient(socketPath));
});
after(async () => {
  await app?.close();
  await runtime?.close();
  await rm(stateDir, { recursive: true, force: true });
});

test('/openapi.json documents every image route with its request and response schemas', async () => {
  const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json() as {
    paths: Record<
      string,
      Record<
        string,
        { requestBody?: { content: Record<string, unknown> }; responses: Record<string, { content?: Record<string, { schema: unknown }> }> }
      >
    >;
  };
  const routes = [
    'get /v1/images',
    'post /v1/images/pull',
    'post /v1/images/import',
    'post /v1/images/prune',
    'get /v1/images/{ref}',
    'post /v1/images/{ref}/tag',
    'delete /v1/images/{ref}',
  ];
  for (const r of routes) {
    const [method, url] = r.split(' ') as [string, string];
    const op = doc.paths[url]?.[method];
    assert.ok(op, `${r} is documented`);
    const ok = Object.entries(op.responses).find(([code]) => code.startsWith('2'));
    assert.ok(ok && ok[1].content && Object.values(ok[1].content)[0]!.schema, `${r} has a response schema`);
    assert.ok(op.responses['4XX'] ?? op.responses['4xx'], `${r} documents its problem answers`);
  }
  assert.ok(doc.paths['/v1/images/pull']!.post!.requestBody?.content['application/json'], 'the pull request body is documented');
  assert.ok(doc.paths['/v1/images/pull']!.post!.responses['200']!.content!['application/x-ndjson'], 'the pull stream is documented');
  assert.ok(doc.paths['/v1/images/import']!.post!.requestBody?.content['application/x-tar'], 'the import tar body is documented');
});

test('list, inspect (a name with slashes and a colon), tag, remove through the client', async () => {
  const list = await remote.images.list(ctx);
  assert.equal(list.length, 1);
  assert.deepEqual(list[0]!.references, ['localhost/busybox:latest']);
  assert.equal(list[0]!.architecture, 'amd64');
  const inspected = await remote.images.inspect(ctx, 'localhost/busybox:latest');
  assert.equal(inspected.id, list[0]!.id);
  assert.deepEqual(inspected.config, list[0]!.config);
  assert.equal((inspected.configBlob as { architecture: string }).architecture, 'amd64');
  assert.equal((await remote.images.inspect(ctx, 'busybox')).id, list[0]!.id, 'short names resolve as locally');
  assert.equal((await remote.images.inspect(ctx, list[0]!.id.slice(7, 19))).id, list[0]!.id, 'and id prefixes');

  const tagged = await remote.images.tag(ctx, 'busybox', 'mine/box:v1');
  assert.deepEqual([...tagged.references].sort(), ['localhost/busybox:latest', 'localhost/mine/box:v1']);
  assert.deepEqual(await remote.images.remove(ctx, 'mine/box:v1'), { untagged: ['localhost/mine/box:v1'], deleted: null });
  await assert.rejects(remote.images.inspect(ctx, 'mine/box:v1'), (err) => isBosonError(err, 'IMAGE_NOT_FOUND'));
  await assert.rejects(remote.images.tag(ctx, 'nope', 'x:1'), (err) => isBosonError(err, 'IMAGE_NOT_FOUND'));
  await assert.rejects(remote.images.tag(ctx, 'busybox', 'x@sha256:' + '0'.repeat(64)), (err) => isBosonError(err, 'INVALID_ARGUMENT'));
});

test('errors are problem JSON with the catalogue code', async () => {
  const res = await app.inject({ method: 'GET', url: `/v1/images/${encodeURIComponent('no/such:image')}` });
  assert.equal(res.statusCode, 404);
  assert.match(res.headers['content-type'] as string, /^application\/problem\+json/);
  assert.equal(res.json().code, 'IMAGE_NOT_FOUND');
  const bad = await app.inject({ method: 'POST', url: '/v1/images/pull', payload: { reference: 'x', bogus: 1 } });
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.json().code, 'INVALID_ARGUMENT');
  const noBody = await app.inject({ method: 'POST', url: '/v1/images/import' });
  assert.equal(noBody.statusCode, 400);
  const relative = await app.inject({ method: 'POST', url: '/v1/images/import?path=build/images' });
  assert.equal(relative.statusCode, 400);
});

test('a pull streams progress, then ends with the error that stopped it; a bad reference is refused before any stream', async () => {
  const port = await closedPort();
  const events: ImageProgressEvent[] = [];
  await assert.rejects(
    remote.images.pull(ctx, { reference: `127.0.0.1:${port}/x/y:z` }, (e) => events.push(e)),
    (err) => isBosonError(err, 'REGISTRY_UNREACHABLE'),
  );
  await assert.rejects(remote.images.pull(ctx, { reference: 'Not A Reference' }), (err) => isBosonError(err, 'INVALID_ARGUMENT'));
  // docker run's pull: an image that is here is the answer, without a registry.
  const here = await remote.images.pull(ctx, { reference: 'busybox', ifMissing: true });
  assert.equal(here.upToDate, true);
  assert.deepEqual(here.image.references, ['localhost/busybox:latest']);
  // ... and one found nowhere is IMAGE_NOT_FOUND.
  await assert.rejects(remote.images.pull(ctx, { reference: `127.0.0.1:${port}/x/y:z`, ifMissing: true }), (err) =>
    isBosonError(err, 'IMAGE_NOT_FOUND'),
  );
  // The raw stream: NDJSON lines, the last one the error.
  const res = await app.inject({ method: 'POST', url: '/v1/images/pull', payload: { reference: `127.0.0.1:${port}/x/y:z` } });
  if (res.statusCode === 200) {
    const lines = res.body
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok('error' in lines.at(-1)!, 'the stream ends with the error');
  } else assert.equal(res.json().code, 'REGISTRY_UNREACHABLE');
});

test('import: a docker save / OCI tar as the body, or a path on the host; prune', async () => {
  const work = await mkdtemp(path.join(os.tmpdir(), 'boson-image-tar-'));
  try {
    const tarball = path.join(work, 'busybox.tar');
    execFileSync('tar', ['-cf', tarball, '-C', LAYOUT, '.']);
    const fromTar = await remote.images.import(ctx, { tar: createReadStream(tarball) }, { tag: 'from/tar:1' });
    assert.equal(fromTar.length, 1);
    assert.ok(fromTar[0]!.references.includes('localhost/from/tar:1'));
    const fromPath = await remote.images.import(ctx, { path: LAYOUT }, { tag: 'from/path:1' });
    assert.ok(fromPath[0]!.references.includes('localhost/from/path:1'));
    const garbage = path.join(work, 'garbage.tar');
    execFileSync('sh', ['-c', `head -c 4096 /dev/urandom > ${garbage}`]);
    await assert.rejects(
      remote.images.import(ctx, { tar: createReadStream(garbage) }),
      (err) => isBosonError(err, 'IMAGE_INVALID') && !String((err as Error).message).includes(stateDir),
    );
    await assert.rejects(remote.images.import(ctx, { path: path.join(work, 'missing') }), (err) =>
      isBosonError(err, 'IMAGE_SOURCE_NOT_FOUND'),
    );
    const pruned = await remote.images.prune(ctx);
    assert.deepEqual(pruned.images, []);
    assert.equal(typeof pruned.bytes, 'number');
    assert.deepEqual(
      (await remote.images.list(ctx)).map((i) => i.references.length),
      [3],
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
