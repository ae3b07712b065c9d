/**
 * Container networking end to end, with real micro-VMs on real taps: published ports from the host (127.0.0.1 and
 * the bridge address) and from "another host" (a network namespace behind a veth pair), isolation between two
 * user-defined networks, name resolution through a network's DNS server, rootless user-mode networking with port
 * forwards, and nothing left on the host afterwards.
 *
 * The daemon that hands addresses to boson-init is not there yet, so each container configures its own eth0 from
 * the Endpoint (it is root in its guest). Private names: prefix "bn" + random hex, subnets in 10.241.0.0/16.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { prepareBootBundle } from '../src/guest/index.ts';
import { ControlChannel } from '../src/machine/control-channel.ts';
import { FrameType, encodeSpec, decodeExit } from '../src/guest/index.ts';
import { NetworkManager, type Endpoint } from '../src/machine/network/index.ts';
import { createEphemeralScratchDisk } from '../src/machine/scratch.ts';
import { bootWithWatchdog, type MicroVm, type NicSpec } from '../src/vmm/index.ts';
import { PACKAGE_ROOT } from '../src/common/index.ts';
import { guestKernelOptions, loadConfig, openHostStore, openImageStore } from '../src/main/index.ts';
import { qemuPidsUsing, useTestHost, waitFor } from './helpers.ts';

const prefix = `bn${Math.floor(Math.random() * 0xffff)
  .toString(16)
  .padStart(4, '0')}`;
const ns = `${prefix}ns`;
const vethHost = `${prefix}v0`;
const vethPeer = `${prefix}v1`;
let net: NetworkManager;
let rootless: NetworkManager;
let netDir: string;
const vms: MicroVm[] = [];

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 }).toString();
  } catch (err) {
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(err as { stderr?: Buffer }).stderr?.toString() ?? ''}`, { cause: err });
  }
}
const ourLinks = (): string[] =>
  (JSON.parse(sh('ip', ['-j', 'link', 'show'])) as Array<{ ifname: string }>).map((l) => l.ifname).filter((n) => n.startsWith(prefix));
const nftTable = (): string => {
  try {
    return sh('nft', ['list', 'table', 'ip', prefix]);
  } catch {
    return '';
  }
};

/** A container in a micro-VM whose output is collected; `until` waits for a marker in it. */
interface Guest {
  vm: MicroVm;
  output(): string;
  until(marker: string, timeoutMs?: number): Promise<void>;
  done: Promise<unknown>;
}

/**
 * Boots a guest on `nic` that runs `script`; with `viaInit`, boson-init configures the guest's interface from the
 * SPEC (as for a container) instead of the script, and `kernelArgs` go on the guest kernel's command line.
 */
async function boot(nic: NicSpec, script: string, viaInit?: { endpoint: Endpoint; kernelArgs: string[] }): Promise<Guest> {
  const images = openImageStore(host().stateDir);
  const image = await images.resolve('localhost/busybox:latest');
  const rootDisk = await images.rootDisk(image);
  const bundle = await prepareBootBundle({
    guestDir: path.join(PACKAGE_ROOT, 'build', 'guest'),
    extraModules: ['virtio_net'],
    ...guestKernelOptions(loadConfig()),
  });
  const scratch = await createEphemeralScratchDisk(path.join(host().stateDir, `scratch-${Math.random().toString(16).slice(2)}.ext4`));
  let out = '';
  const sink = new Writable({ write: (chunk: Buffer, _enc, cb) => ((out += chunk.toString()), cb()) });
  let session!: ControlChannel;
  try {
    const { vm } = await bootWithWatchdog(
      {
        kernel: bundle.kernelPath,
        initramfs: bundle.initramfsPath,
        acpi: bundle.acpi,
        memoryMiB: 192,
        cpus: 1,
        nics: [nic],
        ...(viaInit ? { extraKernelArgs: viaInit.kernelArgs } : {}),
        disks: [
          { serial: 'boson-root', path: rootDisk.path, readOnly: true },
          { serial: 'boson-scratch', fd: scratch.fd, readOnly: false },
        ],
      },
      (booting) => {
        session = new ControlChannel(booting.channel);
        return session.waitForHello();
      },
      { timeoutMs: 20_000, attempts: 2 },
    );
    vms.push(vm);
    // The guest's output arrives on the control channel itself (no log port), session 0.
    const done = new Promise<number>((resolve, reject) => {
      session.onSession(0, (frame) => {
        if (frame.type === FrameType.STDOUT || frame.type === FrameType.STDERR) sink.write(frame.payload);
        if (frame.type === FrameType.EXIT) resolve(decodeExit(frame).status);
      });
      session.onClose(() => reject(new Error('the guest ended without an exit status')));
    });
    done.catch(() => undefined);
    session.send(
      FrameType.SPEC,
      encodeSpec({
        argv: ['/bin/sh', '-c', script],
        env: ['PATH=/bin:/sbin:/usr/bin:/usr/sbin'],
        rootDisk: 'boson-root',
        rootFstype: rootDisk.fstype,
        scratchDisk: 'boson-scratch',
        ...(viaInit
          ? {
              interfaces: [
                {
                  mac: viaInit.endpoint.mac,
                  address: viaInit.endpoint.address,
                  prefixLen: viaInit.endpoint.prefixLen,
                  gateway: viaInit.endpoint.gateway,
                  mtu: 1500,
                },
              ],
            }
          : {}),
      }),
    );
    return {
      vm,
      output: () => out,
      until: (marker, timeoutMs = 30_000) =>
        waitFor(() => out.includes(marker), timeoutMs, `"${marker}" from the guest; output so far:\n${out}`).catch((err: Error) => {
          throw new Error(`${err.message}\n${out}`);
        }),
      done,
    };
  } finally {
    await scratch.close();
  }
}

