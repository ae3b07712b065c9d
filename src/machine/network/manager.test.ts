/**
 * NetworkManager against the real host (root): bridges, taps, the nftables table, DNS on the gateway, persistence
 * across a restart, reconcile, leftovers after a crash, and typed errors that leave nothing behind. No micro-VMs
 * here (test/network.test.ts boots them). Private names: prefix "bu" + random hex, subnets in 10.242.0.0/16.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isBosonError, type StateStore } from '../../common/index.ts';
import { openStateStore } from '../store/sqlite.ts';
import { NetworkManager } from './manager.ts';

const prefix = `bu${Math.floor(Math.random() * 0xffff)
  .toString(16)
  .padStart(4, '0')}`;
const stateDir = await mkdtemp(path.join(os.tmpdir(), 'boson-net-unit-'));
const opts = { stateDir, prefix, defaultSubnet: '10.242.0.0/24', subnetPool: '10.242.16.0/20' };
const managers: NetworkManager[] = [];
const stores: StateStore[] = [];
/** A manager with its own handle on the state directory's store, as a daemon started again has. */
const make = (extra: { stateDir?: string; rootless?: boolean; prefix?: string } = {}): NetworkManager => {
  const store = openStateStore(extra.stateDir ?? stateDir);
  stores.push(store);
  const m = new NetworkManager(store, { ...opts, ...extra });
  managers.push(m);
  return m;
};

const links = (): string[] =>
  (JSON.parse(execFileSync('ip', ['-j', 'link', 'show']).toString()) as Array<{ ifname: string }>)
    .map((l) => l.ifname)
    .filter((n) => n.startsWith(prefix));
const masterOf = (dev: string): string | undefined =>
  (JSON.parse(execFileSync('ip', ['-j', 'link', 'show', 'dev', dev]).toString()) as Array<{ master?: string }>)[0]?.master;
