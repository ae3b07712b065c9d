/**
 * Pull engine against a small registry of our own (node:http on a loopback port) that can misbehave on purpose:
 * corrupt, oversized or truncated blobs, huge manifests, unsupported media types, 401s, 5xx, redirects to another
 * origin, Range. After every failure the state directory must be exactly as it was before the pull.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { sha256Digest } from './content-store.ts';
import { ImageStore } from './store.ts';
import { buildOciLayout, makeTar, type LayoutImage } from './oci-writer.ts';
import { parseChallenge } from './registry.ts';
import { parsePlatform, selectPlatform } from './pull.ts';
import { remoteReference } from './reference.ts';
import { CredentialStore } from './credentials.ts';
import { imageStoreOn, rejectsWith, snapshot, stateStoreOf, tempDir } from './test-support.ts';
import { MT } from './types.ts';

interface Served {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

/** A registry serving in-memory manifests and blobs, with hooks to misbehave. */
class FakeRegistry {
  manifests = new Map<string, { body: Buffer; type: string }>();
  blobs = new Map<string, Buffer>();
  requests: Served[] = [];
  /** Per-request override: return true when it answered. */
  hook: ((req: http.IncomingMessage, res: http.ServerResponse) => boolean) | null = null;
  basic: string | null = null;
  private server = http.createServer((req, res) => this.handle(req, res));
  port = 0;

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  /** Adds the images of an in-memory layout under `repo`, tagged by their refName. */
  add(repo: string, images: LayoutImage[]): ReturnType<typeof buildOciLayout> {
    const files = buildOciLayout(images);
    for (const [d, b] of files.blobs) this.blobs.set(d, b);
    const index = JSON.parse(files.indexJson.toString()) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
    for (const m of index.manifests) {
      const body = files.blobs.get(m.digest)!;
      this.manifests.set(`${repo}:${m.digest}`, { body, type: MT.ociManifest });
      const tag = m.annotations?.['org.opencontainers.image.ref.name'];
      if (tag) this.manifests.set(`${repo}:${tag}`, { body, type: MT.ociManifest });
    }
    return files;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    if (this.hook?.(req, res)) return;
    if (this.basic !== null && req.headers.authorization !== this.basic) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="fake"' }).end();
      return;
    }
    const url = req.url ?? '';
    if (url === '/v2/') {
      res.writeHead(200).end('{}');
      return;
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url);
    if (!m) {
      res.writeHead(404).end();
      return;
    }
    if (m[2] === 'manifests') {
      const man = this.manifests.get(`${m[1]}:${m[3]}`);
      if (!man) {
        res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
        return;
      }
      res
        .writeHead(200, { 'Content-Type': man.type, 'Content-Length': man.body.length, 'Docker-Content-Digest': sha256Digest(man.body) })
        .end(man.body);
      return;
    }
    const blob = this.blobs.get(m[3]!);
    if (!blob) {
      res.writeHead(404).end();
      return;
    }
    const range = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? ''));
    if (range) {
      const start = Number(range[1]);
      res
        .writeHead(206, { 'Content-Range': `bytes ${start}-${blob.length - 1}/${blob.length}`, 'Content-Length': blob.length - start })
        .end(blob.subarray(start));
      return;
    }
    res.writeHead(200, { 'Content-Length': blob.length }).end(blob);
  }
}

/** Incompressible bytes (`seed` only tells tests apart in their calls). */
const random = (n: number, _seed: number): Buffer => randomBytes(n);

let reg: FakeRegistry;
let state: string;
let store: ImageStore;
let image: ReturnType<typeof buildOciLayout>;
const fast = { attempts: 3, backoffMs: 5, credentials: async () => null };

