import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBosonError } from '../common/index.ts';
import { defaultRouteInterface, guardLoaded, findPasst, isPasstCommand, passtArgs, passtArgv0, passtWords, type UserNic } from './passt.ts';

const nic: UserNic = {
  kind: 'user',
  mac: '52:54:00:12:34:56',
  address: '10.0.2.15',
  prefixLen: 24,
  gateway: '10.0.2.2',
  forwards: [
    { protocol: 'tcp', hostIp: '127.0.0.1', hostPort: 8080, guestPort: 80 },
    { protocol: 'tcp', hostIp: '0.0.0.0', hostPort: 8443, guestPort: 443 },
  ],
};

test('passt args: no gateway mapping, bound to the outbound interface, the guest view from the NIC, forwards with addresses', () => {
  const args = passtArgs(nic, 'eth0');
  const after = (flag: string): string[] => args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));
  assert.ok(args.includes('--no-map-gw') && args.includes('--ipv4-only') && args.includes('--foreground'));
  assert.deepEqual(after('--outbound-if4'), ['eth0']);
  assert.deepEqual([after('--address'), after('--netmask'), after('--gateway')], [['10.0.2.15'], ['24'], ['10.0.2.2']]);
  assert.deepEqual([after('--dns'), after('--dns-forward')], [['none'], []], 'no DNS of passt: the guest asks the host resolvers');
  assert.deepEqual(after('--tcp-ports'), ['127.0.0.1/8080:80', '8443:443']);
  assert.deepEqual(after('--udp-ports'), ['none'], 'no UDP port is published along with the TCP ones');
  assert.deepEqual(after('--fd'), ['3']);
  const udp = passtArgs({ ...nic, forwards: [{ protocol: 'udp', hostIp: '0.0.0.0', hostPort: 5353, guestPort: 53 }] }, 'wlan0');
  assert.deepEqual(
    udp.flatMap((a, i) => (a === '--udp-ports' ? [udp[i + 1]] : [])),
    ['5353:53'],
  );
});

test('passt argv[0] names the runtime directory and is recognised', () => {
  assert.equal(passtArgv0('/run/user/1000/boson/vms/0123456789abcdef'), '/run/user/1000/boson/vms/0123456789abcdef/passt');
  assert.equal(guardLoaded('x\nboson-passt-guard: loaded\ny\nboson-passt-guard: loaded\n'), 2);
  assert.ok(isPasstCommand(['/run/x/vms/0123456789abcdef/passt', '--foreground', '--fd', '3']));
  assert.ok(!isPasstCommand(['/usr/bin/qemu-system-x86_64', '--fd']));
  assert.ok(!isPasstCommand(['/usr/bin/passt', '--socket', '/tmp/x']), 'a passt Boson did not start');
});

test('default route interface from /proc/net/route: lowest metric, only up default routes', () => {
  const table = [
    'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
    'wlan0\t00000000\t0102A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0',
    'eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0',
    'eth1\t00000000\t010200C0\t0002\t0\t0\t1\t00000000\t0\t0\t0',
    'eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
  ].join('\n');
  assert.equal(defaultRouteInterface(table), 'eth0');
  assert.equal(defaultRouteInterface(table.split('\n').slice(0, 1).concat(table.split('\n').slice(4)).join('\n')), undefined);
});

test('a missing passt is PASST_MISSING; its words lose the syslog noise', () => {
  assert.throws(
    () => findPasst('/nonexistent/passt'),
    (err: unknown) => isBosonError(err, 'PASST_MISSING'),
  );
  assert.equal(
    passtWords("Failed to send 67 bytes to syslog\nFailed to bind any port for '-t 127.0.0.1/8080:80', exiting\n"),
    "Failed to bind any port for '-t 127.0.0.1/8080:80', exiting",
  );
});
