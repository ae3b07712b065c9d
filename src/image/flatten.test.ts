import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { flattenLayers, type LayerInput } from './flatten.ts';
import { makeTar, type TarEntrySpec } from './oci-writer.ts';
import { rejectsWith, snapshot, tempDir } from './test-support.ts';

const T1 = new Date('2020-01-02T03:04:05Z');
const T2 = new Date('2021-06-07T08:09:10Z');

async function layers(...specs: TarEntrySpec[][]): Promise<LayerInput[]> {
  const tars = await Promise.all(specs.map((s) => makeTar(s)));
  return tars.map((t, i) => ({ name: `L${i + 1}`, open: () => Readable.from([t]) }));
}

const exists = (p: string): Promise<boolean> =>
  fs.lstat(p).then(
    () => true,
    () => false,
  );

test('three layers: whiteouts, opaque dirs, hardlinks, symlinks, modes, ownership, special files', async () => {
  const dir = await tempDir();
  try {
    const root = path.join(dir, 'root');
    await fs.mkdir(root);
    const ls = await layers(
      [
        { name: 'a/', type: 'directory', mtime: T1 },
        { name: 'a/b/', type: 'directory', mode: 0o750, uid: 1000, gid: 1001, mtime: T1 },
        { name: 'a/b/f1', content: 'one', mode: 0o640, uid: 1000, gid: 1001, mtime: T1 },
        { name: 'a/keep', content: 'lower' },
        { name: 'd/', type: 'directory' },
        { name: 'd/x', content: 'x' },
        { name: 'd/sub/', type: 'directory' },
        { name: 'd/sub/y', content: 'y' },
        { name: 'e/', type: 'directory' },
        { name: 'e/old', content: 'old' },
        { name: 'rmdir/', type: 'directory' },
        { name: 'rmdir/inner', content: 'i' },
        { name: 'r', content: 'file then dir' },
        { name: 'hl-src', content: 'shared', mode: 0o600, uid: 7, gid: 8 },
        { name: 'hl', type: 'link', linkname: 'hl-src' },
        { name: 's', type: 'symlink', linkname: 'a/b/f1', uid: 5, gid: 6, mtime: T1 },
        { name: 'lnk', type: 'symlink', linkname: 'a/b' },
        { name: 'abs', type: 'symlink', linkname: '/a' },
        { name: 'bin/', type: 'directory' },
        { name: 'bin/su', content: '#!', mode: 0o4755 },
        { name: 'tmp/', type: 'directory', mode: 0o1777 },
        { name: 'dev/', type: 'directory' },
        { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
        { name: 'dev/fifo', type: 'fifo', mode: 0o644 },
        { name: './noparent/deep/file', content: 'implicit parents' },
      ],
      [
        { name: 'a/.wh.keep', content: '' },
        { name: 'd/', type: 'directory' },
        { name: 'd/.wh..wh..opq', content: '' },
        { name: 'd/new', content: 'new' },
        { name: '.wh.rmdir', content: '' },
        { name: 'later', content: 'gone in L3' },
        { name: 'lnk/through', content: 'via relative link', mtime: T2 },
        { name: 'abs/b/abs-through', content: 'via absolute link' },
        { name: '.wh.does-not-exist', content: '' },
      ],
      [
        { name: '.wh.later', content: '' },
        { name: 'e/', type: 'directory', mode: 0o711, mtime: T2 },
        { name: 'e/new', content: 'n' },
        { name: 'e/.wh..wh..opq', content: '' }, // opaque marker after this layer's own entries
        { name: 'f3', content: 'same-layer whiteout does not hide it' },
        { name: '.wh.f3', content: '' },
        { name: 'r/', type: 'directory' },
        { name: 'r/inner', content: 'dir now' },
        { name: 's', type: 'symlink', linkname: '/a/b/f1' },
        { name: 'a/b/f1', content: 'ONE!', mode: 0o604, uid: 1000, gid: 1001, mtime: T2 },
      ],
    );
    const stats = await flattenLayers(ls, root);
    assert.ok(stats.whiteouts >= 6);
    const rel = await snapshot(root);
    assert.deepEqual(rel, [
      'a d',
      'a/b d',
      'a/b/abs-through 17',
      'a/b/f1 4',
      'a/b/through 17',
      'abs l',
      'bin d',
      'bin/su 2',
      'd d',
      'd/new 3',
      'dev d',
      'dev/fifo 0',
      'dev/null 0',
      'e d',
      'e/new 1',
      'f3 36',
      'hl 6',
      'hl-src 6',
      'lnk l',
      'noparent d',
      'noparent/deep d',
      'noparent/deep/file 16',
      'r d',
      'r/inner 7',
      's l',
      'tmp d',
    ]);
    const st = async (p: string) => fs.lstat(path.join(root, p));
    const f1 = await st('a/b/f1');
    assert.equal(f1.mode & 0o7777, 0o604);
    assert.equal(f1.uid, 1000);
    assert.equal(f1.gid, 1001);
    assert.equal(f1.mtimeMs, T2.getTime());
    assert.equal(await fs.readFile(path.join(root, 'a/b/f1'), 'utf8'), 'ONE!');
    const b = await st('a/b');
    assert.equal(b.mode & 0o7777, 0o750);
    assert.equal(b.uid, 1000);
    assert.equal(b.mtimeMs, T1.getTime(), 'directory mtime survives children being added later');
    assert.equal((await st('e')).mode & 0o7777, 0o711);
    assert.equal((await st('bin/su')).mode & 0o7777, 0o4755);
    assert.equal((await st('tmp')).mode & 0o7777, 0o1777);
    const [src, hl] = [await st('hl-src'), await st('hl')];
    assert.equal(src.ino, hl.ino);
    assert.equal(src.nlink, 2);
    assert.equal(src.uid, 7);
    assert.equal(src.mode & 0o7777, 0o600);
    assert.equal(await fs.readlink(path.join(root, 's')), '/a/b/f1');
    assert.equal(await fs.readlink(path.join(root, 'lnk')), 'a/b');
    const s = await st('lnk');
    assert.ok(s.isSymbolicLink());
    const dn = await st('dev/null');
    assert.ok(dn.isCharacterDevice());
    assert.equal(dn.rdev, (1 << 8) | 3);
    assert.equal(dn.mode & 0o777, 0o666);
    assert.ok((await st('dev/fifo')).isFIFO());
    assert.equal((await st('a/b/through')).mtimeMs, T2.getTime());
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('opaque directory with a lower-layer subdirectory that this layer re-adds keeps only this layer', async () => {
  const dir = await tempDir();
  try {
    const ls = await layers(
      [
        { name: 'o/', type: 'directory' },
        { name: 'o/sub/', type: 'directory' },
        { name: 'o/sub/lower', content: 'l' },
        { name: 'o/lower2', content: 'l' },
      ],
      [{ name: 'o/.wh..wh..opq' }, { name: 'o/sub/', type: 'directory' }, { name: 'o/sub/upper', content: 'u' }],
      [{ name: 'o/sub/.wh.upper' }, { name: 'o/top', content: 't' }],
    );
    await flattenLayers(ls, dir);
    assert.deepEqual(await snapshot(dir), ['o d', 'o/sub d', 'o/top 1']);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

/** Runs `specs` into <base>/a/b/c/root and checks LAYER_UNSAFE and that nothing appeared or vanished outside. */
async function expectUnsafe(...specs: TarEntrySpec[][]): Promise<void> {
  const base = await tempDir();
  try {
    const root = path.join(base, 'a', 'b', 'c', 'root');
    await fs.mkdir(root, { recursive: true });
    await fs.writeFile(path.join(base, 'x'), 'outside');
    await fs.writeFile(path.join(base, 'a', 'x'), 'outside');
    const before = await snapshot(base);
    await rejectsWith(flattenLayers(await layers(...specs), root), 'LAYER_UNSAFE');
    const after = (await snapshot(base)).filter((p) => !p.startsWith('a/b/c/root/'));
    assert.deepEqual(
      after,
      before.filter((p) => !p.startsWith('a/b/c/root/')),
    );
    assert.equal(await fs.readFile(path.join(base, 'x'), 'utf8'), 'outside');
    assert.equal(await exists('/evil-boson-test'), false);
  } finally {
    await fs.rm(base, { recursive: true, force: true });
  }
}

test('unsafe entry names are refused: "..", absolute, escaping', async () => {
  await expectUnsafe([{ name: '../x', content: 'pwned' }]);
  await expectUnsafe([{ name: '../../../../x', content: 'pwned' }]);
  await expectUnsafe([{ name: 'ok/../../x', content: 'pwned' }]);
  await expectUnsafe([{ name: '/evil-boson-test', content: 'pwned' }]);
});

test('writing through a symlink that leads outside the root is refused', async () => {
  await expectUnsafe([
    { name: 'evil', type: 'symlink', linkname: '../../..' },
    { name: 'evil/x', content: 'pwned' },
  ]);
  await expectUnsafe([
    { name: 'evil', type: 'symlink', linkname: '/../..' },
    { name: 'evil/x', content: 'pwned' },
  ]);
  await expectUnsafe([{ name: 'evil', type: 'symlink', linkname: '../..' }], [{ name: 'evil/a/x', content: 'pwned' }]);
  // chains: a relative link to a link that escapes
  await expectUnsafe([
    { name: 'up', type: 'symlink', linkname: '..' },
    { name: 'hop', type: 'symlink', linkname: 'up/x' },
    { name: 'hop/y', content: 'p' },
  ]);
  // a whiteout through an escaping link must not delete outside files
  await expectUnsafe([{ name: 'evil', type: 'symlink', linkname: '../../../..' }], [{ name: 'evil/.wh.x' }]);
  await expectUnsafe([{ name: 'evil', type: 'symlink', linkname: '../../../..' }], [{ name: 'evil/.wh..wh..opq' }]);
});

test('hard links to outside the root are refused', async () => {
  await expectUnsafe([{ name: 'h', type: 'link', linkname: '../../../../x' }]);
  await expectUnsafe([{ name: 'h', type: 'link', linkname: '/etc/passwd' }]);
  await expectUnsafe([
    { name: 'esc', type: 'symlink', linkname: '../../..' },
    { name: 'h', type: 'link', linkname: 'esc/x' },
  ]);
});

test('symlinks that stay inside the root are followed, never the host', async () => {
  const dir = await tempDir();
  try {
    const root = path.join(dir, 'root');
    await fs.mkdir(root);
    // "/etc" inside the image is root/etc, not the host's /etc; ".." at the root of a link target stays harmless only
    // when it does not leave the root.
    await flattenLayers(
      await layers([
        { name: 'etc/', type: 'directory' },
        { name: 'hostetc', type: 'symlink', linkname: '/etc' },
        { name: 'hostetc/boson-flatten-test', content: 'inside' },
        { name: 'x/', type: 'directory' },
        { name: 'x/up', type: 'symlink', linkname: '../etc' },
        { name: 'x/up/second', content: 'inside too' },
        { name: 'etc/passwd', type: 'symlink', linkname: '/nonexistent' },
        { name: 'etc/passwd', content: 'replaces the link, does not follow it' },
      ]),
      root,
    );
    assert.equal(await exists('/etc/boson-flatten-test'), false);
    assert.equal(await fs.readFile(path.join(root, 'etc/boson-flatten-test'), 'utf8'), 'inside');
    assert.equal(await fs.readFile(path.join(root, 'etc/second'), 'utf8'), 'inside too');
    assert.ok((await fs.lstat(path.join(root, 'etc/passwd'))).isFile());
    assert.equal(await exists('/nonexistent'), false);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

/** `p`'s extended attributes (its own, not a symlink target's): name -> hex value. */
function xattrsOf(p: string): Record<string, string> {
  const out: Record<string, string> = {};
  const text = execFileSync('getfattr', ['-h', '--absolute-names', '-d', '-m', '-', '-e', 'hex', p], { encoding: 'utf8' });
  for (const line of text.split('\n')) {
    const m = /^([^#=][^=]*)=0x([0-9a-f]*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/** security.capability v2 with the effective flag: permitted = `bits` (first 32 capabilities). */
export function capability(bits: number): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt32LE(0x02000001, 0);
  b.writeUInt32LE(bits, 4);
  return b;
}

test('extended attributes: binary values byte for byte, LIBARCHIVE records, replaced files, overlay metadata skipped', async () => {
  const dir = await tempDir();
  try {
    // cap_net_bind_service (10), cap_setuid (7), cap_setgid (6): 0x4c0, so the value has a byte 0xc0
    const cap = capability((1 << 10) | (1 << 7) | (1 << 6));
    const odd = 'odd name\nwith=\\ and é';
    const progress: string[] = [];
    const ls = await layers(
      [
        { name: 'x/', type: 'directory', pax: { 'SCHILY.xattr.user.dir': '1' } },
        { name: 'bin/', type: 'directory' },
        {
          name: 'bin/ping',
          content: 'ping',
          mode: 0o4755,
          uid: 3,
          gid: 4,
          pax: { 'SCHILY.xattr.security.capability': cap, 'SCHILY.xattr.user.boson': 'hello' },
        },
        { name: 'lib', content: 'lib', pax: { 'LIBARCHIVE.xattr.user.lib%3Dx': Buffer.from([0x62, 0, 0xff, 0x80]).toString('base64') } },
        { name: 'old', content: 'old', pax: { 'SCHILY.xattr.user.old': 'old' } },
        { name: 'ov/', type: 'directory', pax: { 'SCHILY.xattr.trusted.overlay.opaque': 'y', 'SCHILY.xattr.trusted.boson': 't' } },
        { name: odd, content: 'odd', pax: { 'SCHILY.xattr.user.odd': 'yes' } },
        { name: 'sl', type: 'symlink', linkname: 'bin/ping', pax: { 'SCHILY.xattr.user.nope': '1', 'SCHILY.xattr.trusted.link': 'own' } },
        { name: 'acl', content: 'a', pax: { 'SCHILY.xattr.system.posix_acl_access': Buffer.from([2, 0, 0, 0]) } },
        { name: 'same', content: 'first', pax: { 'SCHILY.xattr.user.first': '1' } },
        { name: 'same', content: 'second' },
      ],
      [
        { name: 'old', content: 'new' },
        { name: 'x/', type: 'directory', pax: { 'SCHILY.xattr.user.dir2': '2' } },
      ],
    );
    const stats = await flattenLayers(ls, dir, { onProgress: (e) => e.phase === 'warning' && progress.push(e.detail ?? '') });
    const hex = (s: string): string => Buffer.from(s).toString('hex');
    assert.deepEqual(xattrsOf(path.join(dir, 'bin/ping')), { 'security.capability': cap.toString('hex'), 'user.boson': hex('hello') });
    const ping = await fs.stat(path.join(dir, 'bin/ping'));
    assert.equal(ping.mode & 0o7777, 0o4755, 'setuid kept');
    assert.equal(ping.uid, 3);
    assert.deepEqual(xattrsOf(path.join(dir, 'lib')), { 'user.lib\\075x': '6200ff80' }, 'getfattr prints "=" in a name as \\075');
    assert.deepEqual(xattrsOf(path.join(dir, 'old')), {}, 'a file replaced by a later layer loses its attributes');
    assert.deepEqual(xattrsOf(path.join(dir, 'same')), {}, 'a file replaced in the same layer loses its attributes');
    assert.deepEqual(xattrsOf(path.join(dir, 'x')), { 'user.dir': hex('1'), 'user.dir2': hex('2') });
    assert.deepEqual(xattrsOf(path.join(dir, 'ov')), { 'trusted.boson': hex('t') }, 'trusted.overlay.* is not copied');
    assert.deepEqual(xattrsOf(path.join(dir, odd)), { 'user.odd': hex('yes') });
    assert.deepEqual(xattrsOf(path.join(dir, 'sl')), { 'trusted.link': hex('own') }, 'set on the link itself');
    assert.deepEqual(xattrsOf(path.join(dir, 'acl')), {});
    assert.equal(stats.xattrs, 9);
    assert.deepEqual(stats.warnings, progress);
    assert.equal(progress.length, 3);
    assert.match(
      progress.join('\n'),
      /layer L1: extended attribute trusted\.overlay\.opaque: skipped overlayfs metadata .* on 1 entry \(e\.g\. \/ov\)/,
    );
    assert.match(progress.join('\n'), /user\.nope: skipped \(user\.\* attributes exist only on files and directories\)/);
    assert.match(progress.join('\n'), /system\.posix_acl_access: skipped/);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('extended attributes the staging filesystem refuses (ramfs stores none) are warnings, not failures', async (t) => {
  const dir = await tempDir();
  try {
    try {
      execFileSync('mount', ['-t', 'ramfs', 'boson-test', dir], { stdio: 'ignore' });
    } catch {
      t.skip('cannot mount a ramfs (needs root)');
      return;
    }
    try {
      const stats = await flattenLayers(
        await layers([
          { name: 'a', content: 'a', pax: { 'SCHILY.xattr.user.a': '1', 'SCHILY.xattr.security.capability': capability(1 << 10) } },
          { name: 'b', content: 'b', pax: { 'SCHILY.xattr.user.a': '2' } },
        ]),
        dir,
      );
      assert.equal(await fs.readFile(path.join(dir, 'b'), 'utf8'), 'b');
      assert.equal(stats.xattrs, 0);
      assert.deepEqual(stats.warnings.sort(), [
        'layer L1: extended attribute security.capability: refused by the staging filesystem, on 1 entry (e.g. /a)',
        'layer L1: extended attribute user.a: refused by the staging filesystem, on 2 entries (e.g. /a)',
      ]);
    } finally {
      execFileSync('umount', [dir]);
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