before(async () => {
  reg = await new FakeRegistry().start();
  state = await tempDir('boson-pull-test-');
  store = imageStoreOn(state);
  image = reg.add('app', [
    {
      config: { architecture: 'amd64', os: 'linux', config: { Cmd: ['sh'] } },
      layers: [
        {
          tar: await makeTar([
            { name: 'a.txt', content: 'a\n' },
            { name: 'big.bin', content: random(300_000, 1) },
          ]),
        },
        { tar: await makeTar([{ name: 'b.txt', content: 'b\n' }]), compression: 'none' },
      ],
      refName: 'v1',
    },
  ]);
  // A first good pull populates the store, so later snapshots compare a non-empty store.
  await store.pull(`${reg.host}/app:v1`, { registry: fast });
});

after(async () => {
  await reg.stop();
  await fs.rm(state, { recursive: true, force: true });
});

/** Runs `pull` expecting `code`, and checks that the state directory did not change. */
async function failsCleanly(
  ref: string,
  code: Parameters<typeof rejectsWith>[1],
  opts: Parameters<ImageStore['pull']>[1] = {},
): Promise<Error> {
  const before = await snapshot(state);
  const err = await rejectsWith(store.pull(ref, { registry: fast, ...opts }), code);
  assert.deepEqual(await snapshot(state), before, 'the state directory is unchanged');
  assert.match(
    err.message,
    new RegExp(ref.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/^127/, '127')),
    'the message names the reference',
  );
  return err;
}

/** Adds a fresh single-image repository whose first layer blob the test then tampers with. */
async function freshRepo(
  repo: string,
  seed: number,
  compression: 'gzip' | 'none' | 'zstd' = 'gzip',
): Promise<{ files: ReturnType<typeof buildOciLayout>; layer: string }> {
  const files = reg.add(repo, [
    {
      config: { architecture: 'amd64', os: 'linux' },
      layers: [{ tar: await makeTar([{ name: 'r.bin', content: random(200_000, seed) }]), compression }],
      refName: 'v1',
    },
  ]);
  return { files, layer: files.images[0]!.layerDigests[0]! };
}

test('a pulled image is in the index with its name, repo digest, layers and diff_ids, and a cached root disk', async () => {
  const img = await store.resolve(`${reg.host}/app:v1`);
  assert.deepEqual(img.references, [`${reg.host}/app:v1`]);
  assert.equal(img.manifestDigest, image.images[0]!.manifestDigest);
  assert.deepEqual(img.repoDigests, [`${reg.host}/app@${image.images[0]!.manifestDigest}`]);
  assert.deepEqual(
    img.layers.map((l) => l.diffId),
    image.images[0]!.diffIds,
  );
  assert.equal((await fs.readdir(path.join(state, 'images', 'disks'))).length, 1);
  // by digest, without the network
  assert.equal((await store.resolve(`${reg.host}/app@${image.images[0]!.manifestDigest}`)).id, img.id);
  const again = await store.pull(`${reg.host}/app:v1`, { registry: fast });
  assert.equal(again.upToDate, true);
});

test('a cached pull: by tag the /v2/ probe and one manifest request, by digest no request at all; nothing is written', async () => {
  const before = await snapshot(state);
  const revision = stateStoreOf(state).revision();
  reg.requests = [];
  const byTag = await store.pull(`${reg.host}/app:v1`, { registry: fast });
  assert.equal(byTag.upToDate, true);
  assert.deepEqual(
    reg.requests.map((r) => `${r.method} ${r.url}`),
    ['GET /v2/', 'GET /v2/app/manifests/v1'],
  );
  // Pinned by digest and already here: the registry is not asked (here it is down).
  reg.requests = [];
  reg.hook = (_req, res) => (res.destroy(), true);
  try {
    const byDigest = await store.pull(`${reg.host}/app@${image.images[0]!.manifestDigest}`, { registry: fast });
    assert.equal(byDigest.upToDate, true);
    assert.equal(byDigest.image.id, byTag.image.id);
  } finally {
    reg.hook = null;
  }
  assert.deepEqual(reg.requests, []);
  assert.deepEqual(await snapshot(state), before);
  assert.equal(stateStoreOf(state).revision(), revision, 'the index was not rewritten');
});