const table = (): string => {
  try {
    return execFileSync('nft', ['list', 'table', 'ip', prefix], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  } catch {
    return '';
  }
};
const id = (n: number): string => n.toString(16).padStart(4, '0').padEnd(64, 'c');

after(async () => {
  for (const m of managers) await m.teardown().catch(() => undefined);
  for (const s of stores) s.close();
  execFileSync('sh', [
    '-c',
    `for l in $(ip -o link show | awk -F': ' '{print $2}' | grep '^${prefix}'); do ip link del "$l"; done; nft delete table ip ${prefix} 2>/dev/null; true`,
  ]);
  await rm(stateDir, { recursive: true, force: true });
  assert.deepEqual(links(), [], 'no links left');
  assert.equal(table(), '', 'no nft table left');
});

test('init: default bridge, forwarding, NAT table; idempotent', async () => {
  const m = make();
  await m.init();
  await m.init();
  assert.deepEqual(links(), [`${prefix}0`]);
  assert.match(execFileSync('ip', ['-4', 'addr', 'show', 'dev', `${prefix}0`]).toString(), /inet 10\.242\.0\.1\/24/);
  assert.equal((await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim(), '1');
  assert.equal((await readFile(`/proc/sys/net/ipv4/conf/${prefix}0/route_localnet`, 'utf8')).trim(), '1');
  assert.match(table(), /ip saddr 10\.242\.0\.0\/24 oifname != "bu[0-9a-f]+0" masquerade/);
  const [bridge] = await m.list();
  assert.equal(bridge!.name, 'bridge');
  assert.ok(bridge!.builtin);
  await m.close();
});

test('networks, endpoints, ports, DNS, errors, persistence and reconcile', async () => {
  let m = make();
  await m.init();
  const a = await m.create('alpha', { labels: { team: 'x' } });
  assert.equal(a.subnet, '10.242.16.0/24');
  assert.equal(a.gateway, '10.242.16.1');
  assert.equal((await m.get(a.id.slice(0, 6))).name, 'alpha');
  const b = await m.create('beta', { subnet: '10.242.40.0/24', gateway: '10.242.40.254', internal: true });
  const err = (code: string) => (e: unknown) => isBosonError(e) && e.code === code;
  await assert.rejects(m.create('alpha'), err('NETWORK_NAME_IN_USE'));
  await assert.rejects(m.create('gamma', { subnet: '10.242.16.128/25' }), err('SUBNET_OVERLAP'));
  await assert.rejects(m.create('gamma', { subnet: '10.242.0.0/16' }), err('SUBNET_OVERLAP'));
  await assert.rejects(m.create('bad name'), err('INVALID_ARGUMENT'));
  await assert.rejects(m.create('gamma', { subnet: '10.242.50.0/24', gateway: '10.242.51.1' }), err('INVALID_ARGUMENT'));
  await assert.rejects(m.get('nope'), err('NETWORK_NOT_FOUND'));
  assert.deepEqual(
    (await m.list()).map((n) => n.name),
    ['bridge', 'alpha', 'beta'],
  );

  const e1 = await m.connect({
    containerId: id(1),
    containerName: 'web',
    aliases: ['www'],
    network: 'alpha',
    ports: [{ hostIp: '127.0.0.1', hostPort: 0, containerPort: 80, protocol: 'tcp' }],
  });
  assert.equal(e1.address, '10.242.16.2');
  assert.equal(e1.prefixLen, 24);
  assert.deepEqual(e1.dns, ['10.242.16.1']);
  assert.deepEqual(e1.hosts, [`10.242.16.2\t${id(1).slice(0, 12)}`]);
  assert.equal(e1.nic.kind, 'tap');
  const tap1 = e1.nic.kind === 'tap' ? e1.nic.ifname : '';
  assert.equal(masterOf(tap1), a.bridge);
  const hostPort = e1.ports[0]!.hostPort;
  assert.ok(hostPort > 0);
  assert.match(table(), new RegExp(`ip daddr 127\\.0\\.0\\.1 tcp dport ${hostPort} dnat to 10\\.242\\.16\\.2:80`));
  await assert.rejects(
    m.connect({ containerId: id(1), containerName: 'web', aliases: [], network: a.id, ports: [] }),
    err('ALREADY_CONNECTED'),
  );

  // A port in use is PORT_IN_USE, and the failed connect leaves no tap, lease or rule.
  const before = { links: links().sort(), table: table() };
  await assert.rejects(
    m.connect({
      containerId: id(2),
      containerName: 'api',
      aliases: [],
      network: 'alpha',
      ports: [{ hostIp: '0.0.0.0', hostPort, containerPort: 80, protocol: 'tcp' }],
    }),
    err('PORT_IN_USE'),
  );
  assert.deepEqual({ links: links().sort(), table: table() }, before);
  assert.deepEqual(await m.endpoints(id(2)), []);

  // The network's DNS server answers container names and aliases, case-insensitively.
  const e2 = await m.connect({ containerId: id(2), containerName: 'api', aliases: [], network: 'alpha', ports: [] });
  assert.equal(e2.address, '10.242.16.3');
  const resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([a.gateway]);
  assert.deepEqual(await resolver.resolve4('web'), ['10.242.16.2']);
  assert.deepEqual(await resolver.resolve4('WWW'), ['10.242.16.2']);
  assert.deepEqual(await resolver.resolve4('api'), ['10.242.16.3']);
  assert.deepEqual(await resolver.resolve4(id(1).slice(0, 12)), ['10.242.16.2']);
  // internal network: connected, published ports ignored, names resolved; isolation rules present
  const e3 = await m.connect({
    containerId: id(3),
    containerName: 'db',
    aliases: [],
    network: 'beta',
    ports: [{ hostIp: '0.0.0.0', hostPort: 0, containerPort: 5432, protocol: 'tcp' }],
  });
  assert.equal(e3.address, '10.242.40.1');
  assert.deepEqual(e3.ports, []);
  assert.match(table(), new RegExp(`iifname "${b.bridge}" oifname != "${b.bridge}" drop`));
  assert.match(table(), new RegExp(`iifname "${a.bridge}" oifname \\{ [^}]*"${b.bridge}"`));

  await assert.rejects(m.remove('alpha'), err('NETWORK_IN_USE'));
  await assert.rejects(m.remove('bridge'), err('NETWORK_IN_USE'));

  // Daemon restart: close (taps and rules stay), a new manager finds everything, the port is held again.
  await m.close();
  assert.ok(links().includes(tap1));
  m = make();
  await m.init();
  assert.deepEqual(await m.endpoints(id(1)), [e1]);
  await assert.rejects(
    m.connect({
      containerId: id(4),
      containerName: 'x',
      aliases: [],
      network: 'alpha',
      ports: [{ hostIp: '127.0.0.1', hostPort, containerPort: 80, protocol: 'tcp' }],
    }),
    err('PORT_IN_USE'),
  );
  // the next address continues after the last lease
  const e4 = await m.connect({ containerId: id(4), containerName: 'x', aliases: [], network: 'alpha', ports: [] });
  assert.equal(e4.address, '10.242.16.4');

  // Only containers 2 and 3 survived the restart: 1 and 4 lose taps, leases, rules and names.
  await m.reconcile(new Set([id(2), id(3)]));
  assert.ok(!links().includes(tap1));
  assert.doesNotMatch(table(), /dnat to 10\.242\.16\.2/);
  await assert.rejects(resolver.resolve4('web'), /ENOTFOUND|NXDOMAIN|REFUSED|SERVFAIL|ECONNREFUSED|ETIMEOUT/);
  assert.deepEqual(await m.endpoints(id(1)), []);

  await m.disconnect(id(2));
  await m.disconnect(id(3), 'beta');
  await m.remove('alpha');
  await m.remove(b.id);
  assert.deepEqual(links(), [`${prefix}0`]);
  await m.close();
});

test('disconnects fired together are done together: every tap, port and lease goes', async () => {
  const m = make();
  await m.init();
  const ids = [20, 21, 22, 23, 24, 25].map(id);
  const eps = await Promise.all(
    ids.map((c, i) =>
      m.connect({
        containerId: c,
        containerName: `n${i}`,
        aliases: [],
        network: 'bridge',
        ports: [{ hostIp: '127.0.0.1', hostPort: 0, containerPort: 80, protocol: 'tcp' }],
      }),
    ),
  );
  const before = links().length;
  await Promise.all(ids.map((c) => m.disconnect(c)));
  assert.equal(links().length, before - ids.length, 'every tap removed');
  for (const c of ids) assert.deepEqual(await m.endpoints(c), []);
  assert.doesNotMatch(table(), new RegExp(eps.map((e) => `dport ${e.ports[0]!.hostPort} `).join('|')), 'no DNAT rule of theirs is left');
  // Their addresses are free again: the same number of containers connects once more.
  await Promise.all(ids.map((c, i) => m.connect({ containerId: c, containerName: `n${i}`, aliases: [], network: 'bridge', ports: [] })));
  await Promise.all(ids.map((c) => m.disconnect(c)));
  await m.close();
});

test('a crash mid-operation: stray Boson taps are removed by init, other links are not touched', async () => {
  const stray = `${prefix}t${'ab'.repeat(8)}`.slice(0, 15);
  execFileSync('ip', ['tuntap', 'add', 'dev', stray, 'mode', 'tap']);
  const m = make();
  await m.init();
  assert.ok(!links().includes(stray));
  await m.close();
});

test('address exhaustion is a typed error that leaks nothing', async () => {
  const m = make();
  await m.init();
  await m.create('tiny', { subnet: '10.242.60.0/30' });
  await m.connect({ containerId: id(10), containerName: 'one', aliases: [], network: 'tiny', ports: [] });
  const before = links().sort();
  await assert.rejects(m.connect({ containerId: id(11), containerName: 'two', aliases: [], network: 'tiny', ports: [] }), (e: unknown) =>
    isBosonError(e, 'ADDRESS_EXHAUSTED'),
  );
  assert.deepEqual(links().sort(), before);
  await m.disconnect(id(10));
  await m.remove('tiny');
  await m.teardown();
  assert.deepEqual(links(), []);
  assert.equal(table(), '');
});

test('rootless: user-mode NIC with forwards, QEMU addresses, no host changes', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-net-rootless-'));
  const m = make({ stateDir: dir, rootless: true, prefix: 'zz' });
  await m.init();
  const e = await m.connect({
    containerId: id(20),
    containerName: 'r',
    aliases: [],
    network: 'bridge',
    ports: [{ hostIp: '127.0.0.1', hostPort: 0, containerPort: 80, protocol: 'tcp' }],
  });
  assert.equal(e.nic.kind, 'user');
  assert.equal(e.address, '10.0.2.15');
  assert.equal(e.gateway, '10.0.2.2');
  assert.ok(e.ports[0]!.hostPort > 0);
  assert.deepEqual(e.nic.kind === 'user' ? e.nic.forwards : [], [
    { protocol: 'tcp', hostIp: '127.0.0.1', hostPort: e.ports[0]!.hostPort, guestPort: 80 },
  ]);
  // passt is told exactly what the guest is told (one source: the endpoint); the guest's DNS servers are the host's
  // resolvers, never loopback ones (the guest cannot reach the host's loopback).
  assert.ok(e.nic.kind === 'user');
  assert.deepEqual(
    { address: e.nic.address, prefixLen: e.nic.prefixLen, gateway: e.nic.gateway },
    { address: e.address, prefixLen: e.prefixLen, gateway: e.gateway },
  );
  assert.ok(e.dns.length > 0 && e.dns.every((r) => !r.startsWith('127.')), e.dns.join(' '));
  await assert.rejects(m.create('x'), (err: unknown) => isBosonError(err, 'ROOTLESS_UNSUPPORTED'));
  await m.disconnect(id(20));
  await m.teardown();
  await rm(dir, { recursive: true, force: true });
});

test('spare taps: made on no bridge, put on a network by connect({tap}), gone with the endpoint; strays deleted by init', async () => {
  const m = make();
  await m.init();
  const tap = await m.spareTap();
  assert.ok(tap.startsWith(`${prefix}t`) && tap.length <= 15, tap);
  assert.ok(links().includes(tap));
  assert.equal(masterOf(tap), undefined, 'on no bridge yet');
  const e = await m.connect({ containerId: id(90), containerName: 'warm', aliases: [], network: 'bridge', ports: [], tap });
  assert.deepEqual(e.nic.kind === 'tap' ? e.nic.ifname : '', tap);
  assert.equal(masterOf(tap), `${prefix}0`);
  await m.disconnect(id(90));
  assert.ok(!links().includes(tap), 'deleted with its endpoint');
  // A spare tap nobody took (a daemon killed with a warm pool) is deleted by the next init; dropTap is idempotent.
  const stray = await m.spareTap();
  await m.init();
  assert.ok(!links().includes(stray));
  await m.dropTap(stray);
  await m.close();
});
