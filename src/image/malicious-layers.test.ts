/**
 * Malicious layers (issue 12, part 4): whatever a layer holds, flattening and building a root disk change nothing
 * outside the staging tree and the store, the staging tree is never reachable by other users of the host, the image
 * never sets the mode or owner of a host directory we made, and decompression bombs are refused.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { isBosonError } from '../common/index.ts';
import { uncompressedLayer } from './compression.ts';
import { flattenLayers, type LayerInput } from './flatten.ts';
import { makeTar, paxData, writeOciLayout, type TarEntrySpec } from './oci-writer.ts';
import { imageStoreOn, rejectsWith, tempDir } from './test-support.ts';

const run = promisify(execFile);
const T0 = new Date('2001-01-01T00:00:00Z');
const T1 = new Date('2020-01-02T03:04:05Z');
const CONFIG = { architecture: 'amd64', os: 'linux', config: { Cmd: ['sh'] } };

async function layers(...specs: TarEntrySpec[][]): Promise<LayerInput[]> {
  const tars = await Promise.all(specs.map((s) => makeTar(s)));
  return tars.map((t, i) => ({ name: `L${i + 1}`, open: () => Readable.from([t]) }));
}

const exists = (p: string): Promise<boolean> =>
  fs.lstat(p).then(
    () => true,
    () => false,
  );

/** Every path under `dir` with type, mode, owner, size and mtime (a stricter fingerprint than test-support's). */
async function fingerprint(dir: string, skip: (rel: string) => boolean = () => false): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const name of await fs.readdir(d).catch(() => [] as string[])) {
      const p = path.join(d, name);
      const rel = path.relative(dir, p);
      if (skip(rel)) continue;
      const st = await fs.lstat(p);
      out.push(`${rel} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.isDirectory() ? '-' : st.size} ${st.mtimeMs}`);
      if (st.isDirectory()) await walk(p);
    }
  };
  const st = await fs.lstat(dir);
  out.push(`. ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.mtimeMs}`);
  await walk(dir);
  return out.sort();
}

/**
 * True when a user other than root (in no group of ours) can reach `p`: every directory from / to its parent lets
 * others search it. A directory owned by root without search bits for group and others stops everyone else.
 */
function reachableByOthers(p: string): boolean {
  for (let d = path.dirname(p); ; d = path.dirname(d)) {
    const st = fsSync.statSync(d);
    if (st.uid === 0 && (st.mode & 0o011) === 0) return false;
    if ((st.mode & 0o001) === 0) return false;
    if (d === '/') return true;
  }
}

test('deferred directory mtimes never follow a symlink that a later layer put in place of a directory', async () => {
  const base = await tempDir();
  const canary = path.join('/tmp', `boson-canary-${randomBytes(6).toString('hex')}`);
  try {
    await fs.mkdir(path.join(canary, 'b', 'c'), { recursive: true });
    await fs.utimes(path.join(canary, 'b', 'c'), T0, T0);
    await fs.utimes(path.join(canary, 'b'), T0, T0);
    await fs.utimes(canary, T0, T0);
    const before = await fingerprint(canary);
    const root = path.join(base, 'root');
    await fs.mkdir(root);
    // L1 declares a/b and a/b/c (mtimes deferred to the end); L2 replaces a by a link to the host's canary.
    await flattenLayers(
      await layers(
        [
          { name: 'a/', type: 'directory', mtime: T1 },
          { name: 'a/b/', type: 'directory', mtime: T1 },
          { name: 'a/b/c/', type: 'directory', mtime: T1 },
        ],
        [{ name: 'a', type: 'symlink', linkname: canary }],
      ),
      root,
    );
    assert.ok((await fs.lstat(path.join(root, 'a'))).isSymbolicLink());
    assert.deepEqual(await fingerprint(canary), before, 'the host directory behind the link was not touched');
  } finally {
    await fs.rm(base, { recursive: true, force: true });
    await fs.rm(canary, { recursive: true, force: true });
  }
});