/** Shell lines that give the guest's eth0 the endpoint's address, route and resolver. */
function ifup(e: Endpoint): string {
  return [
    'ip link set lo up',
    `ip addr add ${e.address}/${e.prefixLen} dev eth0`,
    'ip link set eth0 up',
    // Announce the address once the link is operationally up, as boson-init does for containers: a user-mode network
    // (passt) learns where the guest is only from a frame the guest sent; the kernel's own announcement at link-up
    // is lost when the carrier comes up a moment later.
    'i=0; while [ "$(cat /sys/class/net/eth0/operstate)" != up ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done',
    `arping -U -c 1 -w 1 -I eth0 ${e.address} >/dev/null 2>&1`,
    `ip route add default via ${e.gateway}`,
    `echo nameserver ${e.dns[0]} > /etc/resolv.conf`,
  ].join('; ');
}

function httpd(e: Endpoint, body: string): string {
  return `${ifup(e)}; mkdir -p /www; echo ${body} > /www/index.html; httpd -p 80 -h /www && echo READY; sleep 600`;
}

async function get(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return (await res.text()).trim();
}

const cid = (n: number): string => `${prefix}${n.toString(16).padStart(4, '0')}`.padEnd(64, 'e');

before(async () => {
  netDir = await mkdtemp(path.join(os.tmpdir(), 'boson-net-'));
  net = new NetworkManager(openHostStore(netDir), {
    stateDir: netDir,
    prefix,
    defaultSubnet: '10.241.0.0/24',
    subnetPool: '10.241.16.0/20',
  });
  await net.init();
  rootless = new NetworkManager(openHostStore(path.join(netDir, 'rootless')), { stateDir: path.join(netDir, 'rootless'), rootless: true });
  await rootless.init();
});

after(async () => {
  await Promise.all(vms.map((vm) => vm.kill().catch(() => undefined)));
  await net?.teardown().catch(() => undefined);
  await rootless?.teardown().catch(() => undefined);
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  } catch {
    // not created
  }
  try {
    execFileSync('ip', ['link', 'del', vethHost], { stdio: 'ignore' });
  } catch {
    // gone with the namespace
  }
  await rm(netDir, { recursive: true, force: true });
  // Nothing of ours is left on the host: links, firewall table, namespace, QEMU.
  assert.deepEqual(ourLinks(), []);
  assert.equal(nftTable(), '');
  assert.ok(!sh('ip', ['netns', 'list']).includes(ns));
  assert.deepEqual(await qemuPidsUsing(host().stateDir), []);
});

// Registered after our own hooks, so that its leak check runs once our VMs are gone.
const host = useTestHost();

