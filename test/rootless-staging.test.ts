/**
 * The rootless staging path (issue 12, part 4) with a malicious image, as an unprivileged user: a throwaway system
 * user with its own subordinate ids builds root disks through flattenToDiskInUserNamespace (the flattening and mkfs
 * in a user namespace, as a rootless daemon does) from layers with a `./` entry of mode 0777 and another owner, a
 * directory with a deferred mtime that a later layer swaps for a symlink to the user's own files (and the reverse), a
 * setuid-root file, and in another image a device node. Checked: nothing outside the store changes (the user's
 * home and /tmp), every staging directory is 0700 and the user's while the tree exists, a squatted
 * /dev/shm directory is not used, the disk is as the image says, and nothing is left behind. Needs root to create
 * the user: run as anyone else, it is skipped.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../src/common/index.ts';
import { makeTar, type TarEntrySpec } from '../src/image/oci-writer.ts';
import { collect } from './helpers.ts';
import { createThrowawayUser, type ThrowawayUser } from './throwaway-user.ts';

const run = promisify(execFile);
const IS_ROOT = process.geteuid?.() === 0;
const SKIP = IS_ROOT ? false : 'needs root: it creates a throwaway system user to build as';
const T0 = new Date('2001-01-01T00:00:00Z');
const T1 = new Date('2020-01-02T03:04:05Z');
const EVIL = `/tmp/boson-rls-evil-${randomBytes(6).toString('hex')}`;
const BUILDER = path.join(PACKAGE_ROOT, 'test', 'rootless-staging-build.ts');
const TSX = path.join(PACKAGE_ROOT, 'node_modules', 'tsx', 'dist', 'loader.mjs');

interface Observed {
  t: 'observed';
  error?: string;
  stage: string;
  chain: Array<{ path: string; mode: number; uid: number; link: boolean }>;
  probes: Record<string, boolean>;
}
type Result = { t: 'done'; disk: string } | { t: 'error'; code: string; message: string };

/** Every path under `dir` with type, mode, owner, size and mtime. */
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

