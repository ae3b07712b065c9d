/**
 * Pod networks the Kubernetes way (real QEMU guests, real CNI plugins from containernetworking-plugins): each pod
 * gets a network namespace set up by CNI (bridge + host-local + portmap, the default list Boson writes), its VM's
 * QEMU runs in that namespace with a tap wired to eth0 by tc, and the guest has the CNI address. Two containers of
 * one pod share localhost, another pod does not; hostPorts are reachable from the host (portmap); PortForward's
 * URL speaks kubelet's port-forward WebSocket protocol; and removal, a failed set-up and a daemon killed with
 * SIGKILL leave no namespace, veth, IPAM lease or iptables rule behind.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { cniLeftovers, freePort, useDaemonHost, waitFor } from './helpers.ts';
import { criClient, expectStatus, type CriClient } from './cri-client.ts';
import { FrameReader, Opcode, encodeFrame } from '../src/cri/websocket.ts';

const run = promisify(execFile);
const { host, daemon } = useDaemonHost();
let client: CriClient | undefined;
const c = (): CriClient => (client ??= criClient(path.join(host().stateDir, 'run', 'cri.sock')));
after(() => client?.close());

const IMAGE = 'localhost/busybox:latest';
const prefix = (): string => host().env.BOSON_NET_PREFIX!;
const subnetBase = (): string => host().env.BOSON_CNI_SUBNET!.replace(/\.0\/24$/, '.');
const confDir = (): string => host().env.BOSON_CNI_CONF_DIR!;
const ipamDir = (): string => path.join(host().stateDir, 'cni', 'networks', 'boson-pods');

function podConfig(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { metadata: { name, uid: `uid-${name}`, namespace: 'net-test', attempt: 0 }, hostname: name, ...extra };
}

async function startContainer(podId: string, name: string, args: string[]): Promise<string> {
  const { containerId } = await c().runtime.CreateContainer!({
    podSandboxId: podId,
    config: { metadata: { name, attempt: 0 }, image: { image: IMAGE }, args },
  });
  await c().runtime.StartContainer!({ containerId });
  return containerId;
}

async function sh(containerId: string, script: string): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const r = await c().runtime.ExecSync!({ containerId, cmd: ['sh', '-c', script], timeout: 60 });
  return { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), exitCode: r.exitCode };
}

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 20_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

/** What a port-forward WebSocket gave back: per channel, the bytes after the 2-byte port prefix, and the prefixes. */
interface Forwarded {
  protocol: string | undefined;
  prefixes: Map<number, Buffer>;
  data: Map<number, string>;
}

/** Opens a port-forward URL as kubelet's clients do, sends `payload` on each data channel, reads until it closes. */
async function portForward(url: string, payload: string, protocols: string[] = ['v4.channel.k8s.io']): Promise<Forwarded> {
  const req = http.request(url, {
    headers: {
      Connection: 'Upgrade',
      Upgrade: 'websocket',
      'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
      'Sec-WebSocket-Version': '13',
      ...(protocols.length > 0 ? { 'Sec-WebSocket-Protocol': protocols.join(', ') } : {}),
    },
  });
  const { res, socket, head } = await new Promise<{ res: http.IncomingMessage; socket: import('node:net').Socket; head: Buffer }>(
    (resolve, reject) => {
      req.on('upgrade', (res, socket, head) => resolve({ res, socket, head }));
      req.on('response', (res) => reject(new Error(`no upgrade: ${res.statusCode}`)));
      req.on('error', reject);
      req.end();
    },
  );
  const out: Forwarded = { protocol: res.headers['sec-websocket-protocol'] as string | undefined, prefixes: new Map(), data: new Map() };
  const reader = new FrameReader();
  const ports = new URL(url).searchParams.getAll('port').length || 1;
  await new Promise<void>((resolve) => {
    // The first frames may have come with the upgrade's head.
    const onData = (chunk: Buffer): void => {
      for (const m of reader.push(chunk)) {
        if (m.opcode === Opcode.close) socket.end();
        if (m.opcode !== Opcode.binary || m.data.length === 0) continue;
        const ch = m.data[0]!;
        let rest = m.data.subarray(1);
        if (!out.prefixes.has(ch)) {
          out.prefixes.set(ch, rest.subarray(0, 2));
          rest = rest.subarray(2);
          // Both channels of every port announced: the client may send.
          if (out.prefixes.size === 2 * ports)
            for (let i = 0; i < ports; i++)
              socket.write(encodeFrame(Opcode.binary, Buffer.concat([Buffer.from([2 * i]), Buffer.from(payload)]), true));
        }
        out.data.set(ch, (out.data.get(ch) ?? '') + rest.toString());
      }
    };
    if (head.length > 0) onData(head);
    socket.on('data', onData);
    socket.on('close', () => resolve());
    setTimeout(() => socket.destroy(), 60_000).unref();
  });
  return out;
}

