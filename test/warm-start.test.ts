/**
 * Warm start (src/machine/warm-pool.ts): a daemon with BOSON_WARM_IMAGES keeps pre-booted micro-VMs; a start takes
 * one. Checked here: warm starts give the results cold ones do (output, streams, exit code, env, hostname, exec);
 * each clone has its own identity (hostname, MAC, address, boot id, random bytes); a bad pool entry is replaced
 * without the user seeing an error; a daemon killed -9 with a full pool leaves nothing after the next `boson up`
 * and its shutdown (no QEMU, pool directory, tap or cgroup).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { MachineClient } from '../src/machine/client/index.ts';
import type { WarmPoolView } from '../src/machine/port/index.ts';
import { warmView, makeTestHost, qemuPidsUsing, runBoson, testDaemon, waitFor, type TestHost } from './helpers.ts';

let host: TestHost;
const daemon = testDaemon(() => host);

before(async () => {
  host = await makeTestHost();
  host.env = { ...host.env, BOSON_WARM_IMAGES: 'busybox', BOSON_WARM_PER_SHAPE: '2', BOSON_WARM_MEMORY_MIB: '1024' };
  await daemon.start();
});

after(async () => {
  await daemon.stop();
  const left = await qemuPidsUsing(host.stateDir);
  await host.cleanup();
  assert.deepEqual(left, [], 'the daemon killed its warm VMs at shutdown, and the suite removed its containers');
});

const runDir = (): string => path.join(host.stateDir, 'run');

function warm(): ReturnType<typeof warmView> {
  return warmView(host);
}

/** Waits until the pool has `n` ready VMs of the `--rm` (or, `kept`, the kept-container) shape with a network card. */
async function ready(n = 1, kept = false): Promise<void> {
  await waitFor(async () => (await warm()).shapes.some((s) => s.journal === kept && s.nic && s.ready >= n), 180_000, `${n} warm VMs`);
}