test("the image's ./ entry never sets the mode or owner of the directory flattening was given", async () => {
  const base = await tempDir();
  try {
    const root = path.join(base, 'root');
    await fs.mkdir(root, { mode: 0o700 });
    let during: { mode: number; uid: number } | null = null;
    const ls = await layers(
      [
        { name: './', type: 'directory', mode: 0o777, uid: 1000, gid: 1000, mtime: T1 },
        { name: 'f', content: 'x' },
      ],
      [{ name: 'g', content: 'y' }],
    );
    await flattenLayers(ls, root, {
      onProgress: (e) => {
        // Synchronously, at that moment: an asynchronous stat could land after the last layer (and see the end state).
        if (e.phase === 'unpack' && e.current === 2 && during === null) {
          const st = fsSync.statSync(root);
          during = { mode: st.mode & 0o7777, uid: st.uid };
        }
      },
    });
    assert.deepEqual(during, { mode: 0o700, uid: 0 }, 'while layers are applied, the root stays 0700 and root-owned');
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});

/** A layer corpus: each case is applied to a fresh root next to a canary; it may fail (with a typed error) or not. */
const EVIL = `/tmp/boson-evil-${randomBytes(6).toString('hex')}`;
const CORPUS: Record<string, TarEntrySpec[][]> = {
  'dot-dot': [[{ name: '../canary/pwned', content: 'x' }]],
  'dot-dot deep': [[{ name: 'a/../../../canary/pwned', content: 'x' }]],
  absolute: [[{ name: `${EVIL}/pwned`, content: 'x' }]],
  'absolute symlink, then a file through it': [
    [
      { name: 'l', type: 'symlink', linkname: EVIL },
      { name: 'l/pwned', content: 'x' },
    ],
  ],
  'relative symlink up, then a file through it': [
    [
      { name: 'l', type: 'symlink', linkname: '../../canary' },
      { name: 'l/pwned', content: 'x' },
    ],
  ],
  'symlink up, then a directory, a whiteout and an opaque dir through it': [
    [{ name: 'l', type: 'symlink', linkname: '../../canary' }],
    [{ name: 'l/d/', type: 'directory', mode: 0o777 }, { name: 'l/.wh.keep' }, { name: 'l/.wh..wh..opq' }],
  ],
  'looping symlinks': [
    [
      { name: 'loop', type: 'symlink', linkname: 'loop' },
      { name: 'loop/x', content: 'x' },
    ],
  ],
  'symlink ping-pong': [
    [
      { name: 'a', type: 'symlink', linkname: 'b' },
      { name: 'b', type: 'symlink', linkname: 'a/c' },
      { name: 'a/x', content: 'x' },
    ],
  ],
  'hard link out of the root': [[{ name: 'h', type: 'link', linkname: '../../canary/keep' }]],
  'hard link to an absolute host path': [[{ name: 'h', type: 'link', linkname: '/etc/passwd' }]],
  'hard link through an escaping symlink': [
    [
      { name: 'l', type: 'symlink', linkname: '../../canary' },
      { name: 'h', type: 'link', linkname: 'l/keep' },
    ],
  ],
  'device nodes and a setuid file': [
    [
      { name: 'dev/', type: 'directory' },
      { name: 'dev/mem', type: 'character-device', devmajor: 1, devminor: 1, mode: 0o666 },
      { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o666 },
      { name: 'bin/', type: 'directory' },
      { name: 'bin/rootshell', content: '#!', mode: 0o6777 },
    ],
  ],
  'device node through an escaping symlink': [
    [
      { name: 'l', type: 'symlink', linkname: '../../canary' },
      { name: 'l/null', type: 'character-device', devmajor: 1, devminor: 3 },
    ],
  ],
  'huge PAX header': [[{ name: 'f', content: 'x', pax: { comment: Buffer.alloc(6 * 1024 * 1024, 0x61) } }]],
  'file over an absolute symlink of the previous layer': [
    [{ name: 'etc', type: 'symlink', linkname: EVIL }],
    [{ name: 'etc/passwd', content: 'x' }],
  ],
  'directory replaced by a symlink between layers, deferred mtimes': [
    [
      { name: 'a/', type: 'directory', mtime: T1 },
      { name: 'a/keep/', type: 'directory', mtime: T1 },
    ],
    [{ name: 'a', type: 'symlink', linkname: '../../canary' }],
    [{ name: 'b', type: 'symlink', linkname: EVIL }],
  ],
  'root entry with a hostile mode': [
    [
      { name: './', type: 'directory', mode: 0o7777, uid: 1234, gid: 1234 },
      { name: '.', type: 'directory', mode: 0o777 },
    ],
  ],
};

test('a malicious layer corpus changes nothing outside the staging tree', async () => {
  // PAX records are written by oci-writer; the huge one is checked to be big enough to hit tar-stream's limit.
  assert.ok(paxData({ comment: Buffer.alloc(6 * 1024 * 1024) }).length > 4 * 1024 * 1024);
  for (const [name, specs] of Object.entries(CORPUS)) {
    const base = await tempDir();
    try {
      const canary = path.join(base, 'canary');
      await fs.mkdir(path.join(canary, 'keep'), { recursive: true });
      await fs.writeFile(path.join(canary, 'keep', 'file'), 'canary');
      for (const p of [path.join(canary, 'keep', 'file'), path.join(canary, 'keep'), canary]) await fs.utimes(p, T0, T0);
      const stages = path.join(base, 'stages');
      const root = path.join(stages, 'root');
      await fs.mkdir(root, { recursive: true, mode: 0o700 });
      const outside = (rel: string): boolean => rel === 'stages/root' || rel.startsWith('stages/root/');
      const before = await fingerprint(base, outside);
      const passwd = await fingerprint('/etc/passwd');
      try {
        await flattenLayers(await layers(...specs), root);
      } catch (err) {
        assert.ok(
          isBosonError(err) && ['LAYER_UNSAFE', 'IMAGE_CORRUPT', 'IMAGE_INVALID'].includes(err.code),
          `${name}: unexpected ${String(err)}`,
        );
      }
      assert.deepEqual(await fingerprint(base, outside), before, `${name}: nothing outside the root changed`);
      assert.deepEqual(await fingerprint('/etc/passwd'), passwd, `${name}: /etc/passwd untouched`);
      assert.equal(await exists(EVIL), false, `${name}: ${EVIL} not created`);
    } finally {
      await fs.rm(base, { recursive: true, force: true });
    }
  }
});

test('a store that stages in its own directory keeps the tree private; the image root metadata is on the disk only', async (t) => {
  const base = await tempDir();
  const saved = { umask: process.umask(0o022) };
  t.after(async () => {
    process.umask(saved.umask);
    await fs.rm(base, { recursive: true, force: true });
  });
  // A state directory others may traverse (as a library user's, or one an older Boson made).
  await fs.chmod(base, 0o755);
  const tar = await makeTar([
    { name: './', type: 'directory', mode: 0o777, uid: 1000, gid: 1000 },
    { name: 'bin/', type: 'directory' },
    { name: 'bin/rootshell', content: '#!', mode: 0o4755 },
    { name: 'dev/', type: 'directory' },
    { name: 'dev/mem', type: 'character-device', devmajor: 1, devminor: 1, mode: 0o666 },
  ]);
  await writeOciLayout(path.join(base, 'layout'), [{ config: CONFIG, layers: [{ tar }], refName: 'evil' }]);
  const store = imageStoreOn(path.join(base, 'state'), { stagingDir: 'store' });
  const [img] = await store.importPath(path.join(base, 'layout'));
  const tmp = path.join(base, 'state', 'images', 'tmp');
  let seen: { stage: { mode: number; uid: number }; parent: { mode: number; uid: number }; setuid: boolean; device: boolean } | null = null;
  const disk = await store.rootDisk(img!, {
    fstype: 'erofs',
    // Synchronous: the tree is removed as soon as mkfs is done.
    onProgress: (e) => {
      if (e.phase !== 'mkfs') return;
      const names = fsSync.readdirSync(tmp).filter((n) => n.startsWith('stage-'));
      assert.equal(names.length, 1, `one staging tree in ${tmp}: ${names.join(', ')}`);
      const stage = path.join(tmp, names[0]!);
      const [s, p] = [fsSync.lstatSync(stage), fsSync.lstatSync(tmp)];
      const find = (rel: string): string => {
        for (const cand of [path.join(stage, rel), path.join(stage, 'rootfs', rel)]) if (fsSync.existsSync(cand)) return cand;
        throw new Error(`${rel} not in ${stage}`);
      };
      seen = {
        stage: { mode: s.mode & 0o7777, uid: s.uid },
        parent: { mode: p.mode & 0o7777, uid: p.uid },
        setuid: reachableByOthers(find('bin/rootshell')),
        device: reachableByOthers(find('dev/mem')),
      };
    },
  });
  assert.ok(seen, 'mkfs ran');
  assert.deepEqual(seen, { stage: { mode: 0o700, uid: 0 }, parent: { mode: 0o700, uid: 0 }, setuid: false, device: false });
  // The disk's root carries the image's ./ metadata.
  const mnt = await tempDir('boson-mnt-');
  try {
    await run('mount', ['-o', 'loop,ro', disk.path, mnt]);
    try {
      const st = await fs.stat(mnt);
      assert.deepEqual([st.mode & 0o7777, st.uid, st.gid], [0o777, 1000, 1000]);
      assert.equal((await fs.stat(path.join(mnt, 'bin/rootshell'))).mode & 0o7777, 0o4755);
    } finally {
      await run('umount', [mnt]);
    }
  } finally {
    await fs.rm(mnt, { recursive: true, force: true });
  }
});

test('decompression bombs and oversized layers are refused with LAYER_UNSAFE', async () => {
  const zeros = gzipSync(Buffer.alloc(32 * 1024 * 1024)); // ~32 KiB: a ratio of ~1000
  const drain = async (r: Readable): Promise<number> => {
    let n = 0;
    for await (const c of r) n += (c as Buffer).length;
    return n;
  };
  const gz = 'application/vnd.oci.image.layer.v1.tar+gzip';
  const e1 = await rejectsWith(
    drain(
      uncompressedLayer(gz, Readable.from([zeros]), {
        compressedSize: zeros.length,
        limits: { maxBytes: 2 ** 40, maxRatio: 100, ratioFloorBytes: 1 << 20 },
      }),
    ),
    'LAYER_UNSAFE',
  );
  assert.match(e1.message, /more than 100 times/);
  const e2 = await rejectsWith(
    drain(
      uncompressedLayer(gz, Readable.from([zeros]), {
        compressedSize: zeros.length,
        limits: { maxBytes: 4 << 20, maxRatio: 10000, ratioFloorBytes: 0 },
      }),
    ),
    'LAYER_UNSAFE',
  );
  assert.match(e2.message, /more than 4 MiB/);
  // An uncompressed layer is capped too.
  await rejectsWith(
    drain(
      uncompressedLayer('application/vnd.oci.image.layer.v1.tar', Readable.from([Buffer.alloc(8 << 20)]), {
        compressedSize: 8 << 20,
        limits: { maxBytes: 4 << 20, maxRatio: 100, ratioFloorBytes: 0 },
      }),
    ),
    'LAYER_UNSAFE',
  );
  // Under the limits: everything comes through.
  assert.equal(
    await drain(
      uncompressedLayer(gz, Readable.from([zeros]), {
        compressedSize: zeros.length,
        limits: { maxBytes: 2 ** 40, maxRatio: 100, ratioFloorBytes: 64 << 20 },
      }),
    ),
    32 * 1024 * 1024,
  );
});

test('a store refuses a gzip bomb layer at import and while building a disk, and keeps nothing', async () => {
  const base = await tempDir();
  try {
    const tar = await makeTar([{ name: 'zeros', content: Buffer.alloc(24 * 1024 * 1024) }]);
    await writeOciLayout(path.join(base, 'layout'), [{ config: CONFIG, layers: [{ tar, compression: 'gzip' }], refName: 'bomb' }]);
    const state = path.join(base, 'state');
    const store = imageStoreOn(state, { layerLimits: { maxBytes: 2 ** 40, maxRatio: 100, ratioFloorBytes: 1 << 20 } });
    const e = await rejectsWith(store.importPath(path.join(base, 'layout')), 'LAYER_UNSAFE');
    assert.match(e.message, /layout.*layer 1.*decompression bomb/);
    assert.deepEqual(await fs.readdir(path.join(state, 'images', 'tmp')), []);
    assert.deepEqual(await store.list(), []);
    // Imported by a store with the default limits, then built by one with the strict limits.
    const [img] = await imageStoreOn(state).importPath(path.join(base, 'layout'));
    await rejectsWith(store.rootDisk(img!, { fstype: 'erofs' }), 'LAYER_UNSAFE');
    assert.deepEqual(await fs.readdir(path.join(state, 'images', 'tmp')), []);
    assert.deepEqual(await fs.readdir(path.join(state, 'images', 'disks')), []);
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
});
