/**
 * Rootless mode end to end: the daemon and the CLI run as an ordinary user (a throwaway system user made for this
 * suite, with its own subordinate ids), with no root anywhere on their path. The suite pulls an image whose files
 * belong to several users from a loopback registry and imports the demo image (both root disks are built in a user
 * namespace), runs a container with a published port and reaches it from the host with a real HTTP request, execs,
 * reads logs, stops and removes it, and checks what rootless mode refuses (low host ports, user-defined networks,
 * bind mounts, images with device nodes). Everything it made (daemon, QEMU, user, subuid/subgid lines, files) is
 * removed afterwards, also when a test fails. It needs root to create the user: run as anyone else, it is skipped.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../src/common/index.ts';
import { makeTar, writeOciLayout } from '../src/image/oci-writer.ts';

/** security.capability v2 with the effective flag and `bits` permitted. */
function capV2(bits: number): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt32LE(0x02000001, 0);
  b.writeUInt32LE(bits, 4);
  return b;
}
import { BOSON, BUSYBOX_LAYOUT, collect, freePort, qemuPidsUsing, waitFor, type BosonResult } from './helpers.ts';
import { busyboxLayerTar, pushLayout, startRegistry, testConfig, type TestRegistry } from './registry-fixture.ts';
import { createThrowawayUser, type ThrowawayUser } from './throwaway-user.ts';

const run = promisify(execFile);
const IS_ROOT = process.geteuid?.() === 0;
const SKIP = IS_ROOT ? false : 'needs root: it creates a throwaway system user to run the rootless daemon as';

let tu: ThrowawayUser | null = null;
let user = '';
let uid = -1;
let gid = -1;
let base = '';
let home = '';
let stateDir = '';
let runDir = '';
let daemon: ChildProcess | null = null;
let daemonLog = '';
let registry: TestRegistry | null = null;

/** The environment of the user's commands: nothing of root's but PATH. */
function userEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: home,
    USER: user,
    LOGNAME: user,
    BOSON_STATE_DIR: stateDir,
    BOSON_RUN_DIR: runDir,
    BOSON_QUIET: '1',
    ...(process.env.BOSON_NO_BUNDLE ? { BOSON_NO_BUNDLE: '1' } : {}),
    ...extra,
  };
}

/** Starts `bin/boson args` as the user (setpriv: real and effective ids, the user's groups, nothing else). */
function spawnAsUser(args: string[], env: NodeJS.ProcessEnv = userEnv()): ChildProcess {
  return spawn('setpriv', ['--reuid', String(uid), '--regid', String(gid), '--init-groups', '--', BOSON, ...args], {
    env,
    cwd: home,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

function boson(args: string[], env?: NodeJS.ProcessEnv): Promise<BosonResult> {
  return collect(spawnAsUser(args, env), undefined, 90_000, args);
}

const out = (r: BosonResult): string => r.stdout.toString();

/**
 * GET http://127.0.0.1:port/path from the host (node's client; a refused connection resolves to ''); `onHang` is
 * called when the request got no answer within 3 s (it then resolves to '' too).
 */
function get(port: number, p: string, onHang: () => void = () => undefined): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
      res.on('error', () => resolve(''));
    });
    req.on('timeout', () => {
      onHang();
      req.destroy();
    });
    req.on('error', () => resolve(''));
  });
}

/** Starts `boson up` as the user and waits until it listens. */
async function startDaemon(env: NodeJS.ProcessEnv = userEnv()): Promise<void> {
  daemonLog = '';
  daemon = spawnAsUser(['up'], env);
  daemon.stdout!.on('data', (d: Buffer) => (daemonLog += d.toString()));
  daemon.stderr!.on('data', (d: Buffer) => (daemonLog += d.toString()));
  const d = daemon;
  await waitFor(() => daemonLog.includes('listening') || d.exitCode !== null, 30_000, 'the rootless daemon to listen');
  assert.equal(d.exitCode, null, `boson up exited: ${daemonLog}`);
}

/** Kills the daemon with SIGKILL (its VMs and their network processes keep running) and waits until it is gone. */
async function killDaemon(): Promise<void> {
  const d = daemon;
  daemon = null;
  if (!d || d.exitCode !== null || d.signalCode !== null) return;
  const gone = new Promise((r) => d.once('exit', r));
  d.kill('SIGKILL');
  await gone;
}