async function boson(args: string[]): Promise<string> {
  const r = await runBoson(host, args, { timeoutMs: 120_000 });
  assert.equal(r.code, 0, `boson ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.toString();
}

/** The pool's VM directories (`<run dir>/vms/w-*`) and their QEMU pids. */
async function poolVms(): Promise<Array<{ dir: string; pid: number }>> {
  const vms: Array<{ dir: string; pid: number }> = [];
  for (const name of await readdir(path.join(runDir(), 'vms')).catch(() => [] as string[])) {
    if (!name.startsWith('w-')) continue;
    const pid = Number((await readFile(path.join(runDir(), 'vms', name, 'qemu.pid'), 'utf8').catch(() => '0')).trim());
    if (pid > 0) vms.push({ dir: name, pid });
  }
  return vms;
}

/** Taps of this host's network prefix; `spare`: only those on no bridge (the pool's, not yet a container's). */
function taps(spare = false): string[] {
  const prefix = host.env.BOSON_NET_PREFIX!;
  const links = JSON.parse(execFileSync('ip', ['-j', 'link', 'show']).toString()) as Array<{ ifname: string; master?: string }>;
  return links.filter((l) => l.ifname.startsWith(`${prefix}t`) && (!spare || l.master === undefined)).map((l) => l.ifname);
}

/** Which of the named pool cgroups (`boson/<name>`) exist under any controller (the parent is shared by all hosts). */
async function cgroupsOf(names: string[]): Promise<string[]> {
  const found: string[] = [];
  for (const controller of ['memory', 'pids', 'cpu', 'unified', '']) {
    const dir = path.join('/sys/fs/cgroup', controller, 'boson');
    for (const name of await readdir(dir).catch(() => [] as string[])) if (names.includes(name)) found.push(path.join(dir, name));
  }
  return found;
}

describe('warm start', () => {
  test('a warm run gives what a cold one does: output, streams, exit code, env, hostname', async () => {
    await ready();
    const before = await warm();
    assert.ok(before.enabled);
    const r = await runBoson(
      host,
      [
        'run',
        '--rm',
        '-e',
        'FOO=bar baz',
        '--hostname',
        'warmhost',
        'busybox',
        'sh',
        '-c',
        'echo out $FOO; echo err >&2; hostname; exit 7',
      ],
      { timeoutMs: 120_000 },
    );
    assert.equal(r.code, 7, r.stderr);
    assert.equal(r.stdout.toString(), 'out bar baz\nwarmhost\n');
    assert.match(r.stderr, /^err$/m);
    const afterRun = await warm();
    assert.equal(afterRun.hits, before.hits + 1, 'the run took a warm VM');
    // Stdin reaches the process, and a command that does not exist is 127, as cold.
    await ready();
    const echoed = await runBoson(host, ['run', '--rm', '-i', 'busybox', 'cat'], { input: 'through stdin\n', timeoutMs: 120_000 });
    assert.equal(echoed.code, 0, echoed.stderr);
    assert.equal(echoed.stdout.toString(), 'through stdin\n');
    await ready();
    const missing = await runBoson(host, ['run', '--rm', 'busybox', 'no-such-command'], { timeoutMs: 120_000 });
    assert.equal(missing.code, 127, missing.stderr);
    assert.equal((await warm()).hits, afterRun.hits + 2);
    // boson info shows the pool, as /metrics does.
    const info = JSON.parse(await boson(['info', '--json'])) as { warm: WarmPoolView | null };
    assert.ok(info.warm?.enabled);
    assert.ok(info.warm.hits >= afterRun.hits + 2);
    assert.match(await boson(['info']), /^Warm start: +busybox: 2 per shape/m);
    const metrics = await (await new MachineClient(path.join(runDir(), 'boson.sock')).raw('GET', '/metrics')).toArray();
    assert.match(Buffer.concat(metrics as Buffer[]).toString(), /^boson_warm_hits \d+$/m);
  });

  test('two warm clones have their own hostname, MAC, address, boot id and random bytes; exec works in them', async () => {
    await ready(2, true);
    const before = await warm();
    const ids = [
      (await boson(['run', '-d', 'busybox', 'sleep', '600'])).trim(),
      (await boson(['run', '-d', 'busybox', 'sleep', '600'])).trim(),
    ];
    assert.equal((await warm()).hits, before.hits + 2, 'both took a warm VM');
    const probe =
      'hostname; cat /sys/class/net/eth0/address; ip -4 -o addr show eth0 | awk "{print \\$4}"; cat /proc/sys/kernel/random/boot_id; head -c16 /dev/urandom | od -An -tx1 | tr -d " \\n"; echo';
    const seen = await Promise.all(ids.map(async (id) => (await boson(['exec', id, 'sh', '-c', probe])).trim().split('\n')));
    for (const s of seen) assert.equal(s.length, 5, `five lines: ${s.join(' | ')}`);
    const [a, b] = seen as [string[], string[]];
    for (let i = 0; i < 5; i++) assert.notEqual(a[i], b[i], `line ${i} differs: ${a[i]}`);
    // The hostname is the container's short id, the MAC and address are the ones the network manager gave it.
    for (const [i, id] of ids.entries()) {
      assert.equal(seen[i]![0], id.slice(0, 12));
      const inspect = JSON.parse(await boson(['inspect', id])) as
        Array<{ endpoint?: { mac: string; address: string } }> | { endpoint?: { mac: string; address: string } };
      const view = Array.isArray(inspect) ? inspect[0]! : inspect;
      if (view.endpoint) {
        assert.equal(seen[i]![1], view.endpoint.mac);
        assert.equal(seen[i]![2]!.split('/')[0], view.endpoint.address);
      }
    }
    // The two reach each other over the bridge (the guest's MAC is known to QEMU).
    await boson(['exec', ids[0]!, 'ping', '-c', '1', '-W', '5', seen[1]![2]!.split('/')[0]!]);
    await boson(['rm', '-f', ...ids]);
  });

  test('a bad pool entry is replaced and the start boots cold, without an error', async () => {
    await ready(2);
    const before = await warm();
    // Every ready --rm VM with a card stops answering (QEMU stopped): a start that takes one cannot resume it.
    const stopped = await poolVms();
    for (const vm of stopped) process.kill(vm.pid, 'SIGSTOP');
    try {
      const r = await runBoson(host, ['run', '--rm', 'busybox', 'echo', 'still fine'], { timeoutMs: 120_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.toString(), 'still fine\n');
      assert.equal(r.stderr, '');
      const afterRun = await warm();
      assert.ok(afterRun.fallbacks > before.fallbacks, 'the start fell back to a cold boot');
    } finally {
      for (const vm of stopped) {
        try {
          process.kill(vm.pid, 'SIGCONT');
        } catch {
          // discarded (killed) already
        }
      }
    }
    // A warm VM that dies is dropped and replaced. The victim must be a ready one: a VM that dies while it boots is a
    // failed boot, not a discarded entry, and the pool may still be booting one (of either shape) right now.
    await ready(2);
    await waitFor(async () => (await warm()).shapes.every((s) => s.booting === 0), 180_000, 'the pool to finish booting');
    const victim = (await poolVms())[0]!;
    const dropped = (await warm()).discarded;
    process.kill(victim.pid, 'SIGKILL');
    await waitFor(async () => (await warm()).discarded > dropped, 30_000, 'the dead warm VM to be discarded');
    await waitFor(async () => !(await poolVms()).some((v) => v.dir === victim.dir), 10_000, 'its directory to be removed');
    assert.equal((await runBoson(host, ['run', '--rm', 'busybox', 'true'], { timeoutMs: 120_000 })).code, 0);
  });

  test('a daemon killed -9 with a full pool leaves nothing behind after the next boson up and its shutdown', async () => {
    // A container that took a warm VM is re-attached by the next daemon (its QEMU names the pool's directory).
    await ready(1, true);
    const hits = (await warm()).hits;
    const kept = (await boson(['run', '-d', 'busybox', 'sh', '-c', 'echo $$ > /tmp/pid; sleep 600'])).trim();
    assert.equal((await warm()).hits, hits + 1);
    // Its cgroup was renamed after it, as a cold-booted container's is named.
    const byId = await cgroupsOf([kept.slice(0, 16)]);
    if (process.geteuid?.() === 0) assert.ok(byId.length > 0, 'the container has its cgroup, named after it');
    await ready(2);
    const old = await poolVms();
    assert.ok(old.length >= 2, 'the pool has VMs');
    const oldTaps = taps(true);
    await daemon.kill9();
    // The warm VMs outlive the killed daemon...
    assert.ok(old.every((v) => pidAlive(v.pid)));
    await daemon.start();
    // ...and the next daemon kills them, releases their cgroups, deletes their taps and directories.
    await waitFor(() => old.every((v) => !pidAlive(v.pid)), 30_000, 'the old warm VMs to be killed');
    const current = new Set((await poolVms()).map((v) => v.dir));
    assert.deepEqual(await cgroupsOf(old.map((v) => v.dir)), [], "the old warm VMs' cgroups are released");
    assert.ok(
      old.every((v) => !current.has(v.dir)),
      'the old pool directories are gone',
    );
    await ready();
    const nowTaps = new Set(taps());
    assert.ok(
      oldTaps.every((t) => !nowTaps.has(t)),
      `old taps deleted: ${oldTaps.filter((t) => nowTaps.has(t)).join(' ')}`,
    );
    assert.equal((await runBoson(host, ['run', '--rm', 'busybox', 'true'], { timeoutMs: 120_000 })).code, 0);
    // The warm container survived both daemons' sweeps: still the same process, reachable by exec, stoppable.
    assert.equal((await boson(['exec', kept, 'cat', '/tmp/pid'])).trim().length > 0, true);
    assert.match(await boson(['ps']), new RegExp(kept.slice(0, 12)));
    await boson(['rm', '-f', kept]);
    assert.deepEqual(await cgroupsOf([kept.slice(0, 16)]), [], 'its cgroup went with it');
    // A clean shutdown kills the pool.
    const last = (await poolVms()).map((v) => v.dir);
    await daemon.stop();
    assert.deepEqual(await qemuPidsUsing(host.stateDir), []);
    assert.deepEqual(await poolVms(), []);
    assert.deepEqual(taps(), []);
    assert.deepEqual(await cgroupsOf(last), []);
    assert.deepEqual(await readdir(path.join(host.stateDir, 'warm')).catch(() => []), []);
    await daemon.start();
  });
});

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