/** The rules of the nat and filter tables that mention `id` (CNI's chains carry the container id in comments). */
async function rulesOf(id: string): Promise<string[]> {
  const { stdout } = await run('iptables-save');
  return stdout.split('\n').filter((l) => l.includes(id));
}

/** Host-local's leases in the pod network's IPAM directory (files named by address). */
async function leases(): Promise<string[]> {
  return (await readdir(ipamDir()).catch(() => [] as string[])).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f));
}

/** Links enslaved to the CNI bridge (the pods' veths). */
async function bridgePorts(): Promise<string[]> {
  const { stdout } = await run('ip', ['-j', 'link', 'show', 'master', `${prefix()}-cni0`]).catch(() => ({ stdout: '[]' }));
  return (JSON.parse(stdout || '[]') as Array<{ ifname: string }>).map((l) => l.ifname);
}

async function assertNoLeaks(podIds: string[]): Promise<void> {
  await waitFor(async () => (await cniLeftovers(prefix())).netns.length === 0, 10_000, 'the pod namespaces to go').catch(() => undefined);
  assert.deepEqual((await cniLeftovers(prefix())).netns, [], 'no pod network namespace is left');
  assert.deepEqual(await bridgePorts(), [], 'no veth is left on the CNI bridge');
  assert.deepEqual(await leases(), [], 'no host-local lease is left');
  for (const id of podIds) assert.deepEqual(await rulesOf(id), [], `no iptables rule of pod ${id.slice(0, 12)} is left`);
}

