/**
 * Network isolation against a hostile guest (issue 12): a container, root in its own guest, crafts routes and
 * addresses to reach what it must not. Each refusal is paired with a positive control from the same guest, so that
 * a broken network cannot pass for an isolated one:
 *   - a service bound to the host's 127.0.0.1 is out of reach (route_localnet on the bridges, CVE-2020-8558);
 *   - a port published on 127.0.0.1 answers the host, but not another machine that routes 127.0.0.1 to this host;
 *   - a guest that takes another address (IP spoofing) or another MAC address gets nothing through.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import dgram from 'node:dgram';
import net from 'node:net';
import { useDaemonHost, runBoson, waitFor, withFreePort } from './helpers.ts';

const { host } = useDaemonHost();
const boson = (...args: string[]): ReturnType<typeof runBoson> => runBoson(host(), args, { timeoutMs: 90_000 });
const out = (r: { stdout: Buffer }): string => r.stdout.toString();
const PORT_IN_USE = 89;
const runAsync = promisify(execFile);

/** A TCP server on the host that answers every connection with `word`. */
async function hostServer(address: string, word: string): Promise<{ port: number; close: () => void }> {
  const server = net.createServer((c) => c.end(`${word}\n`));
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

/** Shell: connect to host:port with busybox nc (3 s), print what came back and exit with nc's status. */
const connect = (hostAddr: string, port: number): string => `nc -w 3 ${hostAddr} ${port} </dev/null`;

describe('isolation from a hostile guest', () => {
  let loopbackService: { port: number; close: () => void };
  let publicService: { port: number; close: () => void };
  before(async () => {
    loopbackService = await hostServer('127.0.0.1', 'host-loopback-secret');
    publicService = await hostServer('0.0.0.0', 'host-public');
  });
  after(() => {
    loopbackService.close();
    publicService.close();
  });

  test("a guest cannot reach a service on the host's 127.0.0.1, even with a route to it through the bridge", async () => {
    // UDP, so that one packet reaching the host counts (a TCP handshake would fail on its reply anyway, and hide it).
    const got = { loopback: [] as string[], public: [] as string[] };
    const udp = async (address: string, into: string[]): Promise<{ port: number; close: () => void }> => {
      const sock = dgram.createSocket('udp4');
      sock.on('message', (m) => into.push(m.toString()));
      await new Promise<void>((resolve) => sock.bind(0, address, resolve));
      return { port: sock.address().port, close: () => sock.close() };
    };
    const loop = await udp('127.0.0.1', got.loopback);
    const pub = await udp('0.0.0.0', got.public);
    try {
      const info = await boson(
        'run',
        '--rm',
        '--name',
        'probe',
        'busybox',
        'sh',
        '-c',
        [
          'gw=$(ip route | sed -n "s/^default via \\([0-9.]*\\).*/\\1/p")',
          // Positive control: busybox syslogd forwards what logger says, as UDP, to the host's gateway address.
          `syslogd -n -R $gw:${pub.port} & pid=$!; sleep 1; logger control-datagram; sleep 1; kill $pid`,
          // The attack: 127.0.0.1 routed out of eth0 to the host (the guest's local routes for it removed first).
          'ip route del local 127.0.0.0/8 dev lo table local; ip route del local 127.0.0.1 dev lo table local',
          'ip route add 127.0.0.0/8 via $gw dev eth0',
          'echo "route: $(ip route get 127.0.0.1)"',
          `syslogd -n -R 127.0.0.1:${loop.port} & pid=$!; sleep 1; logger attack-datagram; sleep 1; kill $pid`,
        ].join('; '),
      );
      assert.equal(info.code, 0, info.stderr);
      assert.match(out(info), /^route: 127\.0\.0\.1 via [0-9.]+ dev eth0/m, `the attack really leaves through eth0: ${out(info)}`);
      assert.ok(
        got.public.some((m) => m.includes('control-datagram')),
        `the guest's datagrams reach the host: ${JSON.stringify(got)}`,
      );
      assert.deepEqual(got.loopback, [], "nothing reached the service on the host's loopback");
    } finally {
      loop.close();
      pub.close();
    }
  });

  test('a guest that spoofs another IP or MAC address gets nothing through; with its own it does', async () => {
    const r = await boson(
      'run',
      '--rm',
      'busybox',
      'sh',
      '-c',
      [
        'gw=$(ip route | sed -n "s/^default via \\([0-9.]*\\).*/\\1/p")',
        'me=$(ip -4 addr show eth0 | sed -n "s/.*inet \\([0-9.]*\\/[0-9]*\\).*/\\1/p")',
        `echo "own: $(${connect('$gw', publicService.port)})"`,
        // Another address in the same subnet (the last octet flipped), the real one removed.
        'other=$(echo $me | awk -F"[./]" \'{ printf "%d.%d.%d.%d/%s", $1, $2, $3, ($4 == 200 ? 201 : 200), $5 }\')',
        'ip addr add $other dev eth0; ip addr del $me dev eth0; ip route add default via $gw 2>/dev/null',
        `echo "spoofed-ip: $(${connect('$gw', publicService.port)})"`,
        'ip addr del $other dev eth0; ip addr add $me dev eth0; ip route add default via $gw 2>/dev/null',
        `echo "restored: $(${connect('$gw', publicService.port)})"`,
        'ip link set eth0 down; ip link set eth0 address 02:00:00:00:be:ef; ip link set eth0 up; ip route add default via $gw 2>/dev/null',
        `echo "spoofed-mac: $(${connect('$gw', publicService.port)})"`,
      ].join('; '),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(out(r), /^own: host-public$/m, out(r));
    assert.match(out(r), /^spoofed-ip: $/m, out(r));
    assert.match(out(r), /^restored: host-public$/m, `the control after the spoofed address: ${out(r)}`);
    assert.match(out(r), /^spoofed-mac: $/m, out(r));
  });

  test('a port published on 127.0.0.1 answers the host, and not another machine that routes 127.0.0.1 to this host', async (t) => {
    const ns = `bsiso${process.pid % 10000}`;
    const [hostIf, nsIf] = [`bsi${process.pid % 10000}h`, `bsi${process.pid % 10000}n`];
    const sh = (args: string[]): string => execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', timeout: 20_000 });
    t.after(async () => {
      sh(['ip', 'netns', 'del', ns]);
      await boson('rm', '-f', 'pub');
    });
    // Another machine: a network namespace joined to this host by a veth pair (10.242.77.0/30).
    sh(['ip', 'netns', 'add', ns]);
    sh(['ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf, 'netns', ns]);
    sh(['ip', 'addr', 'add', '10.242.77.1/30', 'dev', hostIf]);
    sh(['ip', 'link', 'set', hostIf, 'up']);
    sh(['ip', '-n', ns, 'addr', 'add', '10.242.77.2/30', 'dev', nsIf]);
    sh(['ip', '-n', ns, 'link', 'set', nsIf, 'up']);
    sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    const { port, result: run } = await withFreePort(
      async (p) => {
        await boson('rm', '-f', 'pub');
        return boson(
          'run',
          '-d',
          '--name',
          'pub',
          '-p',
          `127.0.0.1:${p}:80`,
          'busybox',
          'sh',
          '-c',
          'echo published > /index.html; exec httpd -f -p 80 -h /',
        );
      },
      (r) => r.code === PORT_IN_USE,
    );
    assert.equal(run.code, 0, run.stderr);
    let body = '';
    await waitFor(
      async () => {
        body = await fetch(`http://127.0.0.1:${port}/index.html`).then(
          (r) => r.text(),
          () => '',
        );
        return body !== '';
      },
      30_000,
      'the published port from the host',
    );
    assert.equal(body, 'published\n');
    // Positive control: the other machine reaches this host.
    const fetchScript = `fetch(process.argv[1], { signal: AbortSignal.timeout(4000) }).then((r) => r.text()).then((t) => process.stdout.write(t), () => process.stdout.write('unreachable'))`;
    const control = await hostServer('10.242.77.1', 'host-over-veth');
    try {
      // Asynchronously: the server answering is in this process.
      const { stdout: reached } = await runAsync(
        'ip',
        [
          'netns',
          'exec',
          ns,
          process.execPath,
          '-e',
          `require('net').connect(${control.port}, '10.242.77.1').on('data', (d) => { process.stdout.write(d); process.exit(0); }).on('error', () => process.exit(1))`,
        ],
        { timeout: 20_000 },
      );
      assert.equal(reached.trim(), 'host-over-veth');
    } finally {
      control.close();
    }
    // The attack: route 127.0.0.1 to this host and ask for the published port.
    sh(['ip', '-n', ns, 'route', 'del', 'local', '127.0.0.0/8', 'dev', 'lo', 'table', 'local']);
    sh(['ip', '-n', ns, 'route', 'del', 'local', '127.0.0.1', 'dev', 'lo', 'table', 'local']);
    sh(['ip', '-n', ns, 'route', 'add', '127.0.0.1/32', 'via', '10.242.77.1', 'dev', nsIf]);
    assert.match(sh(['ip', '-n', ns, 'route', 'get', '127.0.0.1']), /via 10\.242\.77\.1/, 'the attack really goes to this host');
    // Whether a connection attempt reached the container at all (its handshake could fail on the way back and hide
    // it): the guest kernel's count of SYNs its listening sockets took.
    const passiveOpens = async (): Promise<number> => {
      const snmp = out(await boson('exec', 'pub', 'cat', '/proc/net/snmp'))
        .split('\n')
        .filter((l) => l.startsWith('Tcp:'));
      const [names, values] = [snmp[0]!.split(/\s+/), snmp[1]!.split(/\s+/)];
      return Number(values[names.indexOf('PassiveOpens')]);
    };
    const before = await passiveOpens();
    const stolen = sh(['ip', 'netns', 'exec', ns, process.execPath, '-e', fetchScript, `http://127.0.0.1:${port}/index.html`]);
    assert.equal(stolen, 'unreachable');
    assert.equal(await passiveOpens(), before, 'no connection attempt from the other machine reached the container');
    // Control of the counter: the host's own request is one more.
    await fetch(`http://127.0.0.1:${port}/index.html`).then((r) => r.text());
    assert.equal(await passiveOpens(), before + 1);
  });
});