/** PIDs of the passt processes of VMs under `dir` (their argv[0] is `<runtime dir>/passt`). */
async function passtPidsUsing(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const argv0 = (await fs.readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '')).split('\0')[0] ?? '';
    if (path.basename(argv0) === 'passt' && argv0.startsWith(dir)) pids.push(Number(name));
  }
  return pids;
}

/** The host's IPv4 address on the interface of its default route (what a LAN peer would connect to). */
async function hostAddress(): Promise<string> {
  const dev = /\bdev (\S+)/.exec((await run('ip', ['-4', 'route', 'show', 'default'])).stdout)?.[1];
  const addr = (os.networkInterfaces()[dev ?? ''] ?? []).find((a) => a.family === 'IPv4' && !a.internal)?.address;
  assert.ok(addr, `the host has an IPv4 address on its default route's interface (${dev})`);
  return addr;
}

/** A TCP service on the host that greets and counts who connected. */
async function greeter(host: string, greeting: string): Promise<{ port: number; peers: string[]; close: () => Promise<void> }> {
  const peers: string[] = [];
  const server = net.createServer((s) => {
    peers.push(`${s.remoteAddress}:${s.remotePort}`);
    s.on('error', () => undefined); // a probe that resets
    s.end(greeting);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    peers,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function stopDaemon(): Promise<void> {
  const d = daemon;
  daemon = null;
  if (!d || d.exitCode !== null || d.signalCode !== null) return;
  const gone = new Promise((r) => d.once('exit', r));
  d.kill('SIGTERM');
  await Promise.race([gone, new Promise((r) => setTimeout(r, 10_000))]);
  if (d.exitCode === null && d.signalCode === null) d.kill('SIGKILL');
}

async function cleanUp(): Promise<void> {
  await stopDaemon();
  await registry?.stop().catch(() => undefined);
  // Everything the user still runs (QEMU, a builder in a user namespace), the user and its files.
  await tu?.cleanup();
}

describe('rootless mode: the daemon and CLI as an ordinary user', { skip: SKIP }, () => {
  before(async () => {
    if (!IS_ROOT) return;
    await fs.access(path.join(BUSYBOX_LAYOUT, 'index.json')).catch(() => {
      throw new Error(`demo image missing at ${BUSYBOX_LAYOUT}: run the setup command first`);
    });
    // The user cannot write build/: bring the bundle (and its user-namespace child) up to date as root first.
    await run(BOSON, ['--version'], { cwd: PACKAGE_ROOT });
    tu = await createThrowawayUser('boson-rl');
    ({ user, uid, gid, base, home } = tu);
    stateDir = path.join(home, 'state');
    runDir = path.join(home, 'run');

    // A registry image whose files belong to several users (and a setuid file, a fifo), and one with a device node.
    registry = await startRegistry();
    const busybox = await busyboxLayerTar();
    const owners = await makeTar([
      { name: 'srv/', type: 'directory', uid: 1000, gid: 1000, mode: 0o750 },
      { name: 'srv/data.txt', content: 'owned by 1000\n', uid: 1000, gid: 1000, mode: 0o640 },
      { name: 'srv/tool', content: '#!/bin/sh\n', uid: 1234, gid: 5678, mode: 0o4755 },
      { name: 'srv/nobody/', type: 'directory', uid: 65534, gid: 65534 },
      { name: 'srv/pipe', type: 'fifo', uid: 33, gid: 33, mode: 0o600 },
      // File capabilities set inside the user namespace are stored as v3 (namespaced) ones, which mkfs, run in the
      // namespace too, reads back as plain v2; trusted.* is refused there (EPERM): a warning, not a failure.
      {
        name: 'srv/cat',
        content: await fs.readFile('/bin/busybox'),
        mode: 0o755,
        pax: { 'SCHILY.xattr.security.capability': capV2((1 << 7) | (1 << 10)), 'SCHILY.xattr.trusted.boson': 'x' },
      },
    ]);
    const device = await makeTar([{ name: 'srv/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 }]);
    const layout = path.join(base, 'layout');
    await writeOciLayout(layout, [
      { config: testConfig(), layers: [{ tar: busybox }, { tar: owners }], refName: 'owners' },
      { config: testConfig(), layers: [{ tar: busybox }, { tar: device }], refName: 'device' },
    ]);
    await pushLayout(layout, 'owners', `${registry.host}/rl/owners:1`);
    await pushLayout(layout, 'device', `${registry.host}/rl/device:1`);

    await startDaemon();
  });

  after(async () => {
    if (!IS_ROOT) return;
    const left = stateDir ? await qemuPidsUsing(stateDir) : [];
    const leftPassts = runDir ? await passtPidsUsing(runDir) : [];
    await cleanUp();
    assert.equal(
      await fs.access(base).then(
        () => true,
        () => false,
      ),
      false,
      'the temp dir is gone',
    );
    assert.deepEqual(left, [], 'the suite removed every container it ran');
    assert.deepEqual(leftPassts, [], 'no passt outlived its VM');
  });

  test('boson info shows rootless mode and XDG directories; nothing is missing', async () => {
    const r = await boson(['info', '--json'], {
      ...userEnv(),
      BOSON_STATE_DIR: undefined,
      BOSON_RUN_DIR: undefined,
      XDG_RUNTIME_DIR: path.join(home, 'xdg-run'),
    });
    assert.equal(r.code, 0, r.stderr + out(r));
    const info = JSON.parse(out(r));
    assert.equal(info.mode, 'rootless');
    assert.equal(info.paths.rootless, true);
    assert.equal(info.paths.stateDir, path.join(home, '.local', 'share', 'boson'));
    assert.equal(info.paths.runDir, path.join(home, 'xdg-run', 'boson'));
    assert.deepEqual(info.problems, []);
  });

  test('pull from a registry: the root disk keeps the image owners (built in a user namespace)', async () => {
    const pulled = await boson(['pull', '-q', `${registry!.host}/rl/owners:1`]);
    assert.equal(pulled.code, 0, pulled.stderr);
    const r = await boson([
      'run',
      '--rm',
      `${registry!.host}/rl/owners:1`,
      'sh',
      '-c',
      'ls -lnd /srv /srv/data.txt /srv/tool /srv/nobody /srv/pipe | awk "{print \\$1, \\$3, \\$4, \\$NF}"',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      out(r),
      [
        'drwxr-x--- 1000 1000 /srv',
        '-rw-r----- 1000 1000 /srv/data.txt',
        'drwxr-xr-x 65534 65534 /srv/nobody',
        'prw------- 33 33 /srv/pipe',
        '-rwsr-xr-x 1234 5678 /srv/tool',
        '',
      ].join('\n'),
    );
    const caps = await boson(['run', '--rm', '-u', '1000', `${registry!.host}/rl/owners:1`, '/srv/cat', '/proc/self/status']);
    assert.equal(caps.code, 0, caps.stderr);
    assert.match(out(caps), /^CapEff:\t0000000000000480$/m, 'the file capability works in the guest');
    const dev = await boson(['pull', '-q', `${registry!.host}/rl/device:1`]);
    assert.equal(dev.code, 95, dev.stderr);
    assert.match(dev.stderr, /device node/);
    // Nothing of the namespace's is left behind: its staging trees were removed from inside it.
    assert.deepEqual(await fs.readdir(path.join(stateDir, 'images', 'tmp', 'userns')).catch(() => []), []);
    assert.deepEqual(await fs.readdir(`/dev/shm/boson-${uid}/userns`).catch(() => []), []);
  });

  test('a container cannot reach the host loopback, by the gateway or any other address; the host on its LAN address and DNS work', async (t) => {
    const loopback = await greeter('127.0.0.1', 'loopback-secret\n');
    const lanIp = await hostAddress();
    const lan = await greeter(lanIp, 'lan-hello\n');
    t.after(async () => {
      await loopback.close();
      await lan.close();
    });
    const name = 'deb.debian.org';
    const hostAnswer = (await run('getent', ['ahostsv4', name]).catch(() => ({ stdout: '' }))).stdout.split(/\s+/)[0] ?? '';
    const P = loopback.port;
    // Every address through which QEMU's user networking (slirp) or a user-mode stack could hand a connection to the
    // host's loopback: the gateway, the DNS address, the host's own address (a service on 127.0.0.1 is not there), and
    // 127.0.0.1 itself, sent out of eth0 by a guest root that takes loopback out of its local table (route_localnet).
    const script = [
      'echo "kernel $(uname -r)"',
      `for a in 10.0.2.2 10.0.2.3 ${lanIp}; do echo "$a: $(timeout 5 nc -w 3 $a ${P} </dev/null 2>&1 | head -c 200)"; done`,
      `echo "lan: $(timeout 6 nc -w 5 ${lanIp} ${lan.port} </dev/null 2>&1 | head -c 200)"`,
      `echo "dns: $(timeout 10 nslookup ${name} 2>&1 | grep -A3 '^Name:' | grep -o 'Address[^:]*: *[0-9.]*' | head -1)"`,
      'sysctl -w net.ipv4.conf.eth0.route_localnet=1 >/dev/null && sysctl -w net.ipv4.conf.all.route_localnet=1 >/dev/null',
      'ip route del local 127.0.0.0/8 dev lo table local; ip route del local 127.0.0.1 dev lo table local',
      'ip route add 127.0.0.0/8 via 10.0.2.2 dev eth0 && echo "routed: $(ip route get 127.0.0.1 | head -1)"',
      `for a in 127.0.0.1 127.0.0.2; do echo "$a: $(timeout 5 nc -w 3 $a ${P} </dev/null 2>&1 | head -c 200)"; done`,
    ].join('\n');
    assert.equal((await boson(['image', 'import', BUSYBOX_LAYOUT])).code, 0);
    const r = await boson(['run', '--rm', 'busybox', 'sh', '-c', script]);
    const text = out(r);
    t.diagnostic(text);
    assert.equal(r.code, 0, r.stderr + text);
    // The probes ran in the guest: its kernel, not the host's.
    const kernel = /^kernel (\S+)$/m.exec(text)?.[1];
    assert.ok(kernel && kernel !== os.release(), `ran in a guest kernel (${kernel}), not the host's ${os.release()}`);
    assert.match(text, /^routed: 127\.0\.0\.1 via 10\.0\.2\.2 dev eth0/m, 'the guest sent loopback traffic out of eth0');
    assert.doesNotMatch(text, /loopback-secret/, 'no guest connection reached the service on the host loopback');
    assert.deepEqual(loopback.peers, [], 'the loopback service saw no connection: ' + text);
    assert.match(text, /^lan: lan-hello$/m, 'a host service on the LAN address is reachable');
    assert.equal(lan.peers.length, 1);
    if (hostAnswer) assert.match(text, new RegExp(`^dns: Address[^:]*: *${hostAnswer.replace(/\./g, '\\.')}$`, 'm'), 'DNS answers');
  });

  test('run -d with a published port, reached from the host; exec, logs, ps, stop, rm', async (t) => {
    t.after(() => boson(['rm', '-f', 'web']));
    assert.equal((await boson(['image', 'import', BUSYBOX_LAYOUT])).code, 0);
    const port = await freePort();
    const httpd = 'mkdir -p /www && echo "hello from $(hostname)" > /www/index.html && echo serving && exec httpd -f -p 80 -h /www';
    const started = await boson([
      'run',
      '-d',
      '--name',
      'web',
      '--hostname',
      'rlhost',
      '-p',
      `127.0.0.1:${port}:80`,
      '-v',
      'rlvol:/data',
      'busybox',
      'sh',
      '-c',
      httpd,
    ]);
    assert.equal(started.code, 0, started.stderr);
    // Once the container runs, no connection to its published port may hang: the guest announced itself before the
    // process started (passt learns where the guest is only from a frame the guest sent, and never resends its SYN).
    await waitFor(async () => (await boson(['logs', 'web'])).stdout.toString().includes('serving'), 30_000, 'the server to start');
    let body = '';
    let hung = 0;
    await waitFor(async () => (body = await get(port, '/', () => hung++)) !== '', 30_000, 'the published port');
    assert.equal(body, 'hello from rlhost\n');
    assert.equal(hung, 0, 'a connection to the published port of a running container hung');

    const qemu = await qemuPidsUsing(stateDir);
    assert.equal(qemu.length, 1);
    const status = await fs.readFile(`/proc/${qemu[0]}/status`, 'utf8');
    assert.match(status, new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s`, 'm'), 'QEMU runs as the user');

    const ex = await boson([
      'exec',
      'web',
      'sh',
      '-c',
      'id -u; ip -4 addr show eth0 | grep -o "inet [0-9./]*"; echo kept > /data/f && cat /data/f',
    ]);
    assert.equal(ex.code, 0, ex.stderr);
    assert.equal(out(ex), '0\ninet 10.0.2.15/24\nkept\n', 'the guest has QEMU user networking and a volume');
    assert.equal(out(await boson(['logs', 'web'])), 'serving\n');
    assert.match(out(await boson(['ps'])), /web/);

    const low = await boson(['run', '-d', '-p', '80:80', 'busybox', 'true']);
    assert.equal(low.code, 95, low.stderr);
    assert.match(low.stderr, /port 80 needs root/);
    const net = await boson(['network', 'create', 'front']);
    assert.equal(net.code, 95, net.stderr);
    const bind = await boson(['run', '-d', '-v', `${home}:/h`, 'busybox', 'true']);
    assert.equal(bind.code, 95, bind.stderr);
    assert.match(bind.stderr, /bind mounts/);
    assert.equal(
      out(await boson(['ps', '-aq']))
        .trim()
        .split('\n').length,
      1,
      'refused containers were not created',
    );

    // Suspend and resume work rootless too: QEMU's user networking is saved with the VM, and the new QEMU forwards
    // the published port again.
    const suspended = await boson(['suspend', 'web']);
    assert.equal(suspended.code, 0, suspended.stderr);
    assert.deepEqual(await qemuPidsUsing(stateDir), [], 'no QEMU runs while the container is suspended');
    assert.equal(await get(port, '/'), '', 'nothing answers on the port while suspended');
    const resumed = await boson(['resume', 'web']);
    assert.equal(resumed.code, 0, resumed.stderr);
    await waitFor(async () => (await get(port, '/')) === 'hello from rlhost\n', 30_000, 'the published port after the resume');
    assert.equal(out(await boson(['exec', 'web', 'cat', '/data/f'])), 'kept\n', 'the volume after the resume');

    assert.equal((await boson(['stop', '-t', '2', 'web'])).code, 0);
    assert.equal(await get(port, '/'), '', 'the port is released with the VM');
    assert.deepEqual(await qemuPidsUsing(stateDir), []);
    assert.equal((await boson(['rm', 'web'])).code, 0);
    assert.equal((await boson(['volume', 'rm', 'rlvol'])).code, 0);
    assert.equal(out(await boson(['ps', '-aq'])), '');
  });
  test('passt: one per VM, as the user, gone with its VM: on stop, when it dies, after kill -9 of the daemon, when it fails', async (t) => {
    t.after(async () => {
      if (!daemon) await startDaemon().catch(() => undefined);
      await boson(['rm', '-f', 'pt', 'pt2', 'pt3']);
    });
    assert.equal((await boson(['image', 'import', BUSYBOX_LAYOUT])).code, 0);
    const port = await freePort();
    const httpd = 'mkdir -p /www && echo up > /www/index.html && exec httpd -f -p 80 -h /www';
    const started = await boson(['run', '-d', '--name', 'pt', '-p', `127.0.0.1:${port}:80`, 'busybox', 'sh', '-c', httpd]);
    assert.equal(started.code, 0, started.stderr);
    const id16 = out(started).trim().slice(0, 16);
    await waitFor(async () => (await get(port, '/')) === 'up\n', 30_000, 'the published port');
    const [passt, ...more] = await passtPidsUsing(path.join(runDir, 'vms', id16));
    assert.ok(passt !== undefined && more.length === 0, 'one passt for the VM');
    assert.match(await fs.readFile(`/proc/${passt}/status`, 'utf8'), new RegExp(`^Uid:\\s+${uid}\\s`, 'm'), 'passt runs as the user');
    assert.equal((await fs.readFile(path.join(runDir, 'vms', id16, 'passt0.pid'), 'utf8')).trim(), String(passt));

    // The daemon killed: VM and passt keep serving; a new daemon re-attaches to both.
    await killDaemon();
    assert.equal(await get(port, '/'), 'up\n', 'the port works with no daemon');
    await startDaemon();
    assert.equal((await boson(['exec', 'pt', 'true'])).code, 0);
    assert.deepEqual(await passtPidsUsing(runDir), [passt]);

    // Its passt killed: the VM is stopped (a VM without its network is not left running), nothing is left.
    const qemu = await qemuPidsUsing(path.join(runDir, 'vms', id16));
    assert.equal(qemu.length, 1);
    process.kill(passt, 'SIGKILL');
    await waitFor(async () => (await qemuPidsUsing(stateDir)).length === 0, 15_000, 'the VM to stop with its passt');
    await waitFor(async () => !/Up /.test(out(await boson(['ps', '-a']))), 15_000, 'the container to be seen exited');
    assert.match(await fs.readFile(path.join(runDir, 'vms', id16, 'qemu.log'), 'utf8').catch(() => 'passt (gone dir)'), /passt/);

    // Started again and stopped: a new passt, gone with the VM.
    assert.equal((await boson(['start', 'pt'])).code, 0);
    await waitFor(async () => (await get(port, '/')) === 'up\n', 30_000, 'the port after a restart');
    assert.equal((await passtPidsUsing(runDir)).length, 1);
    assert.equal((await boson(['stop', '-t', '1', 'pt'])).code, 0);
    assert.deepEqual(await passtPidsUsing(runDir), [], 'stop ends passt');
    assert.deepEqual(await qemuPidsUsing(stateDir), []);

    // The daemon killed while it starts a container (passt up, the guest booting): the next daemon leaves nothing.
    const starting = spawnAsUser(['run', '-d', '--name', 'pt2', 'busybox', 'sleep', '600']);
    starting.on('error', () => undefined);
    await waitFor(async () => (await passtPidsUsing(runDir)).length > 0, 30_000, 'a passt for the starting container');
    await killDaemon();
    await startDaemon();
    await waitFor(
      async () => {
        const [p, q] = [await passtPidsUsing(runDir), await qemuPidsUsing(stateDir)];
        // Either it got to run (one VM, one passt) or nothing of it is left.
        return p.length === q.length && p.length <= 1;
      },
      15_000,
      'as many passts as VMs after recovery',
    );
    await boson(['rm', '-f', 'pt2']);
    await waitFor(async () => (await passtPidsUsing(runDir)).length === 0, 10_000, 'no passt after rm');

    // No passt, or one that fails: a typed error, no VM and no passt left, and never slirp instead.
    await killDaemon();
    const fake = path.join(home, 'fake-passt');
    await fs.writeFile(fake, '#!/bin/sh\necho "fake passt: cannot bind" >&2\nexit 1\n', { mode: 0o755 });
    for (const [bin, code, words] of [
      ['/nonexistent/passt', 120, /passt .* is not installed/],
      [fake, 121, /fake passt: cannot bind/],
    ] as const) {
      await startDaemon({ ...userEnv(), BOSON_PASST: bin });
      const r = await boson(['run', '-d', '--name', 'pt3', 'busybox', 'sleep', '600']);
      assert.equal(r.code, code, r.stderr);
      assert.match(r.stderr, words);
      assert.deepEqual(await qemuPidsUsing(stateDir), []);
      assert.deepEqual(await passtPidsUsing(runDir), []);
      assert.equal((await boson(['rm', '-f', 'pt3'])).code, 0);
      await killDaemon();
    }
    await startDaemon();
    assert.equal((await boson(['rm', 'pt'])).code, 0);
  });
  test(
    'cold start timing (BOSON_RL_BENCH=n: n times `run -d busybox sleep` then `rm -f`, printed)',
    { skip: !process.env.BOSON_RL_BENCH },
    async (t) => {
      assert.equal((await boson(['image', 'import', BUSYBOX_LAYOUT])).code, 0);
      const starts: number[] = [];
      const removals: number[] = [];
      for (let i = 0; i < Number(process.env.BOSON_RL_BENCH); i++) {
        const t0 = performance.now();
        const r = await boson(['run', '-d', '--name', 'bench', 'busybox', 'sleep', '60']);
        starts.push(performance.now() - t0);
        assert.equal(r.code, 0, r.stderr);
        const t1 = performance.now();
        assert.equal((await boson(['rm', '-f', 'bench'])).code, 0);
        removals.push(performance.now() - t1);
      }
      const median = (xs: number[]): string => [...xs].sort((a, b) => a - b)[xs.length >> 1]!.toFixed(0);
      const list = (xs: number[]): string => xs.map((x) => x.toFixed(0)).join(' ');
      t.diagnostic(
        `start ${list(starts)} ms (median ${median(starts)}); rm -f ${list(removals)} ms (median ${median(removals)}); load ${os.loadavg()[0]!.toFixed(1)}`,
      );
    },
  );
});
