/**
 * Pulling from real registries (Debian's docker-registry: plain, htpasswd Basic auth, and token auth behind a
 * token server of ours), images pushed with skopeo from OCI layouts we build, each pulled and RUN in a micro-VM
 * with its files checked from inside the guest. Also the CLI's errors and exit statuses for bad pulls, with the
 * state directory compared before and after.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeTar, writeOciLayout } from '../src/image/oci-writer.ts';
import { snapshot } from '../src/image/test-support.ts';
import { openHostStore } from '../src/main/index.ts';
import { runBoson, useTestHost } from './helpers.ts';
import {
  busyboxLayerTar,
  freePort,
  pushLayout,
  startRegistry,
  testConfig,
  writeIndexLayout,
  type TestRegistry,
  type TokenServer,
} from './registry-fixture.ts';

describe('boson pull from real registries', () => {
  const host = useTestHost();
  let plain: TestRegistry;
  let basic: TestRegistry;
  let token: TestRegistry & { token?: TokenServer };
  let work: string;
  let configDir: string;
  const cfgEnv = (): NodeJS.ProcessEnv => ({ BOSON_CONFIG_DIR: configDir, DOCKER_CONFIG: path.join(work, 'docker-none') });

  before(async () => {
    work = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'boson-pull-suite-')));
    configDir = path.join(work, 'config');
    [plain, basic, token] = await Promise.all([
      startRegistry(),
      startRegistry({ kind: 'htpasswd', user: 'alice', password: 'wonder land' }),
      startRegistry({ kind: 'token', user: 'bob', password: 's3cret' }),
    ]);
    const bb = await busyboxLayerTar();
    const layout = async (name: string): Promise<string> => {
      const d = path.join(work, name);
      await fs.mkdir(d);
      return d;
    };
    // 1. several layers: whiteout, opaque directory, a device node (kept deliberately), a hard link
    const multi = await layout('multi');
    await writeOciLayout(multi, [
      {
        config: testConfig({ Env: ['PATH=/bin', 'FROM_IMAGE=multi'] }),
        refName: 'v1',
        layers: [
          { tar: bb },
          {
            tar: await makeTar([
              { name: 'data/', type: 'directory' },
              { name: 'data/gone.txt', content: 'gone\n' },
              { name: 'data/kept.txt', content: 'kept\n' },
              { name: 'data/opq/', type: 'directory' },
              { name: 'data/opq/old.txt', content: 'old\n' },
              { name: 'etc/boson-null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
            ]),
          },
          {
            tar: await makeTar([
              { name: 'data/.wh.gone.txt' },
              { name: 'data/opq/', type: 'directory' },
              { name: 'data/opq/.wh..wh..opq' },
              { name: 'data/opq/new.txt', content: 'new\n' },
              { name: 'data/link.txt', type: 'link', linkname: 'data/kept.txt' },
            ]),
            compression: 'none',
          },
        ],
      },
    ]);
    // 2. a multi-platform index (the arm64 entry carries the same amd64 busybox: only its label differs)
    const index = await layout('index');
    const platformImage = async (arch: string) => ({
      config: testConfig({}, arch),
      platform: { os: 'linux', architecture: arch },
      layers: [{ tar: bb }, { tar: await makeTar([{ name: 'platform', content: `${arch}\n` }]) }],
    });
    await writeIndexLayout(index, 'v1', [await platformImage('amd64'), await platformImage('arm64'), await platformImage('ppc64le')]);
    // 3. a zstd layer
    const zstd = await layout('zstd');
    await writeOciLayout(zstd, [
      {
        config: testConfig(),
        refName: 'v1',
        layers: [{ tar: bb }, { tar: await makeTar([{ name: 'zstd.txt', content: 'zstd layer\n' }]), compression: 'zstd' }],
      },
    ]);
    // 4. Docker schema2 (converted by skopeo --format v2s2)
    const docker = await layout('docker');
    await writeOciLayout(docker, [
      {
        config: testConfig(),
        refName: 'v1',
        layers: [{ tar: bb }, { tar: await makeTar([{ name: 'docker.txt', content: 'schema2\n' }]) }],
      },
    ]);
    // 5. a non-root user
    const user = await layout('user');
    await writeOciLayout(user, [
      {
        config: testConfig({ User: '1000:1000', WorkingDir: '/home/app' }),
        refName: 'v1',
        layers: [
          { tar: bb },
          {
            tar: await makeTar([
              { name: 'home/app/', type: 'directory', uid: 1000, gid: 1000, mode: 0o750 },
              { name: 'home/app/mine.txt', content: 'mine\n', uid: 1000, gid: 1000, mode: 0o600 },
            ]),
          },
        ],
      },
    ]);
    // 6. file capabilities: a copy of busybox named cat (busybox picks the applet from argv[0]) with
    // cap_dac_read_search, cap_setuid and cap_net_bind_service (0x484: a byte >= 0x80 in the value), and a file only
    // root may read
    const caps = await layout('caps');
    const capValue = Buffer.alloc(20);
    capValue.writeUInt32LE(0x02000001, 0); // VFS_CAP_REVISION_2 | effective
    capValue.writeUInt32LE((1 << 2) | (1 << 7) | (1 << 10), 4);
    await writeOciLayout(caps, [
      {
        config: testConfig(),
        refName: 'v1',
        layers: [
          { tar: bb },
          {
            tar: await makeTar([
              { name: 'caps/', type: 'directory', pax: { 'SCHILY.xattr.trusted.overlay.opaque': 'y' } },
              {
                name: 'caps/cat',
                content: await fs.readFile('/bin/busybox'),
                mode: 0o755,
                pax: { 'SCHILY.xattr.security.capability': capValue, 'SCHILY.xattr.user.note': 'hello' },
              },
              { name: 'caps/secret', content: 'only root\n', mode: 0o600 },
            ]),
          },
        ],
      },
    ]);
    await Promise.all([
      pushLayout(caps, 'v1', `${plain.host}/test/caps:v1`),
      pushLayout(multi, 'v1', `${plain.host}/test/multi:v1`),
      pushLayout(index, 'v1', `${plain.host}/test/index:v1`, { all: true }),
      pushLayout(zstd, 'v1', `${plain.host}/test/zstd:v1`),
      pushLayout(docker, 'v1', `${plain.host}/test/docker:v1`, { format: 'v2s2' }),
      pushLayout(user, 'v1', `${plain.host}/test/user:v1`),
      pushLayout(zstd, 'v1', `${basic.host}/private/zstd:v1`, { creds: 'alice:wonder land' }),
      pushLayout(user, 'v1', `${token.host}/private/user:v1`, { creds: 'bob:s3cret' }),
    ]);
  });

  after(async () => {
    await Promise.all([plain?.stop(), basic?.stop(), token?.stop()]);
    if (work) await fs.rm(work, { recursive: true, force: true });
  });

  const ok = (r: { code: number | null; stderr: string }, what: string): void => assert.equal(r.code, 0, `${what}: ${r.stderr}`);

  test('run pulls a multi-layer image on first use; whiteouts, opaque dirs, links and device nodes are right in the guest', async () => {
    const ref = `${plain.host}/test/multi:v1`;
    const r = await runBoson(
      host(),
      [
        'run',
        '--rm',
        ref,
        'sh',
        '-c',
        'ls /data | tr "\\n" " "; echo; ls /data/opq; cat /data/link.txt; test -c /etc/boson-null && echo chardev; echo $FROM_IMAGE',
      ],
      { timeoutMs: 120_000 },
    );
    ok(r, 'run');
    assert.equal(r.stdout.toString(), 'kept.txt link.txt opq \nnew.txt\nkept\nchardev\nmulti\n');
    const again = await runBoson(host(), ['pull', ref]);
    ok(again, 'pull');
    assert.match(again.stderr, /Image is up to date/);
    assert.equal(again.stdout.toString(), `${ref}\n`);
  });

  test("file capabilities from a layer's xattrs work in the guest for a non-root user", async () => {
    const ref = `${plain.host}/test/caps:v1`;
    const warning =
      /^Warning: layer 2\/2 sha256:[0-9a-f]+: extended attribute trusted\.overlay\.opaque: skipped overlayfs metadata .*\(e\.g\. \/caps\)$/m;
    // run pulls on first use, and shows the pull's warnings too.
    const r = await runBoson(
      host(),
      [
        'run',
        '--rm',
        '-u',
        '1000',
        ref,
        'sh',
        '-c',
        'grep -E "^Cap(Prm|Eff)" /proc/self/status; /caps/cat /proc/self/status | grep -E "^Cap(Prm|Eff)"; /caps/cat /caps/secret; cat /caps/secret 2>/dev/null || echo denied',
      ],
      { timeoutMs: 120_000 },
    );
    ok(r, 'run');
    assert.equal(
      r.stdout.toString(),
      'CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapPrm:\t0000000000000484\nCapEff:\t0000000000000484\nonly root\ndenied\n',
    );
    assert.match(r.stderr, warning);
    // pull shows them as well, once the image and its disk are gone.
    ok(await runBoson(host(), ['rmi', ref]), 'rmi');
    ok(await runBoson(host(), ['image', 'prune']), 'image prune');
    const pulled = await runBoson(host(), ['pull', ref]);
    ok(pulled, 'pull');
    assert.match(pulled.stderr, warning);
  });

  test('a multi-platform index: linux/amd64 by default, --platform picks another, an unknown one is refused', async () => {
    const ref = `${plain.host}/test/index:v1`;
    const j = await runBoson(host(), ['pull', '--json', ref]);
    ok(j, 'pull --json');
    const events = j.stdout
      .toString()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { status: string; digest?: string; image?: { architecture: string } });
    const last = events.at(-1)!;
    assert.equal(last.image?.architecture, 'amd64');
    assert.ok(events.some((e) => e.status === 'Download complete'));
    const amd = await runBoson(host(), ['run', '--rm', ref, 'cat', '/platform']);
    ok(amd, 'run amd64');
    assert.equal(amd.stdout.toString(), 'amd64\n');
    const before = await snapshot(host().stateDir);
    const bad = await runBoson(host(), ['pull', '--platform', 'linux/s390x', ref]);
    assert.equal(bad.code, 87, bad.stderr);
    assert.match(bad.stderr, new RegExp(`${ref}.*linux/s390x.*linux/amd64, linux/arm64, linux/ppc64le`));
    assert.deepEqual(await snapshot(host().stateDir), before);
    ok(await runBoson(host(), ['pull', '-q', '--platform', 'linux/arm64', ref]), 'pull arm64');
    const arm = await runBoson(host(), ['run', '--rm', ref, 'cat', '/platform']);
    assert.equal(arm.stdout.toString(), 'arm64\n');
    // by digest: the index digest the first pull reported
    const byDigest = await runBoson(host(), ['run', '--rm', `${plain.host}/test/index@${last.digest}`, 'cat', '/platform']);
    ok(byDigest, 'run by digest');
  });

  test('a zstd layer, a Docker schema2 image and a non-root user', async () => {
    const z = await runBoson(host(), ['run', '--rm', `${plain.host}/test/zstd:v1`, 'cat', '/zstd.txt']);
    ok(z, 'zstd');
    assert.equal(z.stdout.toString(), 'zstd layer\n');
    const d = await runBoson(host(), ['run', '--rm', `${plain.host}/test/docker:v1`, 'cat', '/docker.txt']);
    ok(d, 'schema2');
    assert.equal(d.stdout.toString(), 'schema2\n');
    const inspect = await runBoson(host(), ['image', 'inspect', `${plain.host}/test/docker:v1`]);
    const [rec] = JSON.parse(inspect.stdout.toString()) as { layers: { mediaType: string }[] }[];
    assert.ok(rec!.layers.every((l) => l.mediaType === 'application/vnd.docker.image.rootfs.diff.tar.gzip'));
    const u = await runBoson(host(), [
      'run',
      '--rm',
      `${plain.host}/test/user:v1`,
      'sh',
      '-c',
      'id -u; id -g; pwd; cat mine.txt; stat -c %u:%a /home/app',
    ]);
    ok(u, 'user');
    assert.equal(u.stdout.toString(), '1000\n1000\n/home/app\nmine\n1000:750\n');
  });

  test('htpasswd registry: 401 without login (exit 77), bad password refused, login stores 0600 credentials, logout', async () => {
    const ref = `${basic.host}/private/zstd:v1`;
    const before = await snapshot(host().stateDir);
    const anon = await runBoson(host(), ['pull', ref], { env: cfgEnv() });
    assert.equal(anon.code, 77, anon.stderr);
    assert.match(anon.stderr, new RegExp(`${ref}.*requires authentication`));
    const wrong = await runBoson(host(), ['login', '-u', 'alice', '--password-stdin', basic.host], { input: 'nope\n', env: cfgEnv() });
    assert.equal(wrong.code, 77, wrong.stderr);
    assert.deepEqual(await snapshot(host().stateDir), before);
    const login = await runBoson(host(), ['login', '-u', 'alice', '--password-stdin', basic.host], {
      input: 'wonder land\n',
      env: cfgEnv(),
    });
    ok(login, 'login');
    assert.doesNotMatch(login.stdout.toString() + login.stderr, /wonder/);
    assert.equal((await fs.stat(path.join(configDir, 'auth.json'))).mode & 0o777, 0o600);
    const r = await runBoson(host(), ['run', '--rm', ref, 'cat', '/zstd.txt'], { env: cfgEnv() });
    ok(r, 'run after login');
    ok(await runBoson(host(), ['logout', basic.host], { env: cfgEnv() }), 'logout');
    assert.doesNotMatch(await fs.readFile(path.join(configDir, 'auth.json'), 'utf8'), new RegExp(basic.host));
  });

  test('token registry: Bearer flow with credentials from Docker config.json', async () => {
    const ref = `${token.host}/private/user:v1`;
    const anon = await runBoson(host(), ['pull', ref], { env: cfgEnv() });
    assert.equal(anon.code, 77, anon.stderr);
    const dockerDir = path.join(work, 'docker');
    await fs.mkdir(dockerDir, { recursive: true });
    await fs.writeFile(
      path.join(dockerDir, 'config.json'),
      JSON.stringify({ auths: { [token.host]: { auth: Buffer.from('bob:s3cret').toString('base64') } } }),
    );
    const r = await runBoson(host(), ['run', '--rm', ref, 'id', '-u'], { env: { ...cfgEnv(), DOCKER_CONFIG: dockerDir } });
    ok(r, 'run');
    assert.equal(r.stdout.toString(), '1000\n');
    assert.ok(token.token!.requests.some((q) => q.authorized && q.scope === 'repository:private/user:pull'));
  });

  test('unknown tag (86), unreachable registry (84): clear errors, store unchanged', async () => {
    const before = await snapshot(host().stateDir);
    const missing = await runBoson(host(), ['pull', `${plain.host}/test/multi:nope`]);
    assert.equal(missing.code, 86, missing.stderr);
    assert.match(missing.stderr, /manifest unknown/);
    const port = await freePort();
    const down = await runBoson(host(), ['pull', '--json', `127.0.0.1:${port}/x/y:z`]);
    assert.equal(down.code, 84, down.stderr);
    assert.equal((JSON.parse(down.stderr.trim().split('\n').at(-1)!) as { error: { code: string } }).error.code, 'REGISTRY_UNREACHABLE');
    assert.deepEqual(await snapshot(host().stateDir), before);
  });

  test('tag, rmi (refused while a container uses the image, unless --force), image prune', async () => {
    const ref = `${plain.host}/test/zstd:v1`;
    ok(await runBoson(host(), ['pull', '-q', ref]), 'pull');
    ok(await runBoson(host(), ['tag', ref, 'mine:1']), 'tag');
    const listed = await runBoson(host(), ['images']);
    assert.match(listed.stdout.toString(), /localhost\/mine\s+1\s/);
    ok(await runBoson(host(), ['run', '--name', 'keeper', 'mine:1', 'true']), 'run keeper');
    const untag = await runBoson(host(), ['rmi', 'mine:1']);
    ok(untag, 'rmi untag');
    assert.equal(untag.stdout.toString(), 'Untagged: localhost/mine:1\n');
    // By id: the image with all its names (the htpasswd test pulled the same image under another name).
    const [img] = JSON.parse((await runBoson(host(), ['image', 'inspect', ref])).stdout.toString()) as { id: string }[];
    const refused = await runBoson(host(), ['rmi', img!.id]);
    assert.equal(refused.code, 88, refused.stderr);
    assert.match(refused.stderr, /used by a container/);
    const forced = await runBoson(host(), ['rmi', '--force', img!.id]);
    ok(forced, 'rmi --force');
    assert.match(forced.stdout.toString(), /Deleted: sha256:/);
    const prune = await runBoson(host(), ['image', 'prune', '--json']);
    ok(prune, 'prune');
    const blobs = await fs.readdir(path.join(host().stateDir, 'images', 'blobs', 'sha256'));
    const images = openHostStore(host().stateDir)
      .list<{ id: string; manifestDigest: string; indexDigest?: string; layers: { digest: string }[] }>('image')
      .map((r) => r.value);
    const wanted = new Set<string>();
    for (const i of images)
      [i.id, i.manifestDigest, i.indexDigest, ...i.layers.map((l) => l.digest)].forEach((d) => d && wanted.add(d.slice(7)));
    assert.deepEqual(blobs.sort(), [...wanted].sort(), 'only referenced blobs are left');
  });
});
