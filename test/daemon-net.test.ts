/**
 * Container networking through the daemon, end to end with real micro-VMs, taps, bridges and nftables:
 * a published port reached with a real HTTP request from the host, name resolution on a user-defined network,
 * isolation between networks, and the network commands.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useDaemonHost, runBoson, waitFor, withFreePort, type BosonResult } from './helpers.ts';

const { host } = useDaemonHost();
const boson = (...args: string[]): ReturnType<typeof runBoson> => runBoson(host(), args, { timeoutMs: 90_000 });
const out = (r: { stdout: Buffer }): string => r.stdout.toString();
const HTTPD = 'mkdir -p /www && echo "hello from $(hostname)" > /www/index.html && exec httpd -f -p 80 -h /www';
/**
 * An HTTP GET from inside a container (busybox nc; its wget -q crashes in this busybox build): prints the body's
 * last line and exits with nc's status (0 when it connected).
 */
const GET = (target: string): string[] => [
  'sh',
  '-c',
  `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${target} 80 > /tmp/answer; s=$?; tail -n 1 /tmp/answer; exit $s`,
];
const PORT_IN_USE = 89; // src/common/errors.ts
const NETWORK_IN_USE = 91;

describe('daemon networking', () => {
  test('a published port answers a real HTTP request from the host; the guest got its address, route and DNS', async (t) => {
    t.after(() => boson('rm', '-f', 'web', 'clash'));
    // The port was free a moment ago: if another process took it since (PORT_IN_USE), try again with another.
    const { port, result: run } = await withFreePort(
      async (p) => {
        await boson('rm', '-f', 'web');
        return boson('run', '-d', '--name', 'web', '--hostname', 'webhost', '-p', `127.0.0.1:${p}:80`, 'busybox', 'sh', '-c', HTTPD);
      },
      (r) => r.code === PORT_IN_USE,
    );
    assert.equal(run.code, 0, run.stderr);
    let body = '';
    await waitFor(
      async () => {
        body = await fetch(`http://127.0.0.1:${port}/`).then(
          (r) => r.text(),
          () => '',
        );
        return body !== '';
      },
      30_000,
      'the published port',
    );
    assert.equal(body, 'hello from webhost\n');
    const info = JSON.parse(out(await boson('inspect', 'web')))[0];
    assert.equal(info.endpoint.ports[0].hostPort, port);
    const guest = await boson(
      'exec',
      'web',
      'sh',
      '-c',
      'ip -4 addr show eth0 | grep -o "inet [0-9./]*"; ip route | grep default; cat /etc/resolv.conf',
    );
    assert.match(out(guest), new RegExp(`inet ${info.endpoint.address.replace(/\./g, '\\.')}/`));
    assert.match(out(guest), new RegExp(`default via ${info.endpoint.gateway.replace(/\./g, '\\.')}`));
    assert.match(out(guest), /nameserver /);
    const busy = await boson('run', '-d', '--name', 'clash', '-p', `127.0.0.1:${port}:80`, 'busybox', 'true');
    assert.equal(busy.code, PORT_IN_USE, `a host port already published is refused: ${busy.stderr}`);
    assert.match(busy.stderr, new RegExp(`Bind for 127\\.0\\.0\\.1:${port} failed: port is already allocated`));
    await boson('rm', '-f', 'clash');
    assert.equal((await boson('rm', '-f', 'web')).code, 0);
    const after = await fetch(`http://127.0.0.1:${port}/`).then(
      () => 'answered',
      () => 'refused',
    );
    assert.equal(after, 'refused', 'the port is released with the container');
  });

  test('containers on one user-defined network reach each other by name; another network cannot reach them', async (t) => {
    t.after(async () => {
      await boson('rm', '-f', 'api', 'client', 'outsider', 'neighbour');
      await boson('network', 'rm', 'front', 'back');
    });
    assert.equal((await boson('network', 'create', 'front')).code, 0);
    assert.equal((await boson('network', 'create', 'back')).code, 0);
    assert.match(out(await boson('network', 'ls')), /front\s+bridge/);
    assert.equal((await boson('run', '-d', '--name', 'api', '--network', 'front', 'busybox', 'sh', '-c', HTTPD)).code, 0);
    assert.equal((await boson('run', '-d', '--name', 'client', '--network', 'front', 'busybox', 'sleep', '600')).code, 0);
    assert.equal((await boson('run', '-d', '--name', 'outsider', '--network', 'back', 'busybox', 'sleep', '600')).code, 0);
    assert.equal((await boson('run', '-d', '--name', 'neighbour', '--network', 'back', 'busybox', 'sh', '-c', HTTPD)).code, 0);
    const inspect = async (name: string): Promise<{ address: string; hostname: string }> => {
      const c = JSON.parse(out(await boson('inspect', name)))[0];
      return { address: c.endpoint.address, hostname: c.config.hostname };
    };
    const [api, neighbour] = [await inspect('api'), await inspect('neighbour')];
    const quoted = (address: string): RegExp => new RegExp(`\\b${address.replace(/\./g, '\\.')}\\b`);
    /** An HTTP GET from `from` to `target`, until it answers (the server may still be starting). */
    const reach = async (from: string, target: string, hostname: string): Promise<void> => {
      let r: BosonResult | undefined;
      await waitFor(
        async () => (r = await boson('exec', from, ...GET(target))).code === 0 && out(r) !== '',
        30_000,
        `${from} to reach ${target}`,
      );
      assert.deepEqual([r!.code, out(r!)], [0, `hello from ${hostname}\n`], r!.stderr);
    };
    await reach('client', 'api', api.hostname);
    // Positive controls from the guest that then must fail: it reaches and resolves a server on its own network,
    // so its nc, its DNS server and its routes work, and a failure below is the isolation, nothing else.
    await reach('outsider', 'neighbour', neighbour.hostname);
    const found = await boson('exec', 'outsider', 'nslookup', 'neighbour');
    assert.equal(found.code, 0, `outsider resolves a name of its own network: ${out(found)}${found.stderr}`);
    assert.match(out(found), quoted(neighbour.address));
    await reach('outsider', neighbour.address, neighbour.hostname);
    // The same requests to the other network's container fail, each in its own way.
    const blocked = await boson('exec', 'outsider', ...GET(api.address));
    assert.deepEqual([blocked.code, out(blocked)], [1, ''], `a container on another network cannot reach it: ${blocked.stderr}`);
    const lookup = await boson('exec', 'outsider', 'nslookup', 'api');
    assert.equal(lookup.code, 1, `nor resolve its name: ${out(lookup)}${lookup.stderr}`);
    assert.doesNotMatch(out(lookup), quoted(api.address));
    assert.match(out(lookup) + lookup.stderr, /can't find api|NXDOMAIN/);
    const inUse = await boson('network', 'rm', 'front');
    // One name: the command exits with that error's documented status (NETWORK_IN_USE, docs/api.md).
    assert.equal(inUse.code, NETWORK_IN_USE, inUse.stderr);
    assert.match(inUse.stderr, /network front id [0-9a-f]+ has active endpoints \(api, client\)/);
    assert.equal((await boson('rm', '-f', 'api', 'client', 'outsider', 'neighbour')).code, 0);
    assert.equal((await boson('network', 'rm', 'front', 'back')).code, 0);
  });

  test('--network none gives no interface but lo; bad port specs are refused before anything is created', async () => {
    const none = await boson('run', '-d', '--name', 'island', '--network', 'none', 'busybox', 'sh', '-c', 'ls /sys/class/net');
    assert.equal(none.code, 0, none.stderr);
    await boson('wait', 'island');
    assert.equal(out(await boson('logs', 'island')), 'lo\n');
    await boson('rm', 'island');
    const bad = await boson('run', '-d', '-p', '99999:80', 'busybox', 'true');
    assert.equal(bad.code, 64, bad.stderr);
    const unknown = await boson('run', '-d', '--network', 'nope', 'busybox', 'true');
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /nope/);
    assert.equal(out(await boson('ps', '-aq')), '');
  });
});