test('a corrupt blob (same size, other bytes) is IMAGE_CORRUPT; nothing is kept', async () => {
  const { layer } = await freshRepo('corrupt', 2);
  const good = reg.blobs.get(layer)!;
  const bad = Buffer.from(good);
  bad[bad.length >> 1] = bad[bad.length >> 1]! ^ 0xff;
  reg.blobs.set(layer, bad);
  const err = await failsCleanly(`${reg.host}/corrupt:v1`, 'IMAGE_CORRUPT');
  assert.match(err.message, /does not match its digest/);
});

test('a blob larger than its descriptor is IMAGE_CORRUPT', async () => {
  const { layer } = await freshRepo('larger', 3);
  reg.blobs.set(layer, Buffer.concat([reg.blobs.get(layer)!, Buffer.from('extra')]));
  await failsCleanly(`${reg.host}/larger:v1`, 'IMAGE_CORRUPT');
});

test('a download that keeps breaking off is IMAGE_CORRUPT (truncated) after retries', async () => {
  const { layer } = await freshRepo('trunc', 4);
  const blob = reg.blobs.get(layer)!;
  reg.hook = (req, res) => {
    if (!req.url?.endsWith(layer)) return false;
    res.writeHead(200, { 'Content-Length': blob.length });
    res.write(blob.subarray(0, 1000), () => res.destroy());
    return true;
  };
  try {
    const err = await failsCleanly(`${reg.host}/trunc:v1`, 'IMAGE_CORRUPT');
    assert.match(err.message, /truncated/);
  } finally {
    reg.hook = null;
  }
});

test('a download that breaks off once resumes with a Range request', async () => {
  const { layer } = await freshRepo('resume', 5);
  const blob = reg.blobs.get(layer)!;
  let broke = false;
  reg.hook = (req, res) => {
    if (!req.url?.endsWith(layer) || broke) return false;
    broke = true;
    res.writeHead(200, { 'Content-Length': blob.length });
    res.write(blob.subarray(0, 65536), () => setTimeout(() => res.destroy(), 20));
    return true;
  };
  reg.requests = [];
  try {
    await store.pull(`${reg.host}/resume:v1`, { registry: fast });
  } finally {
    reg.hook = null;
  }
  const ranges = reg.requests.filter((r) => r.url.endsWith(layer)).map((r) => r.headers.range ?? null);
  assert.equal(ranges[0], null);
  assert.match(String(ranges[1]), /^bytes=[1-9]\d*-$/, 'the second request resumes');
});

test('an interrupted pull (partial file of a dead process) is resumed by the next pull', async () => {
  const { layer } = await freshRepo('killed', 6);
  const blob = reg.blobs.get(layer)!;
  const dead = spawnSync('true').pid!;
  await fs.mkdir(path.join(state, 'images', 'partial'), { recursive: true });
  await fs.writeFile(path.join(state, 'images', 'partial', `${layer.slice(7)}.${dead}`), blob.subarray(0, 5000));
  reg.requests = [];
  await store.pull(`${reg.host}/killed:v1`, { registry: fast });
  const ranges = reg.requests.filter((r) => r.url.endsWith(layer)).map((r) => r.headers.range);
  assert.deepEqual(ranges, ['bytes=5000-']);
  assert.deepEqual(await fs.readdir(path.join(state, 'images', 'partial')).catch(() => []), []);
});

test('a config whose diff_ids do not match the layers is IMAGE_CORRUPT', async () => {
  const tar = await makeTar([{ name: 'x', content: 'x' }]);
  reg.add('diffid', [
    {
      config: { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256Digest('other')] } },
      layers: [{ tar }],
      refName: 'v1',
    },
  ]);
  const err = await failsCleanly(`${reg.host}/diffid:v1`, 'IMAGE_CORRUPT');
  assert.match(err.message, /diff_id/);
});