describe('pod networks through CNI', () => {
  let podA = '';
  let podB = '';
  let ipA = '';
  let ipB = '';
  let web = '';
  let side = '';
  let other = '';
  let hostPort = 0;

  test('Status reports the network ready, with the default list Boson wrote', async () => {
    const status = await c().runtime.Status!({ verbose: true });
    const net = status.status.conditions.find((x: { type: string }) => x.type === 'NetworkReady');
    assert.equal(net.status, true, net.message);
    const list = JSON.parse(await readFile(path.join(confDir(), '10-boson.conflist'), 'utf8'));
    assert.deepEqual(
      list.plugins.map((p: { type: string }) => p.type),
      ['bridge', 'portmap'],
    );
    assert.equal(list.plugins[0].bridge, `${prefix()}-cni0`);
    assert.equal(list.plugins[0].ipam.ranges[0][0].subnet, host().env.BOSON_CNI_SUBNET);
  });

  test('RunPodSandbox: the pod VM runs in a namespace CNI set up, with the CNI address', async () => {
    hostPort = await freePort();
    // Both at once: CNI runs concurrently (host-local's lock, the bridge made once).
    const [runA, runB] = await Promise.all([
      c().runtime.RunPodSandbox!({
        config: podConfig('net-a', { portMappings: [{ protocol: 'TCP', containerPort: 80, hostPort }] }),
      }),
      c().runtime.RunPodSandbox!({ config: podConfig('net-b') }),
    ]);
    podA = runA.podSandboxId;
    podB = runB.podSandboxId;
    const a = await c().runtime.PodSandboxStatus!({ podSandboxId: podA, verbose: true });
    const b = await c().runtime.PodSandboxStatus!({ podSandboxId: podB, verbose: true });
    ipA = a.status.network.ip;
    ipB = b.status.network.ip;
    assert.ok(ipA.startsWith(subnetBase()), `pod IP ${ipA} is from the CNI range ${host().env.BOSON_CNI_SUBNET}`);
    assert.ok(ipB.startsWith(subnetBase()), `pod IP ${ipB} is from the CNI range`);
    assert.notEqual(ipA, ipB);
    const info = JSON.parse(a.info.info);
    assert.equal(info.vm.network, 'cni:boson-pods');
    // The pod's QEMU is inside the pod's namespace: the same network namespace inode.
    const netns = `/run/netns/${prefix()}-pod-${podA.slice(0, 16)}`;
    const nsIno = (await stat(netns)).ino;
    const qemuNs = await readlink(`/proc/${info.vm.pid}/ns/net`);
    assert.equal(qemuNs, `net:[${nsIno}]`);
    // The tap beside eth0 in that namespace, with tc redirecting between them.
    const { stdout: filters } = await run('tc', ['-n', path.basename(netns), 'filter', 'show', 'dev', 'eth0', 'ingress']);
    assert.match(filters, /mirred \(Egress Redirect to device tap0\)/);
    assert.deepEqual(await leases(), [ipA, ipB].sort());
    assert.equal((await bridgePorts()).length, 2);
  });

  test('the guest has the pod IP; the containers of a pod share localhost, another pod does not', async () => {
    web = await startContainer(podA, 'web', [
      'sh',
      '-c',
      'mkdir -p /www && echo hello-from-pod-a > /www/index.html && exec httpd -f -p 80 -h /www',
    ]);
    side = await startContainer(podA, 'side', ['sleep', '1000']);
    other = await startContainer(podB, 'other', ['sleep', '1000']);
    const addr = await sh(side, 'ip -4 -o addr show eth0');
    assert.equal(addr.exitCode, 0, addr.stderr);
    assert.match(addr.stdout, new RegExp(`inet ${ipA.replace(/\./g, '\\.')}/24`));
    const route = await sh(side, 'ip route show default');
    assert.match(route.stdout, new RegExp(`default via ${subnetBase().replace(/\./g, '\\.')}1`));
    let got = { stdout: '', stderr: '', exitCode: -1 };
    await waitFor(
      async () => (got = await sh(side, 'timeout 10 wget -q -O - http://127.0.0.1:80/')).exitCode === 0,
      30_000,
      'httpd to answer on localhost',
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${got.exitCode} ${got.stderr}`);
    });
    assert.equal(got.stdout.trim(), 'hello-from-pod-a');
    const fromB = await sh(other, 'timeout 10 wget -q -O - http://127.0.0.1:80/');
    assert.notEqual(fromB.exitCode, 0, 'pod B does not share pod A localhost');
    assert.match(fromB.stderr, /Connection refused/);
    // Pod to pod over the CNI bridge.
    const overBridge = await sh(other, `timeout 10 wget -q -O - http://${ipA}:80/`);
    assert.equal(overBridge.exitCode, 0, overBridge.stderr);
    assert.equal(overBridge.stdout.trim(), 'hello-from-pod-a');
    void web;
  });

  test('hostPort: the pod server answers on the host port (portmap), from 127.0.0.1 and the bridge address', async () => {
    assert.equal((await httpGet(`http://127.0.0.1:${hostPort}/`)).trim(), 'hello-from-pod-a');
    assert.equal((await httpGet(`http://${subnetBase()}1:${hostPort}/`)).trim(), 'hello-from-pod-a');
    assert.ok((await rulesOf(podA)).length > 0, 'portmap and the bridge plugin made rules for the pod');
  });

  test('PortForward: the URL speaks the port-forward channel protocol to the pod port', async () => {
    const { url } = await c().runtime.PortForward!({ podSandboxId: podA, port: [80] });
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/portforward\/[0-9a-f]{32}$/);
    const got = await portForward(`${url}?port=80`, 'GET / HTTP/1.0\r\n\r\n');
    assert.equal(got.protocol, 'v4.channel.k8s.io');
    assert.deepEqual([...(got.prefixes.get(0) ?? [])], [80, 0], 'the data channel starts with the port, little-endian');
    assert.deepEqual([...(got.prefixes.get(1) ?? [])], [80, 0], 'so does the error channel');
    assert.match(got.data.get(0) ?? '', /^HTTP\/1\.[01] 200 OK/);
    assert.match(got.data.get(0) ?? '', /hello-from-pod-a/);
    assert.equal(got.data.get(1) ?? '', '');
    // Several ports in one stream, one of them a server that listens on the pod's localhost only.
    await startContainer(podA, 'local', [
      'sh',
      '-c',
      'mkdir -p /w && echo local-only > /w/index.html && exec httpd -f -p 127.0.0.1:8081 -h /w',
    ]);
    let both: Forwarded | undefined;
    const forwardBoth = async (): Promise<Forwarded> => {
      const { url: two } = await c().runtime.PortForward!({ podSandboxId: podA, port: [] });
      return portForward(`${two}?port=80&port=8081`, 'GET / HTTP/1.0\r\n\r\n');
    };
    await waitFor(
      async () => /local-only/.test((both = await forwardBoth()).data.get(2) ?? ''),
      30_000,
      'the localhost-only server to answer',
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify([...(both?.data ?? [])])}`);
    });
    assert.deepEqual([...(both!.prefixes.get(2) ?? [])], [0x91, 0x1f], 'port 8081 (0x1f91), little-endian');
    assert.match(both!.data.get(0) ?? '', /hello-from-pod-a/);
    // A URL is used once.
    await assert.rejects(portForward(`${url}?port=80`, ''), /no upgrade: 404/);
    // The ports of the request when the URL names none; a closed port says so on the error channel.
    const { url: closed } = await c().runtime.PortForward!({ podSandboxId: podA, port: [81] });
    const refused = await portForward(closed, 'x', []);
    assert.equal(refused.protocol, undefined);
    assert.match(refused.data.get(1) ?? '', /error forwarding port 81 to pod .*Connection refused/);
    await expectStatus(c().runtime.PortForward!({ podSandboxId: podA, port: [70000] }), grpc.status.INVALID_ARGUMENT);
  });

  test('StopPodSandbox runs CNI DEL; RemovePodSandbox leaves no namespace, veth, lease or rule', async () => {
    await c().runtime.StopPodSandbox!({ podSandboxId: podA });
    assert.ok(!(await cniLeftovers(prefix())).netns.includes(`${prefix()}-pod-${podA.slice(0, 16)}`));
    assert.deepEqual(await leases(), [ipB]);
    const stopped = await c().runtime.PodSandboxStatus!({ podSandboxId: podA });
    assert.equal(stopped.status.network.ip, '');
    await c().runtime.StopPodSandbox!({ podSandboxId: podA }); // idempotent
    await c().runtime.RemovePodSandbox!({ podSandboxId: podA });
    await c().runtime.RemovePodSandbox!({ podSandboxId: podB });
    await assertNoLeaks([podA, podB]);
  });

  test('a CNI failure fails RunPodSandbox with UNAVAILABLE and undoes what the plugins before it made', async () => {
    const list = JSON.parse(await readFile(path.join(confDir(), '10-boson.conflist'), 'utf8'));
    list.plugins.push({ type: 'no-such-plugin' });
    const broken = path.join(confDir(), '00-broken.conflist');
    await writeFile(broken, JSON.stringify(list));
    const cniRules = async (): Promise<string[]> => (await run('iptables-save')).stdout.split('\n').filter((l) => l.includes('CNI-'));
    const rulesBefore = await cniRules();
    try {
      const status = await c().runtime.Status!({});
      const net = status.status.conditions.find((x: { type: string }) => x.type === 'NetworkReady');
      assert.equal(net.status, false);
      assert.match(net.message, /no-such-plugin not found/);
      const msg = await expectStatus(c().runtime.RunPodSandbox!({ config: podConfig('net-broken') }), grpc.status.UNAVAILABLE);
      assert.match(msg, /CNI plugin no-such-plugin not found/);
      assert.deepEqual((await c().runtime.ListPodSandbox!({})).items, []);
      await assertNoLeaks([]);
      assert.deepEqual(await cniRules(), rulesBefore, 'the bridge and portmap plugins, which succeeded, made no rule that stayed');
    } finally {
      await rm(broken, { force: true });
    }
  });

  test('a daemon killed with SIGKILL during RunPodSandbox leaves nothing once restarted and the pod removed', async () => {
    const pending = c().runtime.RunPodSandbox!({ config: podConfig('net-killed') }).catch(() => undefined);
    // Killed once CNI made the namespace: the pod's network exists, its VM may be booting.
    let netns: string[] = [];
    await waitFor(async () => (netns = (await cniLeftovers(prefix())).netns).length > 0, 60_000, 'the pod namespace to appear');
    const idPrefix = netns[0]!.slice(`${prefix()}-pod-`.length);
    await daemon.kill9();
    await pending;
    client?.close();
    client = undefined;
    await daemon.start();
    // What kubelet would see (a pod whose VM never became ready, or none): it removes it.
    for (const p of (await c().runtime.ListPodSandbox!({})).items) await c().runtime.RemovePodSandbox!({ podSandboxId: p.id });
    assert.deepEqual((await c().runtime.ListPodSandbox!({})).items, []);
    await assertNoLeaks([idPrefix]);
  });

  test('routes of the CNI result reach the guest; a daemon killed with SIGKILL and restarted still tears the pod down', async () => {
    const list = JSON.parse(await readFile(path.join(confDir(), '10-boson.conflist'), 'utf8'));
    list.plugins[0].ipam.routes.push({ dst: '192.0.2.0/24' });
    const routed = path.join(confDir(), '05-routes.conflist');
    await writeFile(routed, JSON.stringify(list));
    let pod = '';
    try {
      pod = (await c().runtime.RunPodSandbox!({ config: podConfig('net-c') })).podSandboxId;
    } finally {
      await rm(routed, { force: true });
    }
    const ip = (await c().runtime.PodSandboxStatus!({ podSandboxId: pod })).status.network.ip;
    const ctr = await startContainer(pod, 'c', ['sleep', '1000']);
    const routes = await sh(ctr, 'ip route');
    assert.match(routes.stdout, /192\.0\.2\.0\/24 dev eth0/);
    await daemon.kill9();
    client?.close();
    client = undefined;
    await daemon.start();
    const after = await c().runtime.PodSandboxStatus!({ podSandboxId: pod });
    assert.equal(after.status.state, 'SANDBOX_READY');
    assert.equal(after.status.network.ip, ip);
    await c().runtime.RemovePodSandbox!({ podSandboxId: pod });
    await assertNoLeaks([pod]);
  });
});
