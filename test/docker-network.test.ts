/**
 * Docker network features seen from inside the guest, with Debian's docker CLI (20.10, which setup installs)
 * against `boson up`: static addresses (`--ip`, `network connect --ip`) proved with the guest's own `ip addr`,
 * refused clearly when taken or outside the subnet (and then nothing changes); legacy links (`--link other:alias`,
 * `network connect --link`) resolved by name and alias from the linking container only; and the clear refusal of a
 * running container's connect.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runBoson, useDaemonHost, type BosonResult } from './helpers.ts';
import { debianDocker, dockerOn } from './docker-clis.ts';

const out = (r: BosonResult): string => r.stdout.toString();
const ok = (r: BosonResult, what: string): void => assert.equal(r.code, 0, `${what}: ${r.stderr}`);

describe('docker network features inside the guest (Debian docker CLI)', () => {
  const cli = debianDocker();
  const { host } = useDaemonHost();
  let work: string;
  const docker = dockerOn(
    cli,
    () => host().env.BOSON_RUN_DIR!,
    () => path.join(work, 'docker-config'),
  );
  /** A /24 of this test host's own pool (10.<octet>.128.0/17), free of the networks the daemon picks first. */
  const subnet = (third: number): string => `${host().env.BOSON_NET_POOL!.split('.').slice(0, 2).join('.')}.${third}`;
  /** The IPv4 addresses (with prefix length) of eth0 as the guest itself reports them. */
  const guestAddresses = async (name: string): Promise<string[]> => {
    const r = await docker(['exec', name, 'ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
    ok(r, `ip addr in ${name}`);
    return [...out(r).matchAll(/inet (\d+\.\d+\.\d+\.\d+\/\d+)/g)].map((m) => m[1]!);
  };
  const inspectNet = async (
    name: string,
  ): Promise<Record<string, { IPAddress: string; IPAMConfig: { IPv4Address?: string } | null; Aliases: string[] | null }>> => {
    const r = await docker(['inspect', name, '--format', '{{json .NetworkSettings.Networks}}']);
    ok(r, `inspect ${name}`);
    return JSON.parse(out(r));
  };
  const names = async (): Promise<string> =>
    out(await docker(['ps', '-a', '--format', '{{.Names}}']))
      .split('\n')
      .sort()
      .join(' ');

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'boson-docker-net-'));
    await mkdir(path.join(work, 'docker-config'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  test('static addresses: --ip and network connect --ip are the guest’s own; taken or foreign addresses are refused and change nothing', async () => {
    const net = subnet(200);
    ok(await docker(['network', 'create', '--subnet', `${net}.0/24`, 'ipnet']), 'network create --subnet');
    try {
      ok(await docker(['run', '-d', '--name', 'ip-a', '--network', 'ipnet', '--ip', `${net}.50`, 'busybox', 'sleep', '600']), 'run --ip');
      assert.deepEqual(await guestAddresses('ip-a'), [`${net}.50/24`]);
      const a = (await inspectNet('ip-a')).ipnet!;
      assert.equal(a.IPAddress, `${net}.50`);
      assert.deepEqual(a.IPAMConfig, { IPv4Address: `${net}.50` });

      // A created (never started) container is connected with an address, then boots with it.
      ok(await docker(['create', '--name', 'ip-b', 'busybox', 'sleep', '600']), 'create');
      ok(await docker(['network', 'connect', '--ip', `${net}.60`, 'ipnet', 'ip-b']), 'network connect --ip');
      assert.deepEqual((await inspectNet('ip-b')).ipnet!.IPAMConfig, { IPv4Address: `${net}.60` });
      ok(await docker(['start', 'ip-b']), 'start');
      assert.deepEqual(await guestAddresses('ip-b'), [`${net}.60/24`]);
      assert.equal((await inspectNet('ip-b')).ipnet!.IPAddress, `${net}.60`);
      // The two reach each other at the addresses asked for.
      ok(await docker(['exec', 'ip-b', 'ping', '-c', '1', '-W', '5', `${net}.50`]), 'ping the static address');

      const before = await names();
      // Taken by a running container: refused at create, no container made.
      const taken = await docker(['run', '-d', '--name', 'ip-c', '--network', 'ipnet', '--ip', `${net}.50`, 'busybox', 'true']);
      assert.equal(taken.code, 125, taken.stderr);
      assert.match(taken.stderr, new RegExp(`Address already in use: ${net.replaceAll('.', '\\.')}\\.50 is taken on network ipnet`));
      // Outside the subnet, the gateway, the network address: refused, nothing made.
      for (const [ip, re] of [
        ['10.1.2.3', /not a free host address of network ipnet/],
        [`${net}.1`, /not a free host address of network ipnet/],
        [`${net}.0`, /not a free host address of network ipnet/],
        ['300.1.2.3', /invalid IPv4 address: 300\.1\.2\.3|invalid IP|300\.1\.2\.3/],
      ] as Array<[string, RegExp]>) {
        const r = await docker(['run', '-d', '--name', 'ip-c', '--network', 'ipnet', '--ip', ip, 'busybox', 'true']);
        assert.notEqual(r.code, 0, ip);
        assert.match(r.stderr, re, ip);
        assert.equal(await names(), before, `no container was created by the refused run --ip ${ip}`);
      }
      // On the default bridge, as in Docker: user-defined networks only. (Without --network the 20.10 CLI drops --ip.)
      const onBridge = await docker(['run', '-d', '--name', 'ip-c', '--network', 'bridge', '--ip', `${net}.70`, 'busybox', 'true']);
      assert.equal(onBridge.code, 125);
      assert.match(onBridge.stderr, /user specified IP address is supported on user defined networks only/);
      assert.equal(await names(), before, 'no container was created by a refused run');

      // Connect of a created container with a taken or foreign address: refused, its settings unchanged.
      ok(await docker(['create', '--name', 'ip-d', '--network', 'ipnet', '--ip', `${net}.80`, 'busybox', 'sleep', '600']), 'create --ip');
      ok(await docker(['network', 'disconnect', 'ipnet', 'ip-d']), 'disconnect');
      for (const ip of [`${net}.60`, '10.1.2.3']) {
        const r = await docker(['network', 'connect', '--ip', ip, 'ipnet', 'ip-d']);
        assert.equal(r.code, 1, ip);
        assert.match(r.stderr, /Address already in use|not a free host address/, ip);
        assert.equal(out(await docker(['inspect', 'ip-d', '--format', '{{json .NetworkSettings.Networks}}'])).trim(), '{}', ip);
      }
      ok(await docker(['network', 'connect', '--ip', `${net}.80`, 'ipnet', 'ip-d']), 'connect with a free address');
      ok(await docker(['start', 'ip-d']), 'start ip-d');
      assert.deepEqual(await guestAddresses('ip-d'), [`${net}.80/24`]);

      // The same through Boson's own API (the port's connect with an endpoint: REST, typed client, boson CLI).
      ok(await docker(['create', '--name', 'ip-f', 'busybox', 'sleep', '600']), 'create ip-f');
      const taken2 = await runBoson(host(), ['network', 'connect', '--ip', `${net}.80`, 'ipnet', 'ip-f']);
      assert.notEqual(taken2.code, 0);
      assert.match(taken2.stderr, /Address already in use/);
      const viaBoson = await runBoson(host(), ['network', 'connect', '--ip', `${net}.90`, '--alias', 'viaboson', 'ipnet', 'ip-f']);
      assert.equal(viaBoson.code, 0, viaBoson.stderr);
      const f = await inspectNet('ip-f');
      assert.deepEqual(Object.keys(f), ['ipnet']);
      assert.deepEqual(f.ipnet!.IPAMConfig, { IPv4Address: `${net}.90` });
      assert.ok(f.ipnet!.Aliases?.includes('viaboson'), JSON.stringify(f.ipnet!.Aliases));
      ok(await docker(['start', 'ip-f']), 'start ip-f');
      assert.deepEqual(await guestAddresses('ip-f'), [`${net}.90/24`]);
      const hot = await runBoson(host(), ['network', 'connect', 'bridge', 'ip-f']);
      assert.notEqual(hot.code, 0);
      assert.match(hot.stderr, /cannot have it hot-plugged or removed; stop the container, change its network, then start it/);

      // The address is free again once its holder stops: another container may take it.
      ok(await docker(['rm', '-f', 'ip-a']), 'rm ip-a');
      ok(await docker(['run', '-d', '--name', 'ip-e', '--network', 'ipnet', '--ip', `${net}.50`, 'busybox', 'sleep', '600']), 'reuse');
      assert.deepEqual(await guestAddresses('ip-e'), [`${net}.50/24`]);
    } finally {
      await docker(['rm', '-f', 'ip-a', 'ip-b', 'ip-c', 'ip-d', 'ip-e', 'ip-f']);
      await docker(['network', 'rm', 'ipnet']);
    }
  });

  const serve = (name: string, text: string, net: string[] = []): Promise<BosonResult> =>
    docker([
      'run',
      '-d',
      '--name',
      name,
      ...net,
      'busybox',
      'sh',
      '-c',
      `mkdir -p /www && echo ${text} > /www/index.html && exec httpd -f -p 80 -h /www`,
    ]);
  /** Resolves `name` with busybox nslookup (DNS only, never /etc/hosts) in a new container; its exit code and output. */
  const lookupIn = (args: string[], script: string): Promise<BosonResult> =>
    docker(['run', '--rm', ...args, 'busybox', 'sh', '-c', script]);

  test('legacy links: --link name:alias resolves alias and name for the linking container only (user network and default bridge)', async () => {
    ok(await docker(['network', 'create', 'linknet']), 'network create');
    try {
      ok(await serve('lk-db', 'from-db', ['--network', 'linknet']), 'run lk-db');
      const dbAddress = (await inspectNet('lk-db')).linknet!.IPAddress;
      assert.match(dbAddress, /^\d+\.\d+\.\d+\.\d+$/);
      // nslookup asks the network's DNS server; wget and ping resolve through the C library.
      const linked = await lookupIn(
        ['--network', 'linknet', '--link', 'lk-db:dbalias'],
        'nslookup dbalias && wget -q -O- http://dbalias/ && ping -c 1 -W 5 dbalias && nslookup lk-db',
      );
      ok(linked, 'the linking container resolves the alias');
      assert.match(out(linked), new RegExp(`Address: ${dbAddress.replaceAll('.', '\\.')}`));
      assert.match(out(linked), /from-db/);
      // A third container on the same network: the name resolves (positive control), the alias does not.
      const third = await lookupIn(['--network', 'linknet'], 'nslookup lk-db >/dev/null || exit 3; nslookup dbalias; echo "alias exit $?"');
      ok(third, 'third container');
      assert.match(out(third), /alias exit [1-9]/, out(third));

      // network connect --link of a created container: the link is resolved when it boots.
      ok(await docker(['create', '--name', 'lk-c', 'busybox', 'sleep', '600']), 'create lk-c');
      ok(await docker(['network', 'connect', '--link', 'lk-db:db2', 'linknet', 'lk-c']), 'network connect --link');
      ok(await docker(['start', 'lk-c']), 'start lk-c');
      const viaConnect = await docker(['exec', 'lk-c', 'wget', '-q', '-O-', 'http://db2/']);
      ok(viaConnect, 'wget by the connect link');
      assert.equal(out(viaConnect), 'from-db\n');
      assert.match(out(await docker(['inspect', 'lk-c', '--format', '{{json .HostConfig.Links}}'])), /"\/lk-db:\/lk-c\/db2"/);
      // The linked container recreated under its name (as compose does): the running linking container follows it.
      ok(await docker(['rm', '-f', 'lk-db']), 'rm lk-db');
      ok(await serve('lk-db', 'from-db-2', ['--network', 'linknet']), 'run lk-db again');
      const newAddress = (await inspectNet('lk-db')).linknet!.IPAddress;
      assert.notEqual(newAddress, dbAddress);
      // `run -d` returns once httpd was started, not once it listens: the fetch waits for it (a few seconds at most).
      // The name is retried too: once in a loaded fresh-clone run it did not resolve at the first try (not explained).
      const followed = await docker([
        'exec',
        'lk-c',
        'sh',
        '-c',
        'for i in $(seq 1 40); do nslookup db2 >/dev/null 2>&1 && wget -q -O /tmp/page http://db2/ 2>/dev/null && nslookup db2 && cat /tmp/page && exit 0; sleep 0.25; done; nslookup db2; exit 2',
      ]);
      ok(followed, 'the link after the recreate');
      assert.match(out(followed), new RegExp(`Address: ${newAddress.replaceAll('.', '\\.')}[\\s\\S]*from-db-2\\n$`));

      // The default bridge (no names there at all): the link is the only name the linking container resolves.
      ok(await serve('lk-web', 'from-web'), 'run lk-web');
      const webAddress = (await inspectNet('lk-web')).bridge!.IPAddress;
      const onBridge = await lookupIn(['--link', 'lk-web:web'], 'nslookup web && wget -q -O- http://web/ && wget -q -O- http://lk-web/');
      ok(onBridge, 'link on the default bridge');
      assert.match(out(onBridge), /from-web\nfrom-web\n$/);
      const bridgeThird = await lookupIn([], `wget -q -O- http://${webAddress}/ || exit 3; nslookup web; echo "alias exit $?"`);
      ok(bridgeThird, 'third container on the bridge');
      assert.match(out(bridgeThird), /from-web[\s\S]*alias exit [1-9]/);

      // Docker's errors: a missing container (at create: nothing made), a stopped one on the default bridge (at start).
      const before = await names();
      const missing = await docker(['run', '--rm', '--link', 'nosuch:x', 'busybox', 'true']);
      assert.equal(missing.code, 125);
      assert.match(missing.stderr, /could not get container for nosuch: No such container: nosuch/);
      assert.equal(await names(), before);
      ok(await docker(['create', '--name', 'lk-stopped', 'busybox', 'true']), 'create lk-stopped');
      const stopped = await docker(['run', '--name', 'lk-d', '--link', 'lk-stopped:s', 'busybox', 'true']);
      assert.equal(stopped.code, 125);
      assert.match(stopped.stderr, /Cannot link to a non running container: \/lk-stopped AS \/lk-d\/s/);
    } finally {
      await docker(['rm', '-f', 'lk-db', 'lk-c', 'lk-web', 'lk-stopped', 'lk-d']);
      await docker(['network', 'rm', 'linknet']);
    }
  });
});
