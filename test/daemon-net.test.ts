/**
 * Container networking through the daemon, end to end with real micro-VMs, taps, bridges and nftables:
 * a published port reached with a real HTTP request from the host, name resolution on a user-defined network,
 * isolation between networks, and the network commands.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useDaemonHost, runBoson, waitFor, freePort } from './helpers.ts';

const { host } = useDaemonHost();
const boson = (...args: string[]): ReturnType<typeof runBoson> => runBoson(host(), args, { timeoutMs: 90_000 });
const out = (r: { stdout: Buffer }): string => r.stdout.toString();
const HTTPD = 'mkdir -p /www && echo "hello from $(hostname)" > /www/index.html && exec httpd -f -p 80 -h /www';
/** An HTTP GET from inside a container (busybox nc; its wget -q crashes in this busybox build). */
const GET = (target: string): string[] => ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${target} 80 | tail -n 1`];

describe('daemon networking', () => {
  test('a published port answers a real HTTP request from the host; the guest got its address, route and DNS', async (t) => {
    const port = await freePort();
    t.after(() => boson('rm', '-f', 'web', 'clash'));
    const run = await boson('run', '-d', '--name', 'web', '--hostname', 'webhost', '-p', `127.0.0.1:${port}:80`, 'busybox', 'sh', '-c', HTTPD);
    assert.equal(run.code, 0, run.stderr);
    let body = '';
    await waitFor(async () => {
      body = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text(), () => '');
      return body !== '';
    }, 30_000, 'the published port');
    assert.equal(body, 'hello from webhost\n');
    const info = JSON.parse(out(await boson('inspect', 'web')))[0];
    assert.equal(info.endpoint.ports[0].hostPort, port);
    const guest = await boson('exec', 'web', 'sh', '-c', 'ip -4 addr show eth0 | grep -o "inet [0-9./]*"; ip route | grep default; cat /etc/resolv.conf');
    assert.match(out(guest), new RegExp(`inet ${info.endpoint.address.replace(/\./g, '\\.')}/`));
    assert.match(out(guest), new RegExp(`default via ${info.endpoint.gateway.replace(/\./g, '\\.')}`));
    assert.match(out(guest), /nameserver /);
    const busy = await boson('run', '-d', '--name', 'clash', '-p', `127.0.0.1:${port}:80`, 'busybox', 'true');
    assert.notEqual(busy.code, 0, 'a host port already published is refused');
    assert.match(busy.stderr, /port|in use|allocated/i);
    await boson('rm', '-f', 'clash');
    assert.equal((await boson('rm', '-f', 'web')).code, 0);
    const after = await fetch(`http://127.0.0.1:${port}/`).then(() => 'answered', () => 'refused');
    assert.equal(after, 'refused', 'the port is released with the container');
  });

  test('containers on one user-defined network reach each other by name; another network cannot reach them', async () => {
    assert.equal((await boson('network', 'create', 'front')).code, 0);
    assert.equal((await boson('network', 'create', 'back')).code, 0);
    assert.match(out(await boson('network', 'ls')), /front\s+bridge/);
    assert.equal((await boson('run', '-d', '--name', 'api', '--network', 'front', 'busybox', 'sh', '-c', HTTPD)).code, 0);
    assert.equal((await boson('run', '-d', '--name', 'client', '--network', 'front', 'busybox', 'sleep', '600')).code, 0);
    assert.equal((await boson('run', '-d', '--name', 'outsider', '--network', 'back', 'busybox', 'sleep', '600')).code, 0);
    let answer = '';
    await waitFor(async () => {
      answer = out(await boson('exec', 'client', ...GET('api')));
      return answer.includes('hello');
    }, 30_000, 'client to reach api by name');
    assert.equal(answer, 'hello from api\n'.replace('api', JSON.parse(out(await boson('inspect', 'api')))[0].config.hostname));
    const apiAddress = JSON.parse(out(await boson('inspect', 'api')))[0].endpoint.address as string;
    const blocked = await boson('exec', 'outsider', ...GET(apiAddress));
    assert.equal(out(blocked), '', 'a container on another network cannot reach it');
    const lookup = await boson('exec', 'outsider', 'nslookup', 'api');
    assert.doesNotMatch(out(lookup), new RegExp(apiAddress.replace(/\./g, '\\.')), 'nor resolve its name');
    const inUse = await boson('network', 'rm', 'front');
    assert.notEqual(inUse.code, 0);
    assert.match(inUse.stderr, /in use|endpoints|container/i);
    assert.equal((await boson('rm', '-f', 'api', 'client', 'outsider')).code, 0);
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
