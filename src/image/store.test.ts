import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { writeBusyboxImageLayout, type ImageRecord } from './index.ts';
import { buildOciLayout, makeTar, saveOciLayout, writeOciLayout, type TarEntrySpec } from './oci-writer.ts';
import { imageStoreOn, rejectsWith, snapshot, stateStoreOf, tempDir } from './test-support.ts';

const run = promisify(execFile);
const sha = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');
const CONFIG = {
  architecture: 'amd64',
  os: 'linux',
  created: '2024-05-01T00:00:00Z',
  config: { Cmd: ['sh'], Env: ['A=1'], Labels: { l: 'v' }, Volumes: { '/data': {} } },
};

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await tempDir();
  try {
    await fn(dir);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** Mounts a disk read-only, runs fn on the mount point, unmounts. */
async function withMount(disk: string, fn: (mnt: string) => Promise<void>): Promise<void> {
  const mnt = await tempDir('boson-mnt-');
  try {
    await run('mount', ['-o', 'loop,ro', disk, mnt]);
    try {
      await fn(mnt);
    } finally {
      await run('umount', [mnt]);
    }
  } finally {
    await fs.rm(mnt, { recursive: true, force: true });
  }
}

const L1: TarEntrySpec[] = [
  { name: 'etc/', type: 'directory' },
  { name: 'etc/os-release', content: 'ID=test\n' },
  { name: 'data/', type: 'directory' },
  { name: 'data/old', content: 'old' },
  { name: 'home/', type: 'directory' },
  { name: 'home/user/', type: 'directory', uid: 1000, gid: 1000, mode: 0o700 },
];
const L2: TarEntrySpec[] = [
  { name: 'etc/.wh.os-release' },
  { name: 'data/.wh..wh..opq' },
  { name: 'data/new', content: 'new', mode: 0o640, uid: 33, gid: 33 },
];

async function twoLayerLayout(dir: string, opts: { refName?: string; compression?: 'gzip' | 'none' | 'zstd' } = {}) {
  const [t1, t2] = [await makeTar(L1), await makeTar(L2)];
  const c = opts.compression ?? 'gzip';
  return writeOciLayout(dir, [
    {
      config: CONFIG,
      layers: [
        { tar: t1, compression: c },
        { tar: t2, compression: c },
      ],
      refName: opts.refName ?? 'example.com/test/two:v1',
    },
  ]);
}

async function checkTwoLayerTree(mnt: string): Promise<void> {
  assert.equal(
    await fs.access(path.join(mnt, 'etc/os-release')).then(
      () => true,
      () => false,
    ),
    false,
  );
  assert.deepEqual(await fs.readdir(path.join(mnt, 'data')), ['new']);
  const st = await fs.stat(path.join(mnt, 'data/new'));
  assert.equal(st.uid, 33);
  assert.equal(st.mode & 0o777, 0o640);
  const home = await fs.stat(path.join(mnt, 'home/user'));
  assert.equal(home.uid, 1000);
  assert.equal(home.mode & 0o777, 0o700);
}

test('busybox layout: deterministic, importable, resolvable, root disk cached and mountable', async () => {
  await withDir(async (dir) => {
    const [a, b] = [path.join(dir, 'bb-a'), path.join(dir, 'bb-b')];
    await writeBusyboxImageLayout({ busybox: '/bin/busybox', outDir: a });
    await writeBusyboxImageLayout({ busybox: '/bin/busybox', outDir: b });
    const ia = await fs.readFile(path.join(a, 'index.json'), 'utf8');
    assert.equal(ia, await fs.readFile(path.join(b, 'index.json'), 'utf8'));
    const mtime = (await fs.stat(path.join(a, 'index.json'))).mtimeMs;
    await writeBusyboxImageLayout({ busybox: '/bin/busybox', outDir: a });
    assert.equal((await fs.stat(path.join(a, 'index.json'))).mtimeMs, mtime, 'an up-to-date layout is not rewritten');

    const store = imageStoreOn(path.join(dir, 'state'));
    const phases = new Set<string>();
    const [img] = await store.importPath(a, { onProgress: (e) => phases.add(e.phase) });
    assert.ok(img);
    assert.ok(phases.has('copy') && phases.has('verify'));
    assert.deepEqual(img.references, ['localhost/busybox:latest']);
    assert.equal(img.manifestDigest, (JSON.parse(ia) as { manifests: { digest: string }[] }).manifests[0]!.digest);
    assert.deepEqual(img.config.cmd, ['sh']);
    assert.deepEqual(img.config.env, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
    assert.equal(img.architecture, 'amd64');
    assert.equal(img.os, 'linux');
    assert.equal(img.created, '2024-01-01T00:00:00.000Z');
    assert.equal(img.size, img.layers[0]!.size);
    for (const r of ['busybox', 'busybox:latest', 'localhost/busybox', img.id, img.id.slice(0, 19), img.id.slice(7, 19)]) {
      assert.equal((await store.resolve(r)).id, img.id, r);
    }
    const e = await rejectsWith(store.resolve('busybox:nope'), 'IMAGE_NOT_FOUND');
    assert.match(e.message, /busybox:nope/);
    await rejectsWith(store.resolve('sha256:ffffffffffff'), 'IMAGE_NOT_FOUND');

    const disk = await store.rootDisk(img, { fstype: 'erofs', onProgress: (ev) => phases.add(ev.phase) });
    assert.ok(phases.has('unpack') && phases.has('mkfs'));
    assert.equal(disk.fstype, 'erofs');
    assert.equal(path.dirname(disk.path), path.join(dir, 'state', 'images', 'disks'));
    assert.equal(disk.sizeBytes, (await fs.stat(disk.path)).size);
    const t0 = performance.now();
    const again = await store.rootDisk(await store.resolve('busybox'), { fstype: 'erofs' });
    assert.ok(performance.now() - t0 < 100, 'cached disk is returned fast');
    assert.deepEqual(again, disk);
    assert.deepEqual(await fs.readdir(path.join(dir, 'state', 'images', 'tmp')), [], 'staging and temp files removed');
    await withMount(disk.path, async (mnt) => {
      assert.equal(await fs.readlink(path.join(mnt, 'bin/sh')), 'busybox');
      assert.match(await fs.readFile(path.join(mnt, 'etc/passwd'), 'utf8'), /^root:x:0:0:.*\nnobody:x:65534:65534:/ms);
      assert.equal((await fs.stat(path.join(mnt, 'tmp'))).mode & 0o7777, 0o1777);
      const { stdout } = await run(path.join(mnt, 'bin/busybox'), ['echo', 'hello']);
      assert.equal(stdout, 'hello\n');
    });
  });
});

test('OCI layout with whiteouts: erofs and ext4 disks hold the flattened tree; concurrent builds are safe', async () => {
  await withDir(async (dir) => {
    await twoLayerLayout(path.join(dir, 'layout'));
    const state = path.join(dir, 'state');
    const store = imageStoreOn(state);
    const [img] = await store.importPath(path.join(dir, 'layout'));
    assert.ok(img);
    assert.deepEqual(img.references, ['example.com/test/two:v1']);
    assert.deepEqual(img.config, {
      entrypoint: null,
      cmd: ['sh'],
      env: ['A=1'],
      workingDir: '',
      user: '',
      volumes: ['/data'],
      labels: { l: 'v' },
      exposedPorts: [],
    });
    // Two store objects on one state dir stand in for two processes: they do not share in-process build state.
    const other = imageStoreOn(state);
    const disks = await Promise.all([
      store.rootDisk(img, { fstype: 'ext4' }),
      store.rootDisk(img, { fstype: 'ext4' }),
      other.rootDisk(img, { fstype: 'ext4' }),
      other.rootDisk(img, { fstype: 'ext4' }),
    ]);
    for (const d of disks) assert.equal(d.path, disks[0]!.path);
    assert.deepEqual(await fs.readdir(path.join(state, 'images', 'tmp')), []);
    await withMount(disks[0]!.path, checkTwoLayerTree);
    const erofs = await store.rootDisk(img, { fstype: 'erofs' });
    assert.notEqual(erofs.path, disks[0]!.path);
    await withMount(erofs.path, checkTwoLayerTree);
    const { stdout } = await run('dump.erofs', ['-s', erofs.path]).catch(() => ({ stdout: 'unavailable' }));
    assert.ok(stdout.length > 0);
  });
});

test('the rootfs option chooses the filesystem of the root disks (erofs by default)', () => {
  assert.equal(imageStoreOn('/nonexistent-boson-state').rootfs, 'erofs');
  assert.equal(imageStoreOn('/nonexistent-boson-state', { rootfs: 'ext4' }).rootfs, 'ext4');
});

test('uncompressed and zstd layers import and flatten', async () => {
  await withDir(async (dir) => {
    const store = imageStoreOn(path.join(dir, 'state'));
    for (const c of ['none', 'zstd'] as const) {
      await twoLayerLayout(path.join(dir, c), { compression: c, refName: `two-${c}:latest` });
      const [img] = await store.importPath(path.join(dir, c));
      assert.ok(img);
      assert.ok(img.references.includes(`localhost/two-${c}:latest`)); // same config as the other: same image id
    }
    const img = await store.resolve('two-zstd');
    await withMount((await store.rootDisk(img, { fstype: 'erofs' })).path, checkTwoLayerTree);
  });
});

/** A legacy `docker save` tarball (manifest.json, <config>.json, <id>/layer.tar, repositories). */
async function legacyDockerSave(file: string, opts: { corruptLayer?: boolean; gzip?: boolean } = {}): Promise<string> {
  const tars = [await makeTar(L1), await makeTar(L2)];
  const diffIds = tars.map((t) => `sha256:${sha(t)}`);
  const config = Buffer.from(JSON.stringify({ ...CONFIG, rootfs: { type: 'layers', diff_ids: diffIds } }));
  const configHex = sha(config);
  const ids = tars.map((_, i) => sha(`layer-${i}`));
  if (opts.corruptLayer) tars[1]![600] = tars[1]![600]! ^ 0xff;
  const entries: TarEntrySpec[] = [];
  ids.forEach((id, i) => {
    entries.push({ name: `${id}/`, type: 'directory' }, { name: `${id}/VERSION`, content: '1.0' }, { name: `${id}/json`, content: '{}' });
    entries.push(
      i === 0
        ? { name: `${id}/layer.tar`, content: tars[i]! }
        : { name: `${id}/layer.tar`, type: 'symlink', linkname: `../${ids[0]}/layer.tar` },
    );
  });
  // The second layer is stored under a third directory and reached through the symlink-free path; the symlink
  // form above points at layer 0 and is used by a third manifest entry below to exercise symlink resolution.
  const second = sha('second');
  entries.push({ name: `${second}/`, type: 'directory' }, { name: `${second}/layer.tar`, content: tars[1]! });
  entries.push({ name: `${configHex}.json`, content: config });
  entries.push({
    name: 'manifest.json',
    content: JSON.stringify([
      {
        Config: `${configHex}.json`,
        RepoTags: ['myapp:1.0', 'reg.example.com/team/myapp:1.0'],
        Layers: [`${ids[1]}/layer.tar`, `${second}/layer.tar`],
      },
    ]),
  });
  entries.push({ name: 'repositories', content: JSON.stringify({ myapp: { '1.0': ids[1] } }) });
  const tar = await makeTar(entries);
  await fs.writeFile(file, opts.gzip ? gzipSync(tar) : tar);
  return `sha256:${configHex}`;
}

test('docker save tarball, legacy manifest.json form (plain and gzip), with a symlinked layer', async () => {
  await withDir(async (dir) => {
    const store = imageStoreOn(path.join(dir, 'state'));
    for (const gzip of [false, true]) {
      const file = path.join(dir, `save-${gzip}.tar`);
      const id = await legacyDockerSave(file, { gzip });
      const [img] = await store.importPath(file);
      assert.ok(img);
      assert.equal(img.id, id);
      assert.deepEqual(img.references, ['localhost/myapp:1.0', 'reg.example.com/team/myapp:1.0']);
      assert.equal(img.layers[0]!.mediaType, 'application/vnd.docker.image.rootfs.diff.tar');
    }
    assert.equal((await store.list()).length, 1);
    const img = await store.resolve('myapp:1.0');
    await withMount((await store.rootDisk(img, { fstype: 'ext4' })).path, checkTwoLayerTree);
  });
});

test('docker save tarball, OCI layout form (Docker 25+), named by io.containerd.image.name', async () => {
  await withDir(async (dir) => {
    const files = buildOciLayout([
      {
        config: CONFIG,
        layers: [{ tar: await makeTar(L1), compression: 'none' }],
        annotations: { 'io.containerd.image.name': 'docker.io/library/alpine:3', 'org.opencontainers.image.ref.name': '3' },
      },
    ]);
    const entries: TarEntrySpec[] = [
      { name: 'blobs/', type: 'directory' },
      { name: 'blobs/sha256/', type: 'directory' },
    ];
    for (const [d, b] of files.blobs) entries.push({ name: `blobs/sha256/${d.slice(7)}`, content: b });
    entries.push({ name: 'index.json', content: files.indexJson }, { name: 'oci-layout', content: '{"imageLayoutVersion":"1.0.0"}' });
    entries.push({
      name: 'manifest.json',
      content: JSON.stringify([
        {
          Config: `blobs/sha256/${files.images[0]!.configDigest.slice(7)}`,
          RepoTags: ['alpine:3'],
          Layers: [`blobs/sha256/${files.images[0]!.layerDigests[0]!.slice(7)}`],
        },
      ]),
    });
    await fs.writeFile(path.join(dir, 'save.tar'), await makeTar(entries));
    const store = imageStoreOn(path.join(dir, 'state'));
    const [img] = await store.importPath(path.join(dir, 'save.tar'), { tag: 'mine' });
    assert.ok(img);
    assert.equal(img.manifestDigest, files.images[0]!.manifestDigest);
    assert.deepEqual(img.references, ['docker.io/library/alpine:3', 'localhost/mine:latest']);
    assert.equal((await store.resolve('alpine:3')).id, img.id);
    assert.equal((await store.resolve('mine')).id, img.id);
  });
});

test('an index with several platforms: linux/amd64 is picked', async () => {
  await withDir(async (dir) => {
    const layer = await makeTar(L1);
    await writeOciLayout(path.join(dir, 'multi'), [
      {
        config: { ...CONFIG, architecture: 'arm64' },
        layers: [{ tar: layer }],
        refName: 'multi:1',
        platform: { os: 'linux', architecture: 'arm64' },
      },
      { config: CONFIG, layers: [{ tar: layer }], refName: 'multi:1', platform: { os: 'linux', architecture: 'amd64' } },
    ]);
    const store = imageStoreOn(path.join(dir, 'state'));
    const imgs = await store.importPath(path.join(dir, 'multi'));
    assert.equal(imgs.length, 1);
    assert.equal(imgs[0]!.architecture, 'amd64');
  });
});

/** Imports a good image first, then expects `source` to fail with `code` and the store to be unchanged. */
async function expectImportFails(dir: string, source: string, code: 'IMAGE_CORRUPT' | 'IMAGE_INVALID', mention?: string): Promise<void> {
  const state = path.join(dir, 'state');
  const store = imageStoreOn(state);
  // A different image (no blobs in common with the bad ones: a blob already stored is not read from the source).
  await writeOciLayout(path.join(dir, 'good'), [
    { config: { ...CONFIG, created: 'good' }, layers: [{ tar: await makeTar([{ name: 'good', content: 'good' }]) }], refName: 'good:1' },
  ]);
  await store.importPath(path.join(dir, 'good'));
  const before = await snapshot(state);
  const listBefore = await store.list();
  const err = await rejectsWith(store.importPath(source), code);
  if (mention) assert.ok(err.message.includes(mention), `${err.message} should mention ${mention}`);
  assert.deepEqual(await snapshot(state), before, 'no new blobs, refs or temp files');
  assert.deepEqual(await store.list(), listBefore);
}

test('corrupt, truncated and diff_id-mismatched blobs are IMAGE_CORRUPT and leave the store unchanged', async () => {
  await withDir(async (dir) => {
    const mk = async (name: string): Promise<{ dir: string; blob: string; layer: string }> => {
      const d = path.join(dir, name);
      const [w] = await twoLayerLayout(d, { refName: `bad-${name}` });
      return { dir: d, layer: w!.layerDigests[1]!, blob: path.join(d, 'blobs', 'sha256', w!.layerDigests[1]!.slice(7)) };
    };
    const flipped = await mk('flipped');
    const buf = await fs.readFile(flipped.blob);
    buf[20] = buf[20]! ^ 0x55;
    await fs.writeFile(flipped.blob, buf);
    await expectImportFails(path.join(dir, 's1'), flipped.dir, 'IMAGE_CORRUPT', flipped.layer);

    const truncated = await mk('truncated');
    await fs.truncate(truncated.blob, 10);
    const e1 = path.join(dir, 's2');
    await expectImportFails(e1, truncated.dir, 'IMAGE_CORRUPT', truncated.layer);

    const missing = await mk('missing');
    await fs.rm(missing.blob);
    await expectImportFails(path.join(dir, 's3'), missing.dir, 'IMAGE_CORRUPT', missing.layer);

    // Config claims a different diff_id: blobs all match their descriptors, but the layer content does not.
    const t = await makeTar(L1);
    const dDiff = path.join(dir, 'diffid');
    await writeOciLayout(dDiff, [
      {
        config: { ...CONFIG, rootfs: { type: 'layers', diff_ids: [`sha256:${'0'.repeat(64)}`] } },
        layers: [{ tar: t }],
        refName: 'diffid',
      },
    ]);
    await expectImportFails(path.join(dir, 's4'), dDiff, 'IMAGE_CORRUPT', 'diff_id');

    await legacyDockerSave(path.join(dir, 'bad-save.tar'), { corruptLayer: true });
    await expectImportFails(path.join(dir, 's5'), path.join(dir, 'bad-save.tar'), 'IMAGE_CORRUPT');
  });
});

test('unknown layer media types and malformed sources are IMAGE_INVALID; missing source IMAGE_SOURCE_NOT_FOUND', async () => {
  await withDir(async (dir) => {
    await writeOciLayout(path.join(dir, 'weird'), [
      { config: CONFIG, layers: [{ tar: await makeTar(L1), mediaType: 'application/x-weird' }], refName: 'weird' },
    ]);
    await expectImportFails(path.join(dir, 's1'), path.join(dir, 'weird'), 'IMAGE_INVALID', 'application/x-weird');
    await fs.mkdir(path.join(dir, 'empty'));
    await expectImportFails(path.join(dir, 's2'), path.join(dir, 'empty'), 'IMAGE_INVALID');
    await fs.writeFile(path.join(dir, 'junk.tar'), 'not a tar at all'.repeat(100));
    await expectImportFails(path.join(dir, 's3'), path.join(dir, 'junk.tar'), 'IMAGE_INVALID');
    await rejectsWith(imageStoreOn(path.join(dir, 's4')).importPath(path.join(dir, 'nope')), 'IMAGE_SOURCE_NOT_FOUND');
  });
});

test('resolution: short names, tags, re-tagging moves a name, id prefixes, ambiguous prefix', async () => {
  await withDir(async (dir) => {
    const store = imageStoreOn(path.join(dir, 'state'));
    const layer = await makeTar(L1);
    // Find two configs whose ids share the first hex digit (at most 17 tries by pigeonhole).
    const byFirst = new Map<string, number>();
    let pair: [number, number] | null = null;
    for (let i = 0; pair === null; i++) {
      const files = buildOciLayout([
        { config: { ...CONFIG, config: { Labels: { n: String(i) } } }, layers: [{ tar: layer, compression: 'none' }] },
      ]);
      const first = files.images[0]!.configDigest[7]!;
      const j = byFirst.get(first);
      if (j !== undefined) pair = [j, i];
      else byFirst.set(first, i);
    }
    const imgs: ImageRecord[] = [];
    for (const [k, n] of pair.entries()) {
      const files = buildOciLayout([
        {
          config: { ...CONFIG, config: { Labels: { n: String(n) } } },
          layers: [{ tar: layer, compression: 'none' }],
          refName: k === 0 ? 'app:1' : 'quay.io/org/app:2',
        },
      ]);
      await saveOciLayout(files, path.join(dir, `l${k}`));
      imgs.push((await store.importPath(path.join(dir, `l${k}`)))[0]!);
    }
    const [a, b] = imgs as [ImageRecord, ImageRecord];
    assert.equal((await store.resolve('app:1')).id, a.id);
    assert.equal((await store.resolve('localhost/app:1')).id, a.id);
    await rejectsWith(store.resolve('app'), 'IMAGE_NOT_FOUND'); // app:latest does not exist
    assert.equal((await store.resolve('quay.io/org/app:2')).id, b.id);
    await rejectsWith(store.resolve('org/app:2'), 'IMAGE_NOT_FOUND'); // no registry -> localhost or docker.io only
    await rejectsWith(store.resolve(a.id.slice(7, 8)), 'INVALID_ARGUMENT'); // ambiguous one-digit prefix
    await rejectsWith(store.resolve(`sha256:${a.id.slice(7, 8)}`), 'INVALID_ARGUMENT');
    assert.equal((await store.resolve(a.id.slice(7, 30))).id, a.id);
    assert.equal((await store.resolve(b.id)).id, b.id);
    assert.equal((await store.list()).length, 2);
    // Importing with a tag that already names another image moves the name.
    const [moved] = await store.importPath(path.join(dir, 'l1'), { tag: 'app:1' });
    assert.deepEqual(moved!.references, ['localhost/app:1', 'quay.io/org/app:2']);
    assert.equal((await store.resolve('app:1')).id, b.id);
    assert.deepEqual((await store.resolve(a.id)).references, []);
    await rejectsWith(store.importPath(path.join(dir, 'l1'), { tag: 'Bad Tag' }), 'INVALID_ARGUMENT');
  });
});

test('rootDisk on an image with an unsafe layer: LAYER_UNSAFE, staging removed, nothing outside written', async () => {
  await withDir(async (dir) => {
    const evil = await makeTar([
      { name: 'evil', type: 'symlink', linkname: '../../../../../../../..' },
      { name: 'evil/tmp/boson-pwned', content: 'x' },
    ]);
    await writeOciLayout(path.join(dir, 'evil'), [{ config: CONFIG, layers: [{ tar: evil }], refName: 'evil' }]);
    const store = imageStoreOn(path.join(dir, 'state'));
    const [img] = await store.importPath(path.join(dir, 'evil'));
    await rejectsWith(store.rootDisk(img!, { fstype: 'erofs' }), 'LAYER_UNSAFE');
    assert.deepEqual(await fs.readdir(path.join(dir, 'state', 'images', 'tmp')), []);
    assert.deepEqual(await fs.readdir(path.join(dir, 'state', 'images', 'disks')), []);
    assert.equal(
      await fs.access('/tmp/boson-pwned').then(
        () => true,
        () => false,
      ),
      false,
    );
  });
});

test('sweepStale removes temporaries of dead processes only', async () => {
  await withDir(async (dir) => {
    const store = imageStoreOn(path.join(dir, 'state'));
    const tmp = path.join(dir, 'state', 'images', 'tmp');
    await fs.mkdir(tmp, { recursive: true });
    const pidMax = Number((await fs.readFile('/proc/sys/kernel/pid_max', 'utf8')).trim());
    const dead = `stage-${pidMax + 1}-abcdef`;
    const mine = `stage-${process.pid}-abcdef`;
    await fs.mkdir(path.join(tmp, dead));
    await fs.writeFile(path.join(tmp, dead, 'f'), 'x');
    await fs.writeFile(path.join(tmp, `disk-${pidMax + 2}-0123.erofs`), 'x');
    await fs.mkdir(path.join(tmp, mine));
    await fs.writeFile(path.join(dir, 'state', 'images', 'index.json.lock'), String(pidMax + 3));
    const removed = await store.sweepStale();
    assert.deepEqual(removed.sort(), [dead, `disk-${pidMax + 2}-0123.erofs`, 'index.json.lock'].sort());
    assert.deepEqual(await fs.readdir(tmp), [mine]);
  });
});

test('an image index.json from before the state store is imported once and removed', async () => {
  await withDir(async (dir) => {
    const state = path.join(dir, 'state');
    const id = `sha256:${'a'.repeat(64)}`;
    const image = {
      id,
      manifestDigest: `sha256:${'b'.repeat(64)}`,
      layers: [],
      size: 0,
      created: null,
      architecture: 'amd64',
      os: 'linux',
      config: { entrypoint: null, cmd: ['sh'], env: [], workingDir: '', user: '', volumes: [], labels: {}, exposedPorts: [] },
    };
    await fs.mkdir(path.join(state, 'images'), { recursive: true });
    await fs.writeFile(
      path.join(state, 'images', 'index.json'),
      JSON.stringify({ version: 1, images: { [id]: image }, refs: { 'localhost/old:1': id, 'docker.io/library/old:2': id } }),
    );
    const store = imageStoreOn(state);
    assert.deepEqual(await store.list(), [{ ...image, references: ['docker.io/library/old:2', 'localhost/old:1'] }]);
    assert.equal((await store.resolve('old:1')).id, id);
    await assert.rejects(fs.access(path.join(state, 'images', 'index.json')), 'the old index is gone');
    assert.deepEqual(
      stateStoreOf(state)
        .list('image')
        .map((r) => r.key),
      [id],
    );
    assert.deepEqual(
      stateStoreOf(state)
        .list('image-ref')
        .map((r) => [r.key, r.value]),
      [
        ['docker.io/library/old:2', { id }],
        ['localhost/old:1', { id }],
      ],
    );
    await store.tag('old:1', 'old:3');
    assert.deepEqual((await imageStoreOn(state).resolve('old:3')).references, [
      'docker.io/library/old:2',
      'localhost/old:1',
      'localhost/old:3',
    ]);
  });
});