test('a wrong diff_id is IMAGE_CORRUPT both when the root disk pass checks it and when the fetch does (no disk)', async () => {
  const good = await makeTar([{ name: 'ok', content: random(50_000, 20) }]);
  const bad = await makeTar([{ name: 'y', content: random(50_000, 21) }]);
  const files = reg.add('diffid2', [
    { config: { architecture: 'amd64', os: 'linux' }, layers: [{ tar: good }, { tar: bad }], refName: 'v1' },
  ]);
  const diffIds = [files.images[0]!.diffIds[0]!, sha256Digest('not the second layer')];
  reg.add('diffid2', [
    {
      config: { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds } },
      layers: [{ tar: good }, { tar: bad }],
      refName: 'v2',
    },
  ]);
  // Built during the pull: the single decompression that flattens layer 2 is the one that finds the mismatch.
  const err = await failsCleanly(`${reg.host}/diffid2:v2`, 'IMAGE_CORRUPT');
  assert.match(err.message, /layer 2\/2 .*uncompresses to .*diff_id/);
  // Without a root disk the fetch decompresses and checks by itself.
  assert.match((await failsCleanly(`${reg.host}/diffid2:v2`, 'IMAGE_CORRUPT', { unpack: false })).message, /layer 2\/2 .*diff_id/);
  // The right config still pulls (the blobs were not poisoned by the failures).
  await store.pull(`${reg.host}/diffid2:v1`, { registry: fast });
});

test('a config that claims the layer chain of a root disk already built is still checked against its own layers', async () => {
  // Same diff_ids as app:v1 (so its disk exists and is not rebuilt), other layer contents.
  const fake = [await makeTar([{ name: 'a.txt', content: 'evil\n' }]), await makeTar([{ name: 'b.txt', content: 'evil\n' }])];
  reg.add('samechain', [
    {
      config: { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: image.images[0]!.diffIds } },
      layers: fake.map((tar) => ({ tar })),
      refName: 'v1',
    },
  ]);
  assert.match((await failsCleanly(`${reg.host}/samechain:v1`, 'IMAGE_CORRUPT')).message, /diff_id/);
});

test("the staging tree goes back to the store's filesystem when its tmpfs fills up", async (t) => {
  const small = await tempDir('boson-staging-');
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', small]).status !== 0) {
    await fs.rm(small, { recursive: true, force: true });
    t.skip('cannot mount a tmpfs here');
    return;
  }
  // A second store on the same state, staging in the small tmpfs.
  const staged = imageStoreOn(state, { stagingDir: small });
  try {
    reg.add('bigtree', [
      {
        config: { architecture: 'amd64', os: 'linux' },
        layers: [{ tar: await makeTar([{ name: 'big.bin', content: random(600_000, 30) }]) }],
        refName: 'v1',
      },
    ]);
    const r = await staged.pull(`${reg.host}/bigtree:v1`, { registry: fast });
    const disk = await staged.rootDisk(r.image);
    assert.ok(disk.sizeBytes > 600_000);
    // Built in a private directory of ours in the one named (staging.ts).
    assert.deepEqual(await fs.readdir(small), [`boson-${process.geteuid!()}`]);
    assert.deepEqual(await fs.readdir(path.join(small, `boson-${process.geteuid!()}`)), [], 'the half-built staging tree was removed');
    assert.deepEqual(await fs.readdir(path.join(state, 'images', 'tmp')), [], 'and so was the second one');
  } finally {
    spawnSync('umount', [small]);
    await fs.rm(small, { recursive: true, force: true });
  }
});

test('a manifest over 4 MiB is IMAGE_INVALID', async () => {
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociManifest, pad: 'x'.repeat(5 * 1024 * 1024) }));
  reg.manifests.set('huge:v1', { body, type: MT.ociManifest });
  const err = await failsCleanly(`${reg.host}/huge:v1`, 'IMAGE_INVALID');
  assert.match(err.message, /limit/);
});