describe('rootless staging: a non-root user flattens a malicious image', { skip: SKIP }, () => {
  let u: ThrowawayUser;
  let canary = '';
  let evilLayers: string[] = [];
  let deviceLayers: string[] = [];
  let outside: () => Promise<string[][]>;
  let wrapperDir = '';
  let mkfsLog = '';

  before(async () => {
    u = await createThrowawayUser('boson-rls');
    // The user's own files, which the namespace's root could change if the flattener followed a link to them.
    canary = path.join(u.home, 'canary');
    await fs.mkdir(path.join(canary, 'b'), { recursive: true });
    await fs.writeFile(path.join(canary, 'b', 'file'), 'canary');
    for (const p of [path.join(canary, 'b', 'file'), path.join(canary, 'b'), canary]) await fs.utimes(p, T0, T0);
    await run('chown', ['-R', `${u.uid}:${u.gid}`, canary]);
    // The store lives in the home: made now, so that the first build changes nothing of the home's own.
    await run('setpriv', [
      '--reuid',
      String(u.uid),
      '--regid',
      String(u.gid),
      '--init-groups',
      '--',
      'mkdir',
      '-p',
      path.join(u.home, 'state'),
    ]);
    // mkfs.erofs, found on PATH by the builder in the namespace, first notes the staging directories as mkfs sees
    // them (ids as the namespace maps them: the user is 0 there), once the last layer and the image's ./ are applied.
    wrapperDir = path.join(u.base, 'bin');
    mkfsLog = path.join(u.home, '.mkfs-observed');
    await fs.mkdir(wrapperDir, { mode: 0o755 });
    await fs.writeFile(
      path.join(wrapperDir, 'mkfs.erofs'),
      [
        '#!/bin/sh',
        'r=$2; s=$(dirname "$r"); n=$(dirname "$s"); p=$(dirname "$n")',
        `stat -c '%a %u %n' "$p" "$n" "$s" "$r" > ${mkfsLog}`,
        'exec /usr/bin/mkfs.erofs "$@"',
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    await fs.writeFile(mkfsLog, '', { mode: 0o600 });
    await fs.chown(mkfsLog, u.uid, u.gid);
    const layerDir = path.join(u.base, 'layers');
    await fs.mkdir(layerDir, { mode: 0o755 });
    const write = async (name: string, entries: TarEntrySpec[]): Promise<string> => {
      const file = path.join(layerDir, `${name}.tar`);
      await fs.writeFile(file, await makeTar(entries), { mode: 0o644 });
      return file;
    };
    evilLayers = [
      await write('l1', [
        { name: './', type: 'directory', mode: 0o777, uid: 1234, gid: 1234 },
        // a/ and a/b/ get their mtimes at the end of the build; by then a is a link to the canary.
        { name: 'a/', type: 'directory', mtime: T1 },
        { name: 'a/b/', type: 'directory', mtime: T1 },
        { name: 's', type: 'symlink', linkname: canary },
        { name: 'bin/', type: 'directory' },
        { name: 'bin/rootshell', content: '#!/bin/sh\n', mode: 0o4755, uid: 0, gid: 0 },
        { name: 'srv/', type: 'directory' },
        { name: 'srv/tool', content: 'x', mode: 0o6755, uid: 1234, gid: 5678 },
        { name: 'pipe', type: 'fifo', mode: 0o600 },
      ]),
      await write('l2', [
        { name: 'a', type: 'symlink', linkname: canary },
        // The reverse: the link s becomes a directory (with a deferred mtime), never the canary behind it.
        { name: 's/', type: 'directory', mode: 0o777, mtime: T1 },
        { name: 's/x', content: 'in the image' },
        { name: 'e', type: 'symlink', linkname: EVIL },
      ]),
    ];
    deviceLayers = [
      evilLayers[0]!,
      await write('dev', [
        { name: 'dev/', type: 'directory' },
        { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
      ]),
    ];
    // What must not change: the user's home but the store, and /tmp's evil name (what the user could write to; not
    // /etc/passwd, which the builder cannot write and other suites change when they add users).
    outside = async () => [
      await fingerprint(u.home, (rel) => rel === 'state' || rel.startsWith('state/') || rel.startsWith('.')),
      [
        String(
          await fs.lstat(EVIL).then(
            () => 'exists',
            () => 'absent',
          ),
        ),
      ],
    ];
  });

  after(async () => {
    await u?.cleanup();
    await fs.rm(EVIL, { recursive: true, force: true });
  });

  /** Builds `layers` as the user with BOSON_STAGING_DIR `stagingDir`; what it observed and its result. */
  async function build(
    name: string,
    layers: string[],
    stagingDir?: string,
  ): Promise<{ observed: Observed | null; result: Result; final: string; tmpDir: string }> {
    const state = path.join(u.home, 'state');
    const tmpDir = path.join(state, 'images', 'tmp');
    const final = path.join(state, 'images', 'disks', `${name}.erofs`);
    await run('setpriv', ['--reuid', String(u.uid), '--regid', String(u.gid), '--init-groups', '--', 'mkdir', '-p', path.dirname(final)]);
    const spec = { layers, final, tmpDir, stagingDir, probe: ['bin/rootshell', 'srv/tool', 'a/b'] };
    const child = spawn(
      'setpriv',
      [
        '--reuid',
        String(u.uid),
        '--regid',
        String(u.gid),
        '--init-groups',
        '--',
        process.execPath,
        '--import',
        TSX,
        BUILDER,
        JSON.stringify(spec),
      ],
      {
        env: { PATH: `${wrapperDir}:${process.env.PATH}`, HOME: u.home, USER: u.user, LOGNAME: u.user, TSX_DISABLE_CACHE: '1' },
        cwd: u.home,
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    const r = await collect(child, undefined, 120_000, ['rootless-staging-build', name]);
    const lines = r.stdout
      .toString()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Observed | Result);
    const result = lines.find((l): l is Result => l.t === 'done' || l.t === 'error');
    assert.ok(result, `${name}: the builder gave no result (exit ${r.code}): ${r.stderr}`);
    return { observed: (lines.find((l) => l.t === 'observed') as Observed | undefined) ?? null, result, final, tmpDir };
  }

  /** The staging tree was private while it existed; nothing of it is left; nothing outside the store changed. */
  async function checkPrivateAndGone(
    name: string,
    observed: Observed | null,
    expectParent: string,
    tmpDir: string,
    before: string[][],
    mkfs = true,
  ): Promise<void> {
    assert.ok(observed && !observed.error, `${name}: ${observed?.error ?? 'nothing observed'}`);
    assert.equal(path.dirname(path.dirname(observed.stage)), expectParent, `${name}: staged in ${expectParent}`);
    for (const d of observed.chain) {
      assert.deepEqual(
        [d.mode, d.uid, d.link],
        [0o700, u.uid, false],
        `${name}: ${d.path} is a 0700 directory of the user (mode ${d.mode.toString(8)})`,
      );
    }
    assert.deepEqual(
      observed.probes,
      { 'bin/rootshell': true, 'srv/tool': true, 'a/b': true },
      `${name}: the earlier layer is in the tree`,
    );
    if (mkfs) {
      // At mkfs, after the image's ./ entry: the stage and its parents are still 0700 and the user's (0 in the
      // namespace); only the image root below them has the image's mode and owner.
      const seen = (await fs.readFile(mkfsLog, 'utf8')).trim().split('\n');
      const [p, n, s] = observed.chain.map((d) => d.path);
      assert.deepEqual(seen, [`700 0 ${p}`, `700 0 ${n}`, `700 0 ${s}`, `777 1234 ${path.join(s!, 'rootfs')}`], `${name}: at mkfs`);
      await fs.writeFile(mkfsLog, '');
    }
    assert.deepEqual(await fs.readdir(path.dirname(observed.stage)), [], `${name}: the staging tree was removed`);
    assert.deepEqual(
      (await fs.readdir(tmpDir)).filter((n) => n.startsWith('disk-')),
      [],
      `${name}: no temporary disk left`,
    );
    assert.deepEqual(await outside(), before, `${name}: nothing outside the store changed`);
  }

  /** The disk holds what the image says: the root's mode and owner from ./, setuid files, the swapped links. */
  async function checkDisk(disk: string): Promise<void> {
    const mnt = await fs.mkdtemp(path.join(u.base, 'mnt-'));
    await run('mount', ['-o', 'loop,ro', disk, mnt]);
    try {
      const st = async (rel: string): Promise<string> => {
        const s = await fs.lstat(path.join(mnt, rel));
        const type = s.isSymbolicLink()
          ? `-> ${await fs.readlink(path.join(mnt, rel))}`
          : s.isDirectory()
            ? 'dir'
            : s.isFIFO()
              ? 'fifo'
              : 'file';
        return `${rel} ${(s.mode & 0o7777).toString(8)} ${s.uid}:${s.gid} ${type}`;
      };
      assert.deepEqual(await Promise.all(['.', 'bin/rootshell', 'srv/tool', 'a', 's', 's/x', 'pipe', 'e'].map(st)), [
        '. 777 1234:1234 dir',
        'bin/rootshell 4755 0:0 file',
        'srv/tool 6755 1234:5678 file',
        `a 777 0:0 -> ${canary}`,
        's 777 0:0 dir',
        's/x 644 0:0 file',
        'pipe 600 0:0 fifo',
        `e 777 0:0 -> ${EVIL}`,
      ]);
      assert.equal((await fs.lstat(path.join(mnt, 's'))).mtime.getTime(), T1.getTime(), 'the directory that replaced a link got its mtime');
    } finally {
      await run('umount', [mnt]);
      await fs.rm(mnt, { recursive: true, force: true });
    }
  }

  test('staged in the store: private while it exists, the image root one level below, the disk as specified', async () => {
    const before = await outside();
    const { observed, result, tmpDir } = await build('store', evilLayers, 'store');
    assert.equal(result.t, 'done', JSON.stringify(result));
    await checkPrivateAndGone('store', observed, tmpDir, tmpDir, before);
    await checkDisk((result as { disk: string }).disk);
  });

  test('staged in /dev/shm (the default), and in a BOSON_STAGING_DIR others may write to', async () => {
    const before = await outside();
    const shm = await build('shm', evilLayers);
    assert.equal(shm.result.t, 'done', JSON.stringify(shm.result));
    await checkPrivateAndGone('shm', shm.observed, `/dev/shm/boson-${u.uid}`, shm.tmpDir, before);
    await checkDisk((shm.result as { disk: string }).disk);
    const shared = path.join(u.base, 'shared-staging');
    await fs.mkdir(shared);
    await fs.chmod(shared, 0o1777);
    const abs = await build('abs', evilLayers, shared);
    assert.equal(abs.result.t, 'done', JSON.stringify(abs.result));
    await checkPrivateAndGone('abs', abs.observed, path.join(shared, `boson-${u.uid}`), abs.tmpDir, before);
  });

  test('a /dev/shm directory squatted by someone else is not used; a squatted BOSON_STAGING_DIR is refused', async () => {
    const before = await outside();
    const squat = `/dev/shm/boson-${u.uid}`;
    await fs.rm(squat, { recursive: true, force: true });
    await fs.mkdir(squat);
    await fs.chmod(squat, 0o777);
    try {
      const r = await build('squat', evilLayers);
      assert.equal(r.result.t, 'done', JSON.stringify(r.result));
      await checkPrivateAndGone('squat', r.observed, r.tmpDir, r.tmpDir, before);
      assert.deepEqual(await fs.readdir(squat), [], 'nothing was built in the squatted directory');
      const shared = path.join(u.base, 'squatted-staging');
      await fs.mkdir(path.join(shared, `boson-${u.uid}`), { recursive: true, mode: 0o777 });
      await fs.chmod(shared, 0o1777);
      const refused = await build('refused', evilLayers, shared);
      assert.equal(refused.result.t, 'error');
      assert.equal((refused.result as { code: string }).code, 'STATE_DIR_UNWRITABLE', JSON.stringify(refused.result));
      assert.deepEqual(await fs.readdir(path.join(shared, `boson-${u.uid}`)), []);
    } finally {
      await fs.rm(squat, { recursive: true, force: true });
    }
  });

  test('a device node is ROOTLESS_UNSUPPORTED, and the build leaves nothing behind', async () => {
    const before = await outside();
    const r = await build('device', deviceLayers, 'store');
    assert.equal(r.result.t, 'error');
    assert.equal((r.result as { code: string }).code, 'ROOTLESS_UNSUPPORTED', JSON.stringify(r.result));
    assert.match((r.result as { message: string }).message, /dev\/null.*device node/);
    await assert.rejects(fs.lstat(r.final), 'no disk');
    await checkPrivateAndGone('device', r.observed, r.tmpDir, r.tmpDir, before, false);
  });
});
