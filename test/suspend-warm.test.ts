/**
 * Suspend and resume of a container that started on a warm VM (src/machine/warm-pool.ts): its VM was booted for
 * the pool, moved to the container (runtime directory relocated, MAC replaced by the guest), and still saves and
 * resumes with its memory, disk and network.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { warmView, makeTestHost, qemuPidsUsing, runBoson, testDaemon, waitFor, type TestHost } from './helpers.ts';

let host: TestHost;
const daemon = testDaemon(() => host);

before(async () => {
  host = await makeTestHost();
  host.env = { ...host.env, BOSON_WARM_IMAGES: 'busybox', BOSON_WARM_PER_SHAPE: '1', BOSON_WARM_MEMORY_MIB: '1024' };
  await daemon.start();
});

after(async () => {
  await daemon.stop();
  const left = await qemuPidsUsing(host.stateDir);
  await host.cleanup();
  assert.deepEqual(left, [], 'the daemon killed its warm VMs at shutdown, and the suite removed its containers');
});

const warm = (): ReturnType<typeof warmView> => warmView(host);

async function boson(...args: string[]): Promise<string> {
  const r = await runBoson(host, args, { timeoutMs: 120_000 });
  assert.equal(r.code, 0, `boson ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.toString();
}

const count = async (): Promise<number> => Number((await boson('exec', 'wc', 'cat', '/tmp/n')).trim());

describe('suspend and resume of a warm-started container', () => {
  test('its counter, its files and its network survive', async () => {
    await waitFor(async () => (await warm()).shapes.some((s) => s.journal && s.nic && s.ready >= 1), 180_000, 'a warm VM');
    const hits = (await warm()).hits;
    await boson(
      'run',
      '-d',
      '--name',
      'wc',
      'busybox',
      'sh',
      '-c',
      'echo kept > /file; i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.2; done',
    );
    assert.equal((await warm()).hits, hits + 1, 'the container took a warm VM');
    await waitFor(async () => (await count().catch(() => 0)) >= 3, 60_000, 'the counter');
    const before = await count();
    const mac = (await boson('exec', 'wc', 'cat', '/sys/class/net/eth0/address')).trim();
    await boson('suspend', 'wc');
    const inspected = JSON.parse(await boson('inspect', 'wc'))[0] as { state: string };
    assert.equal(inspected.state, 'suspended');
    await boson('resume', 'wc');
    const after = await count();
    assert.ok(after >= before && after < before + 40, `the counter continued from ${before} (now ${after})`);
    await waitFor(async () => (await count()) > after, 30_000, 'the counter to go on');
    assert.equal(await boson('exec', 'wc', 'cat', '/file'), 'kept\n');
    assert.equal((await boson('exec', 'wc', 'cat', '/sys/class/net/eth0/address')).trim(), mac, 'the same MAC');
    const gw = (await boson('exec', 'wc', 'sh', '-c', "ip route | awk '/default/ {print $3}'")).trim();
    await boson('exec', 'wc', 'ping', '-c', '1', '-W', '3', gw);
    await boson('rm', '-f', 'wc');
  });
});