test('unsupported manifest and layer media types are IMAGE_INVALID', async () => {
  reg.manifests.set('schema1:v1', {
    body: Buffer.from('{"schemaVersion":1,"name":"x"}'),
    type: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  });
  assert.match((await failsCleanly(`${reg.host}/schema1:v1`, 'IMAGE_INVALID')).message, /unsupported manifest media type/);
  reg.add('weird', [
    {
      config: { architecture: 'amd64', os: 'linux' },
      layers: [{ tar: await makeTar([{ name: 'w', content: 'w' }]), mediaType: 'application/x-weird' }],
      refName: 'v1',
    },
  ]);
  assert.match((await failsCleanly(`${reg.host}/weird:v1`, 'IMAGE_INVALID')).message, /application\/x-weird/);
});

test('an index without the platform asked for is PLATFORM_NOT_FOUND, listing what it has', async () => {
  const files = reg.add('multi', [
    {
      config: { architecture: 'amd64', os: 'linux' },
      layers: [{ tar: await makeTar([{ name: 'p', content: 'amd64' }]) }],
      platform: { os: 'linux', architecture: 'amd64' },
    },
    {
      config: { architecture: 'arm64', os: 'linux' },
      layers: [{ tar: await makeTar([{ name: 'p', content: 'arm64' }]) }],
      platform: { os: 'linux', architecture: 'arm64' },
    },
  ]);
  const index = JSON.parse(files.indexJson.toString()) as { manifests: unknown[] };
  reg.manifests.set('multi:v1', {
    body: Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: index.manifests })),
    type: MT.ociIndex,
  });
  const err = await failsCleanly(`${reg.host}/multi:v1`, 'PLATFORM_NOT_FOUND', { platform: 'linux/s390x' });
  assert.match(err.message, /linux\/amd64, linux\/arm64/);
  const arm = await store.pull(`${reg.host}/multi:v1`, { registry: fast, platform: 'linux/arm64', unpack: false });
  assert.equal(arm.image.architecture, 'arm64');
  assert.equal(arm.image.indexDigest, arm.digest);
});

test('404 is MANIFEST_UNKNOWN; a closed port is REGISTRY_UNREACHABLE; both leave the store alone', async () => {
  await failsCleanly(`${reg.host}/nothing:here`, 'MANIFEST_UNKNOWN');
  const closed = await new FakeRegistry().start();
  await closed.stop();
  const err = await failsCleanly(`${closed.host}/app:v1`, 'REGISTRY_UNREACHABLE');
  assert.match(err.message, /ECONNREFUSED/);
});

test('a 401 with bad credentials is REGISTRY_AUTH_FAILED; good Basic credentials work', async () => {
  reg.basic = `Basic ${Buffer.from('user:good').toString('base64')}`;
  try {
    const err = await failsCleanly(`${reg.host}/app:v1`, 'REGISTRY_AUTH_FAILED', {
      registry: { ...fast, credentials: async () => ({ username: 'user', password: 'bad' }) },
    });
    assert.match(err.message, /rejected the credentials of user/);
    await failsCleanly(`${reg.host}/app:v1`, 'REGISTRY_AUTH_FAILED');
    const ok = await store.pull(`${reg.host}/app:v1`, {
      registry: { ...fast, credentials: async () => ({ username: 'user', password: 'good' }) },
    });
    assert.equal(ok.upToDate, true);
  } finally {
    reg.basic = null;
  }
});

test('5xx answers are retried; redirects to another origin do not carry Authorization', async () => {
  const storage = await new FakeRegistry().start();
  try {
    const { layer } = await freshRepo('redirect', 7);
    storage.blobs = reg.blobs;
    let fails = 2;
    reg.basic = `Basic ${Buffer.from('user:good').toString('base64')}`;
    reg.hook = (req, res) => {
      if (req.url === '/v2/' && fails-- > 0) {
        res.writeHead(503).end();
        return true;
      }
      if (req.url?.endsWith(layer) && req.headers.authorization === reg.basic) {
        res.writeHead(307, { Location: `http://${storage.host}/v2/storage/blobs/${layer}` }).end();
        return true;
      }
      return false;
    };
    await store.pull(`${reg.host}/redirect:v1`, {
      registry: { ...fast, credentials: async () => ({ username: 'user', password: 'good' }) },
    });
    const atStorage = storage.requests.filter((r) => r.url.endsWith(layer));
    assert.equal(atStorage.length, 1);
    assert.equal(atStorage[0]!.headers.authorization, undefined);
  } finally {
    reg.hook = null;
    reg.basic = null;
    await storage.stop();
  }
});

