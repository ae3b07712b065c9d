/**
 * The demo image's networking tools by container name, through a daemon: busybox wget, nslookup and ping of a
 * server container's name on a user network. The daemon runs in a mount namespace of its own where
 * /etc/resolv.conf has search domains and a resolver that never answers (127.0.0.53 without systemd-resolved), as
 * on many CI and cloud hosts: the containers get those search domains, so their resolvers ask for
 * "web.corp.example" first. Before the network's DNS server answered those itself, wget took 8 s (two forwarded
 * queries timing out) and busybox's nslookup failed with "connection timed out".
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BOSON, makeTestHost, qemuPidsUsing, runBoson, waitFor, type TestHost } from './helpers.ts';

let host: TestHost;
let daemon: ChildProcess;
const boson = (...args: string[]): ReturnType<typeof runBoson> => runBoson(host, args, { timeoutMs: 90_000 });
const out = (r: { stdout: Buffer }): string => r.stdout.toString();

before(async () => {
  host = await makeTestHost();
  const resolv = path.join(host.stateDir, 'host-resolv.conf');
  await writeFile(resolv, 'nameserver 127.0.0.53\nsearch corp.example lab.example\noptions edns0\n');
  // unshare -m: the bind mount is seen by this daemon (and its QEMUs) only.
  daemon = spawn(
    'unshare',
    ['-m', '--propagation', 'private', 'sh', '-c', 'mount --bind "$1" /etc/resolv.conf && exec "$2" up', 'sh', resolv, BOSON],
    { env: host.env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  daemon.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  daemon.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  await waitFor(() => log.includes('listening') || daemon.exitCode !== null, 30_000, 'the daemon to listen');
  if (daemon.exitCode !== null) throw new Error(`boson up exited ${daemon.exitCode}: ${log}`);
});

after(async () => {
  if (daemon && daemon.exitCode === null) {
    const gone = new Promise((r) => daemon.once('exit', r));
    daemon.kill('SIGTERM');
    await gone;
  }
  if (!host) return;
  const left = await qemuPidsUsing(host.stateDir);
  await host.cleanup();
  assert.deepEqual(left, [], 'the suite removed every container it ran');
});

test('busybox wget, nslookup and ping reach a container by name on a host with search domains', async (t) => {
  t.after(async () => {
    await boson('rm', '-f', 'web');
    await boson('network', 'rm', 'names');
  });
  assert.equal((await boson('network', 'create', 'names')).code, 0);
  const web = await boson(
    'run',
    '-d',
    '--name',
    'web',
    '--network',
    'names',
    'busybox',
    'sh',
    '-c',
    'mkdir -p /www && echo served-by-web > /www/index.html && exec httpd -f -p 80 -h /www',
  );
  assert.equal(web.code, 0, web.stderr);
  const script = [
    'cat /etc/resolv.conf',
    // Each tool gets 6 s: before the fix wget needed 8 s, and nslookup gave up after 5 s.
    'timeout 6 wget -q -O- http://web/; echo "wget=$?"',
    'timeout 6 nslookup web; echo "nslookup=$?"',
    'timeout 6 ping -c1 -W2 web; echo "ping=$?"',
  ].join('; ');
  // The server may still be booting: try the client again until wget gets the page (or 60 s have passed).
  let text = '';
  await waitFor(
    async () => {
      const r = await boson('run', '--rm', '--network', 'names', 'busybox', 'sh', '-c', script);
      text = out(r) + r.stderr;
      return /wget=0/.test(text);
    },
    60_000,
    'wget to get the page',
  ).catch(() => undefined);
  assert.match(text, /^search corp\.example lab\.example$/m, "the containers got the host's search domains");
  assert.match(text, /served-by-web\nwget=0/, text);
  const webAddress = (JSON.parse(out(await boson('inspect', 'web')))[0] as { endpoint: { address: string } }).endpoint.address;
  assert.match(text, /Name:\s+web(\.corp\.example)?\nAddress:\s+\d+\.\d+\.\d+\.\d+/, text);
  assert.match(text, /nslookup=0/, text);
  assert.match(text, /PING web \(\d+\.\d+\.\d+\.\d+\)/, text);
  assert.match(text, /1 packets received/, text);
  assert.match(text, /ping=0/, text);
  assert.match(webAddress, /^\d+\.\d+\.\d+\.\d+$/);
  assert.ok(text.includes(`Address: ${webAddress}`) && text.includes(`PING web (${webAddress})`), `web's address ${webAddress} in ${text}`);
});