test('published ports, isolation between networks, DNS by container name, from real micro-VMs', async () => {
  const front = await net.create('front');
  const back = await net.create('back');
  const web = await net.connect({
    containerId: cid(1),
    containerName: 'web',
    aliases: ['www'],
    network: 'front',
    ports: [{ hostIp: '0.0.0.0', hostPort: 0, containerPort: 80, protocol: 'tcp' }],
  });
  const hostPort = web.ports[0]!.hostPort;
  const webVm = await boot(web.nic, httpd(web, 'hello-from-web'));
  await webVm.until('READY');

  // From the host: 127.0.0.1 (DNAT in OUTPUT + route_localnet) and the host's bridge-facing address.
  assert.equal(await get(`http://127.0.0.1:${hostPort}/`), 'hello-from-web');
  assert.equal(await get(`http://${front.gateway}:${hostPort}/`), 'hello-from-web');

  // From "another host": a network namespace whose only link is a veth pair to this host.
  sh('ip', ['netns', 'add', ns]);
  sh('ip', ['link', 'add', vethHost, 'type', 'veth', 'peer', 'name', vethPeer, 'netns', ns]);
  sh('ip', ['addr', 'add', '10.241.99.1/30', 'dev', vethHost]);
  sh('ip', ['link', 'set', vethHost, 'up']);
  sh('ip', ['-n', ns, 'addr', 'add', '10.241.99.2/30', 'dev', vethPeer]);
  sh('ip', ['-n', ns, 'link', 'set', vethPeer, 'up']);
  const fetchScript = `fetch(process.argv[1], { signal: AbortSignal.timeout(5000) }).then((r) => r.text()).then((t) => process.stdout.write(t))`;
  assert.equal(
    sh('ip', ['netns', 'exec', ns, process.execPath, '-e', fetchScript, `http://10.241.99.1:${hostPort}/`]).trim(),
    'hello-from-web',
  );

  // Same network: resolved by name (and alias) through the DNS server on the gateway, and reachable.
  // Other network: the container's address is unreachable, while its own network and published ports work.
  const c1 = await net.connect({ containerId: cid(2), containerName: 'client1', aliases: [], network: 'front', ports: [] });
  const c2 = await net.connect({ containerId: cid(3), containerName: 'client2', aliases: [], network: 'back', ports: [] });
  const c1Vm = await boot(
    c1.nic,
    [
      ifup(c1),
      `nslookup web ${c1.gateway}`,
      `nslookup www ${c1.gateway}`,
      'timeout 5 wget -q -O - http://web/ && echo NAME-OK',
      `timeout 5 wget -q -O - http://${web.address}/ && echo SAME-NET-OK`,
      'echo C1-DONE',
    ].join('; '),
  );
  const c2Vm = await boot(
    c2.nic,
    [
      ifup(c2),
      `nslookup web ${c2.gateway} || echo NO-NAME`,
      `timeout 3 wget -q -O - http://${web.address}/ || echo ISOLATED`,
      `timeout 5 wget -q -O - http://${c2.gateway}:${hostPort}/ && echo PUBLISHED-OK`,
      'echo C2-DONE',
    ].join('; '),
  );
  await Promise.all([c1Vm.until('C1-DONE', 40_000), c2Vm.until('C2-DONE', 40_000)]);
  const o1 = c1Vm.output();
  assert.match(o1, new RegExp(`Address:?\\s+(1: )?${web.address.replace(/\./g, '\\.')}`), o1);
  assert.match(o1, /hello-from-web\s+NAME-OK/, o1);
  assert.match(o1, /hello-from-web\s+SAME-NET-OK/, o1);
  const o2 = c2Vm.output();
  assert.match(o2, /NO-NAME/, o2);
  assert.match(o2, /ISOLATED/, o2);
  assert.doesNotMatch(o2, /hello-from-web\s+ISOLATED/, o2);
  assert.match(o2, /hello-from-web\s+PUBLISHED-OK/, o2);

  // Stopping: the VMs go, their endpoints are disconnected; the networks can then be removed.
  for (const g of [webVm, c1Vm, c2Vm]) await g.vm.kill();
  for (const id of [cid(1), cid(2), cid(3)]) await net.disconnect(id);
  assert.doesNotMatch(nftTable(), /dnat to/);
  await net.remove(front.id);
  await net.remove(back.name);
  assert.deepEqual(
    ourLinks().filter((l) => l !== `${prefix}0` && !l.startsWith(`${prefix}v`) && l !== ns),
    [],
  );
});

test('rootless: a user-mode NIC with port forwards reaches an HTTP server in the guest at the first request', async () => {
  const e = await rootless.connect({
    containerId: cid(9),
    containerName: 'solo',
    aliases: [],
    network: 'bridge',
    ports: [{ hostIp: '127.0.0.1', hostPort: 0, containerPort: 80, protocol: 'tcp' }],
  });
  assert.equal(e.nic.kind, 'user');
  // boson-init configures the interface, as for a container, and the guest has no IPv6 (which would speak on its own
  // a moment later): the server never sends first, so passt knows where the guest is only because boson-init
  // announced it before the script ran. Without that, the first request hangs (passt never resends its SYN).
  const g = await boot(e.nic, 'mkdir -p /www; echo hello-rootless > /www/index.html; httpd -p 80 -h /www && echo READY; sleep 600', {
    endpoint: e,
    kernelArgs: ['ipv6.disable=1'],
  });
  await g.until('READY');
  assert.equal(await get(`http://127.0.0.1:${e.ports[0]!.hostPort}/`), 'hello-rootless');
  await g.vm.kill();
  await rootless.disconnect(cid(9));
});