test('unsafe layers (.., absolute path, symlink escape) are LAYER_UNSAFE and leave nothing behind', async () => {
  const cases: [string, Awaited<ReturnType<typeof makeTar>>[]][] = [
    ['dotdot', [await makeTar([{ name: '../escape', content: 'x' }])]],
    ['abs', [await makeTar([{ name: '/etc/evil', content: 'x' }])]],
    [
      'symlink',
      [
        await makeTar([{ name: 'up', type: 'symlink', linkname: '../../../../../tmp' }]),
        await makeTar([{ name: 'up/pwned', content: 'x' }]),
      ],
    ],
  ];
  for (const [repo, tars] of cases) {
    reg.add(repo, [{ config: { architecture: 'amd64', os: 'linux' }, layers: tars.map((tar) => ({ tar })), refName: 'v1' }]);
    await failsCleanly(`${reg.host}/${repo}:v1`, 'LAYER_UNSAFE');
  }
  await assert.rejects(fs.access('/tmp/pwned'));
});

test('tag, remove and prune: a name is untagged, the image goes with its last name, unreferenced blobs and disks go', async () => {
  const name = `${reg.host}/app:v1`;
  const img = await store.tag(name, 'copy:1');
  assert.deepEqual(img.references.sort(), [name, 'localhost/copy:1'].sort());
  await rejectsWith(
    store.remove('copy:1', { inUse: () => true }).then(async (r) => {
      assert.deepEqual(r, { untagged: ['localhost/copy:1'], deleted: null });
      return store.remove(name, { inUse: () => true });
    }),
    'IMAGE_IN_USE',
  );
  const removed = await store.remove(name, { force: true, inUse: () => true });
  assert.equal(removed.deleted, img.id);
  await rejectsWith(store.resolve(name), 'IMAGE_NOT_FOUND');
  assert.equal(
    await fs.access(path.join(state, 'images', 'blobs', 'sha256', img.id.slice(7))).then(
      () => true,
      () => false,
    ),
    false,
  );
  const pruned = await store.prune();
  const left = await store.list();
  for (const i of left) assert.ok(i.references.length > 0);
  assert.ok(pruned.images.length >= 0);
});

test('references, challenges and platforms parse as Docker does', () => {
  assert.equal(remoteReference('alpine').canonical, 'docker.io/library/alpine:latest');
  assert.equal(remoteReference('alpine').host, 'registry-1.docker.io');
  assert.equal(remoteReference('ns/app:1').canonical, 'docker.io/ns/app:1');
  assert.equal(remoteReference('localhost:5000/a/b:t').host, 'localhost:5000');
  assert.equal(remoteReference(`x@sha256:${'a'.repeat(64)}`).canonical, `docker.io/library/x@sha256:${'a'.repeat(64)}`);
  assert.deepEqual(parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"'), {
    scheme: 'bearer',
    params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull' },
  });
  assert.equal(parseChallenge('Basic realm="r"')?.scheme, 'basic');
  assert.deepEqual(parsePlatform('linux/aarch64/v8'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
  const d = (arch: string, variant?: string) => ({
    mediaType: MT.ociManifest,
    digest: sha256Digest(arch + variant),
    size: 1,
    platform: { os: 'linux', architecture: arch, ...(variant ? { variant } : {}) },
  });
  assert.equal(
    selectPlatform([d('arm', 'v7'), d('arm64', 'v8'), d('amd64')], parsePlatform('linux/arm64'), 'x').platform?.architecture,
    'arm64',
  );
  assert.equal(selectPlatform([d('arm', 'v6'), d('arm', 'v7')], parsePlatform('linux/arm/v7'), 'x').platform?.variant, 'v7');
});

test('credentials: Boson file (0600) first, then Docker config.json; logout removes only ours', async () => {
  const dir = await tempDir('boson-creds-test-');
  try {
    const docker = path.join(dir, 'docker');
    await fs.mkdir(docker);
    await fs.writeFile(
      path.join(docker, 'config.json'),
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: Buffer.from('hub:pw').toString('base64') },
          'r.example:5000': { auth: Buffer.from('d:1').toString('base64') },
        },
      }),
    );
    const creds = new CredentialStore({ configDir: path.join(dir, 'boson'), dockerConfigFile: path.join(docker, 'config.json') });
    assert.deepEqual(await creds.get('docker.io'), { username: 'hub', password: 'pw' });
    assert.deepEqual(await creds.get('r.example:5000'), { username: 'd', password: '1' });
    await creds.set('r.example:5000', { username: 'b', password: 'p:w' });
    assert.deepEqual(await creds.get('r.example:5000'), { username: 'b', password: 'p:w' });
    assert.equal((await fs.stat(creds.file)).mode & 0o777, 0o600);
    assert.equal(await creds.remove('r.example:5000'), true);
    assert.deepEqual(await creds.get('r.example:5000'), { username: 'd', password: '1' });
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('gzip, zstd and uncompressed layers are all checked against their diff_ids', async () => {
  for (const c of ['gzip', 'zstd', 'none'] as const) {
    const { files } = await freshRepo(`comp-${c}`, 10 + c.length, c);
    const r = await store.pull(`${reg.host}/comp-${c}:v1`, { registry: fast, unpack: false });
    assert.deepEqual(
      r.image.layers.map((l) => l.diffId),
      files.images[0]!.diffIds,
    );
  }
});

test('two pulls of one blob at once, one download good and one corrupt: only a blob that matches its digest enters the store', async () => {
  const { layer } = await freshRepo('shared-blob', 9, 'none');
  const good = reg.blobs.get(layer)!;
  const bad = Buffer.from(good);
  for (let i = 0; i < bad.length; i += 4096) bad[i] = bad[i]! ^ 0xff;
  const half = good.length >> 1;
  let downloads = 0;
  let secondStarted!: () => void;
  const second = new Promise<void>((r) => (secondStarted = r));
  reg.hook = (req, res) => {
    if (!req.url?.endsWith(`/blobs/${layer}`) || req.method !== 'GET') return false;
    downloads++;
    if (downloads === 1) {
      // The good download stops halfway until the corrupt one has begun (or a while has passed).
      res.writeHead(200, { 'Content-Length': good.length });
      res.write(good.subarray(0, half));
      void Promise.race([second, new Promise((r) => setTimeout(r, 1500))]).then(() => setTimeout(() => res.end(good.subarray(half)), 100));
    } else {
      secondStarted();
      res.writeHead(200, { 'Content-Length': bad.length });
      res.write(bad.subarray(0, 1000));
      setTimeout(() => res.end(bad.subarray(1000)), 600);
    }
    return true;
  };
  const dir = await tempDir('boson-pull-shared-');
  const shared = imageStoreOn(dir);
  try {
    const results = await Promise.allSettled([0, 1].map(() => shared.pull(`${reg.host}/shared-blob:v1`, { registry: fast })));
    const blobs = path.join(dir, 'images', 'blobs', 'sha256');
    for (const name of await fs.readdir(blobs)) {
      assert.equal(sha256Digest(await fs.readFile(path.join(blobs, name))), `sha256:${name}`, `stored blob ${name} matches its name`);
    }
    // The second pull waits for the first one's download of the blob and finds it stored.
    assert.deepEqual(
      results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok')),
      ['ok', 'ok'],
    );
    assert.equal(downloads, 1);
  } finally {
    reg.hook = null;
    await fs.rm(dir, { recursive: true, force: true });
  }
});
