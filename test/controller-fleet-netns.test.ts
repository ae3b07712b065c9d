/**
 * A fleet for real: one `boson controller` (TCP with TLS) and two machines, each a `boson up` in its own network
 * namespace with its own state and run directories and bridge subnet, linked to the controller by a veth pair on a
 * bridge in the root namespace. The machines join with `boson machine join` (token from `boson machine token
 * create`) and serve their REST API on TCP with the certificates issued at join; the controller reaches them only
 * over mutual TLS. Real micro-VMs: spread puts one busybox on each machine, binpack two on one, a drained machine
 * gets nothing new, and a machine whose link goes down is LOST. Everything (namespaces, veths, bridge, daemons,
 * QEMUs, directories) is removed even when a step fails.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { ControllerClient, type MachineInfo } from '../src/controller/index.ts';
import { BOSON, makeTestHost, qemuPidsUsing, runBoson, waitFor, type TestHost } from './helpers.ts';

const sh = promisify(execFile);
const ip = (...args: string[]): Promise<unknown> => sh('ip', args);

interface FleetMachine {
  name: string;
  ns: string;
  veth: string;
  address: string;
  host: TestHost;
  daemon?: ChildProcess;
  id?: string;
}

let ctlHost: TestHost;
let controller: ChildProcess | undefined;
let client: ControllerClient;
let tlsDir = '';
let bridge = '';
let ctlUrl = '';
let dockerDir = '';
const extraDirs: string[] = [];
const machines: FleetMachine[] = [];
const output: string[] = [];

/** Starts a long-running boson process (in `ns` when given); resolves once its output contains `marker`. */
async function startProcess(
  host: TestHost,
  args: string[],
  marker: string,
  ns?: string,
  env: NodeJS.ProcessEnv = {},
): Promise<ChildProcess> {
  const argv = ns ? ['netns', 'exec', ns, BOSON, ...args] : args;
  const child = spawn(ns ? 'ip' : BOSON, argv, { env: { ...host.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const take = (d: Buffer): void => {
    out += d.toString();
  };
  child.stdout!.on('data', take);
  child.stderr!.on('data', take);
  child.on('exit', () => output.push(`${args.join(' ')}${ns ? ` (in ${ns})` : ''}:\n${out}`));
  await waitFor(() => out.includes(marker) || child.exitCode !== null, 60_000, `"${marker}" from boson ${args.join(' ')}`);
  if (child.exitCode !== null) throw new Error(`boson ${args.join(' ')} exited ${child.exitCode}: ${out}`);
  return child;
}

async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([gone, new Promise((r) => setTimeout(r, 10_000))]);
  if (child.exitCode === null) child.kill('SIGKILL');
}

const project = '/v1/tenants/default/projects/default/containers';
type Placed = { id: string; name: string; machineId: string; state: string };

async function place(name: string, policy: 'spread' | 'binpack'): Promise<Placed> {
  return client.request<Placed>('POST', project, {
    spec: { image: 'busybox', name, process: { args: ['sleep', '600'] }, resources: { memoryMiB: 128 } },
    policy,
  });
}
function withoutCaBundles(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { REQUESTS_CA_BUNDLE: _r, CURL_CA_BUNDLE: _c, ...rest } = env;
  return rest;
}

/** Runs a command with the environment of a project's `docker-env` (never throws: its code and output). */
function runWith(
  cmd: string,
  denv: Record<string, string>,
  configDir: string,
  cwd?: string,
): (...args: string[]) => Promise<{ code: number; stdout: string; stderr: string }> {
  return (...args) =>
    sh(cmd, args, {
      // requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override the CA docker-py gives it (psf/requests#3829).
      env: { ...withoutCaBundles(process.env), ...denv, DOCKER_CONFIG: configDir, DOCKER_CLI_HINTS: 'false' },
      maxBuffer: 16 * 1024 * 1024,
      ...(cwd ? { cwd } : {}),
    }).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }),
    );
}
const dockerWith = (denv: Record<string, string>, configDir: string) => runWith('docker', denv, configDir);

/** A project's docker-env (certificates in a new directory, removed after the tests). */
async function dockerEnv(ref: string): Promise<{ denv: Record<string, string>; dir: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-fleet-docker-'));
  extraDirs.push(dir);
  const out = await runBoson(ctlHost, ['project', 'docker-env', ref, '--dir', dir, '--json']);
  assert.equal(out.code, 0, out.stderr);
  return { denv: JSON.parse(out.stdout.toString()) as Record<string, string>, dir };
}

/** The names of the volumes and networks the controller made on a machine (its own names, from its own CLI). */
async function madeOn(m: FleetMachine): Promise<string[]> {
  const list = async (what: string): Promise<Array<{ name: string; labels: Record<string, string> }>> =>
    JSON.parse((await sh('ip', ['netns', 'exec', m.ns, BOSON, what, 'ls', '--json'], { env: m.host.env })).stdout) as Array<{
      name: string;
      labels: Record<string, string>;
    }>;
  const vols = (await list('volume')).filter((v) => v.labels['boson.controller.name']);
  const nets = (await list('network')).filter((n) => n.labels['boson.controller.name']);
  return [
    ...vols.map((v) => `volume ${v.labels['boson.tenant']}/${v.labels['boson.project']}/${v.labels['boson.controller.name']}`),
    ...nets.map((n) => `network ${n.labels['boson.tenant']}/${n.labels['boson.project']}/${n.labels['boson.controller.name']}`),
  ].sort();
}

const remove = (name: string): Promise<unknown> => client.request('DELETE', `${project}/${name}?force=true`);
const fleetList = async (): Promise<MachineInfo[]> => client.request<MachineInfo[]>('GET', '/v1/machines');

before(async () => {
  ctlHost = await makeTestHost();
  const octet = Number(/^10\.(\d+)\./.exec(ctlHost.env.BOSON_NET_SUBNET!)![1]);
  // The fleet's link network: in the controller host's pool (no daemon of that host uses it).
  const subnet = `10.${octet}.200`;
  bridge = `bt${octet}f`;
  // Left by a run that was killed with this octet claimed (the claim is exclusive while its owner lives).
  await ip('link', 'del', bridge).catch(() => undefined);
  for (const n of ['m1', 'm2']) await ip('netns', 'del', `bt${octet}${n}`).catch(() => undefined);
  for (const v of ['v1', 'v2']) await ip('link', 'del', `bt${octet}${v}`).catch(() => undefined);
  await ip('link', 'add', bridge, 'type', 'bridge');
  await ip('addr', 'add', `${subnet}.1/24`, 'dev', bridge);
  await ip('link', 'set', bridge, 'up');
  for (const [i, name] of ['m1', 'm2'].entries()) {
    const m: FleetMachine = {
      name,
      ns: `bt${octet}${name}`,
      veth: `bt${octet}v${i + 1}`,
      address: `${subnet}.${11 + i}:7100`,
      host: await makeTestHost(),
    };
    machines.push(m);
    await ip('netns', 'add', m.ns);
    await ip('link', 'add', m.veth, 'type', 'veth', 'peer', 'name', `${m.veth}p`);
    await ip('link', 'set', `${m.veth}p`, 'netns', m.ns);
    await ip('link', 'set', m.veth, 'master', bridge, 'up');
    await ip('-n', m.ns, 'link', 'set', `${m.veth}p`, 'name', 'eth0');
    await ip('-n', m.ns, 'addr', 'add', `${subnet}.${11 + i}/24`, 'dev', 'eth0');
    await ip('-n', m.ns, 'link', 'set', 'eth0', 'up');
    await ip('-n', m.ns, 'link', 'set', 'lo', 'up');
  }
  // The controller's TCP endpoint certificate (boson tls init), its daemon, and fast health checks.
  tlsDir = await mkdtemp(path.join(os.tmpdir(), 'boson-fleet-tls-'));
  const init = await runBoson(ctlHost, ['tls', 'init', '--dir', tlsDir, '--host', `${subnet}.1`]);
  assert.equal(init.code, 0, init.stderr);
  const ctlAddr = `${subnet}.1:7443`;
  controller = await startProcess(
    ctlHost,
    [
      'controller',
      '--listen',
      ctlAddr,
      '--docker-listen',
      `${subnet}.1:2376`,
      '--tlsverify',
      '--tlscacert',
      `${tlsDir}/ca.pem`,
      '--tlscert',
      `${tlsDir}/server-cert.pem`,
      '--tlskey',
      `${tlsDir}/server-key.pem`,
    ],
    'listening',
    undefined,
    { BOSON_FLEET_CHECK_INTERVAL_MS: '500', BOSON_FLEET_CHECK_TIMEOUT_MS: '1000', BOSON_FLEET_LOST_AFTER_MS: '3000' },
  );
  ctlUrl = `https://${ctlAddr}`;
  const socket = path.join(ctlHost.env.BOSON_RUN_DIR!, 'controller.sock');
  client = new ControllerClient({ url: `unix://${socket}` });
});

after(async () => {
  for (const m of machines) await stopProcess(m.daemon);
  await stopProcess(controller);
  for (const m of machines) {
    await ip('netns', 'del', m.ns).catch(() => undefined);
    await ip('link', 'del', m.veth).catch(() => undefined);
  }
  if (bridge) await ip('link', 'del', bridge).catch(() => undefined);
  const left: number[] = [];
  for (const m of machines) {
    left.push(...(await qemuPidsUsing(m.host.stateDir)));
    await m.host.cleanup();
  }
  await ctlHost?.cleanup();
  if (tlsDir) await rm(tlsDir, { recursive: true, force: true });
  if (dockerDir) await rm(dockerDir, { recursive: true, force: true });
  for (const d of extraDirs) await rm(d, { recursive: true, force: true });
  if (process.env.BOSON_TEST_VERBOSE) for (const o of output) process.stderr.write(o + '\n');
  assert.deepEqual(left, [], 'every container was removed through the controller');
});

test('two machines in their own namespaces join the controller and are checked over mutual TLS', async () => {
  const made = await runBoson(ctlHost, ['machine', 'token', 'create', '--json']);
  assert.equal(made.code, 0, made.stderr);
  const token = (JSON.parse(made.stdout.toString()) as { token: string }).token;
  for (const [i, m] of machines.entries()) {
    // Joined from inside the machine's namespace, as its host would.
    const joined = await sh(
      'ip',
      [
        'netns',
        'exec',
        m.ns,
        BOSON,
        'machine',
        'join',
        ctlUrl,
        '--token',
        token,
        '--address',
        m.address,
        '--cpus',
        '2',
        '--memory',
        '1GiB',
        '--disk',
        '20GiB',
        '--label',
        `rack=r${i + 1}`,
        '--zone',
        'z1',
        '--json',
      ],
      { env: m.host.env },
    );
    const j = JSON.parse(joined.stdout) as { id: string; ca: string; cert: string; key: string };
    m.id = j.id;
    m.daemon = await startProcess(
      m.host,
      ['up', '--tcp', m.address, '--tlsverify', '--tlscacert', j.ca, '--tlscert', j.cert, '--tlskey', j.key],
      'listening',
      m.ns,
    );
  }
  // Both READY, and reached (lastSeen moves past the join time once a check got through).
  await waitFor(
    async () => {
      const list = await fleetList();
      return list.length === 2 && list.every((x) => x.state === 'READY' && x.lastError === undefined && x.lastSeen > x.joinedAt);
    },
    15_000,
    'both machines checked READY',
  );
  const ls = await runBoson(ctlHost, ['machine', 'ls', '--json']);
  assert.equal(ls.code, 0, ls.stderr);
  const rows = JSON.parse(ls.stdout.toString()) as MachineInfo[];
  assert.deepEqual(new Set(rows.map((r) => r.id)), new Set(machines.map((m) => m.id)));
  assert.deepEqual(rows.map((r) => r.labels.rack).sort(), ['r1', 'r2']);
});

test('spread puts one container on each machine, binpack two on one; each runs on its machine', async () => {
  const a = await place('s1', 'spread');
  const b = await place('s2', 'spread');
  assert.notEqual(a.machineId, b.machineId);
  assert.equal(a.state, 'running');
  // Each machine's own daemon has exactly the container placed on it.
  for (const m of machines) {
    const ps = await sh('ip', ['netns', 'exec', m.ns, BOSON, 'ps', '--json'], { env: m.host.env });
    const names = (JSON.parse(ps.stdout) as Array<{ name: string; state: string }>).map((c) => `${c.name} ${c.state}`);
    const mine = [a, b].filter((c) => c.machineId === m.id).map((c) => `${c.id} running`);
    assert.deepEqual(names, mine, `containers on ${m.name}`);
  }
  await remove('s1');
  await remove('s2');
  const p = await place('p1', 'binpack');
  const q = await place('p2', 'binpack');
  assert.equal(p.machineId, q.machineId);
  await remove('p1');
  await remove('p2');
});

test('a drained machine gets nothing new; a machine whose link goes down is LOST and its restart-policy container comes back on the other', async () => {
  const [m1, m2] = machines as [FleetMachine, FleetMachine];
  const drained = await runBoson(ctlHost, ['machine', 'drain', m1.id!, '--json']);
  assert.equal(drained.code, 0, drained.stderr);
  assert.equal((JSON.parse(drained.stdout.toString()) as MachineInfo[])[0]!.state, 'MAINTENANCE');
  // With m1 drained, both go to m2: d1 (no restart policy, removed next) and r1 (restart always).
  const d = await place('d1', 'spread');
  assert.equal(d.machineId, m2.id);
  await remove('d1');
  const r = await client.request<Placed>('POST', project, {
    spec: {
      image: 'busybox',
      name: 'r1',
      process: { args: ['sleep', '600'] },
      resources: { memoryMiB: 128 },
      restartPolicy: { name: 'always', maximumRetryCount: 0 },
    },
  });
  assert.equal(r.machineId, m2.id);
  assert.equal((await runBoson(ctlHost, ['machine', 'undrain', m1.id!])).code, 0);

  // Cut m2 off: LOST, and r1 is placed again on m1, where it runs.
  await ip('-n', m2.ns, 'link', 'set', 'eth0', 'down');
  await waitFor(async () => (await fleetList()).find((x) => x.id === m2.id)?.state === 'LOST', 20_000, `${m2.name} LOST`);
  assert.equal((await fleetList()).find((x) => x.id === m1.id)?.state, 'READY');
  await waitFor(
    async () => (await client.request<Placed>('GET', `${project}/r1`).catch(() => undefined))?.machineId === m1.id,
    60_000,
    'r1 placed again on m1',
  );
  // Started there (the record moves first, then the machine starts it).
  const runningOn = async (m: FleetMachine): Promise<string[]> =>
    (
      JSON.parse((await sh('ip', ['netns', 'exec', m.ns, BOSON, 'ps', '--json'], { env: m.host.env })).stdout) as Array<{ name: string }>
    ).map((c) => c.name);
  await waitFor(async () => (await runningOn(m1)).join() === r.id, 30_000, `r1 running on ${m1.name}`);
  // Nothing new goes to the lost machine.
  const e = await place('e1', 'spread');
  assert.equal(e.machineId, m1.id);
  await remove('e1');
  // Back on the network: READY again, and its stale copy of r1 is removed there.
  await ip('-n', m2.ns, 'link', 'set', 'eth0', 'up');
  await waitFor(async () => (await fleetList()).find((x) => x.id === m2.id)?.state === 'READY', 20_000, `${m2.name} READY again`);
  await waitFor(
    async () =>
      (JSON.parse((await sh('ip', ['netns', 'exec', m2.ns, BOSON, 'ps', '-a', '--json'], { env: m2.host.env })).stdout) as unknown[])
        .length === 0,
    20_000,
    `the stale copy of r1 removed from ${m2.name}`,
  );
  await remove('r1');
});

test("the stock docker CLI through a project's endpoint: runs, lists, logs and removes on both machines; over quota says so", async () => {
  await client.request('POST', '/v1/tenants', { name: 'acme', limits: [{ key: 'vm.count', value: 4, unit: 'count' }] });
  await client.request('POST', '/v1/tenants/acme/projects', { name: 'web', limits: [{ key: 'vm.count', value: 2, unit: 'count' }] });
  dockerDir = await mkdtemp(path.join(os.tmpdir(), 'boson-fleet-docker-'));
  const envOut = await runBoson(ctlHost, ['project', 'docker-env', 'acme/web', '--dir', dockerDir, '--json']);
  assert.equal(envOut.code, 0, envOut.stderr);
  const denv = JSON.parse(envOut.stdout.toString()) as Record<string, string>;
  assert.equal(denv.DOCKER_TLS_VERIFY, '1');
  assert.match(denv.DOCKER_HOST!, /^tcp:\/\/10\.\d+\.200\.1:2376$/);
  const docker = dockerWith(denv, dockerDir);
  for (const n of ['w1', 'w2']) {
    const r = await docker('run', '-d', '--name', n, 'busybox', 'sh', '-c', `echo hello-from-${n}; sleep 600`);
    assert.equal(r.code, 0, r.stderr);
  }
  const ps = await docker('ps', '--format', '{{.Names}}');
  assert.equal(ps.code, 0, ps.stderr);
  assert.deepEqual(ps.stdout.trim().split('\n').sort(), ['w1', 'w2']);
  // Spread: one on each machine.
  const placed = await client.request<Placed[]>('GET', '/v1/tenants/acme/projects/web/containers');
  assert.equal(new Set(placed.map((c) => c.machineId)).size, 2);
  await waitFor(async () => (await docker('logs', 'w1')).stdout.includes('hello-from-w1'), 30_000, 'the log of w1');
  // exec goes to the machine that holds the container.
  const ex = await docker('exec', 'w2', 'sh', '-c', 'echo exec-in-$HOSTNAME');
  assert.equal(ex.code, 0, ex.stderr);
  assert.match(ex.stdout, /^exec-in-/);
  // The default project sees none of them.
  assert.equal((await client.request<unknown[]>('GET', project)).length, 0);
  // vm.count=2 is used up: the CLI says "quota" and names the key.
  const over = await docker('run', '-d', '--name', 'w3', 'busybox', 'true');
  assert.notEqual(over.code, 0);
  assert.match(over.stderr, /quota/);
  assert.match(over.stderr, /vm\.count/);
  const rmd = await docker('rm', '-f', 'w1', 'w2');
  assert.equal(rmd.code, 0, rmd.stderr);
  assert.equal((await docker('ps', '-a', '-q')).stdout.trim(), '');
});

test("volumes and networks through a project's endpoint: made on the machine of their first container, followed there, by name; in use is refused; another tenant sees none of them", async () => {
  await client.request('POST', '/v1/tenants/acme/projects', { name: 'app', limits: [{ key: 'vm.count', value: 2, unit: 'count' }] });
  await client.request('POST', '/v1/tenants', { name: 'bolt', limits: [{ key: 'vm.count', value: 1, unit: 'count' }] });
  await client.request('POST', '/v1/tenants/bolt/projects', { name: 'app', limits: [{ key: 'vm.count', value: 1, unit: 'count' }] });
  const a = await dockerEnv('acme/app');
  const b = await dockerEnv('bolt/app');
  const docker = dockerWith(a.denv, a.dir);
  const other = dockerWith(b.denv, b.dir);
  const ok = async (r: Promise<{ code: number; stdout: string; stderr: string }>): Promise<string> => {
    const x = await r;
    assert.equal(x.code, 0, x.stderr);
    return x.stdout;
  };
  await ok(docker('volume', 'create', 'data'));
  await ok(docker('network', 'create', 'net'));
  // bolt has its own "data": the same name, another volume.
  await ok(other('volume', 'create', 'data'));
  assert.deepEqual((await ok(docker('volume', 'ls', '--format', '{{.Name}}'))).trim().split('\n'), ['data']);
  assert.deepEqual((await ok(docker('network', 'ls', '--format', '{{.Name}}'))).trim().split('\n'), ['net']);
  assert.equal((await ok(other('network', 'ls', '--format', '{{.Name}}'))).trim(), '');
  const onMachines = async (): Promise<string[]> => (await Promise.all(machines.map(madeOn))).flat().sort();
  assert.deepEqual(await onMachines(), [], 'made on no machine before a container uses them');

  // A container writes to the volume and exits; a server reads it from there; a third fetches from the server by name.
  await ok(docker('run', '--name', 'w', '-v', 'data:/data', 'busybox', 'sh', '-c', 'echo persisted-$((6*7)) > /data/f'));
  await ok(docker('rm', 'w'));
  await ok(
    docker(
      'run',
      '-d',
      '--name',
      'srv',
      '--network',
      'net',
      '-v',
      'data:/data',
      'busybox',
      'sh',
      '-c',
      'mkdir -p /www && cp /data/f /www/index.html && exec httpd -f -p 8080 -h /www',
    ),
  );
  // Attached (no -d): the output reaches the CLI through the controller.
  const fetched = await ok(
    docker(
      'run',
      '--name',
      'cli',
      '--network',
      'net',
      'busybox',
      'sh',
      '-c',
      'for i in $(seq 1 30); do printf "GET / HTTP/1.0\r\n\r\n" | nc -w 3 srv 8080 | grep persisted && exit 0; sleep 1; done; exit 1',
    ),
  );
  assert.match(fetched, /persisted-42/);
  assert.match(await ok(docker('logs', 'cli')), /persisted-42/);
  // All on the machine the volume and network were first used on, and made there only.
  const placed = await client.request<Placed[]>('GET', '/v1/tenants/acme/projects/app/containers');
  assert.equal(new Set(placed.map((c) => c.machineId)).size, 1);
  const home = machines.find((m) => m.id === placed[0]!.machineId)!;
  assert.deepEqual(await madeOn(home), ['network acme/app/net', 'volume acme/app/data']);
  assert.deepEqual(await madeOn(machines.find((m) => m !== home)!), []);
  // The project's names, not the machine's, in what the CLI shows.
  assert.equal(
    (
      await ok(
        docker('inspect', '-f', '{{range .Mounts}}{{.Name}}{{end}} {{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}', 'srv'),
      )
    ).trim(),
    'data net',
  );
  assert.match(await ok(docker('volume', 'inspect', 'data')), /"Name": "data"/);
  // In use: refused with the reason, and nothing changes.
  const busyVol = await docker('volume', 'rm', 'data');
  assert.notEqual(busyVol.code, 0);
  assert.match(busyVol.stderr, /in use/);
  const busyNet = await docker('network', 'rm', 'net');
  assert.notEqual(busyNet.code, 0);
  assert.match(busyNet.stderr, /in use/);
  // bolt cannot see, use or remove acme's.
  assert.equal((await ok(other('volume', 'ls', '--format', '{{.Name}}'))).trim(), 'data');
  assert.notEqual((await other('network', 'inspect', 'net')).code, 0);
  assert.notEqual((await other('run', '-d', '--network', 'net', 'busybox', 'true')).code, 0);
  await ok(other('volume', 'rm', 'data'));
  assert.deepEqual((await ok(docker('volume', 'ls', '--format', '{{.Name}}'))).trim(), 'data');

  // Unused: removed, and the machine's copies with them.
  await ok(docker('rm', '-f', 'srv', 'cli'));
  await ok(docker('volume', 'rm', 'data'));
  await ok(docker('network', 'rm', 'net'));
  assert.equal((await ok(docker('volume', 'ls', '-q'))).trim(), '');
  assert.deepEqual(await onMachines(), []);
});

test("docker-compose through a project's endpoint: two services on one network talking by name, one named volume; down removes them all", async () => {
  const a = await dockerEnv('acme/app');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'boson-fleet-compose-'));
  extraDirs.push(dir);
  await writeFile(
    path.join(dir, 'docker-compose.yml'),
    [
      "version: '3.8'",
      'services:',
      '  web:',
      '    image: busybox',
      "    command: ['sh', '-c', 'mkdir -p /www && echo hello-compose > /www/index.html && exec httpd -f -p 8080 -h /www']",
      '  client:',
      '    image: busybox',
      '    depends_on: [web]',
      '    command:',
      '      - sh',
      '      - -c',
      '      - \'for i in $$(seq 1 60); do printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 3 web 8080 > /tmp/a && grep -q hello /tmp/a && { tail -n 1 /tmp/a | tee -a /data/fetched; exit 0; }; sleep 1; done; exit 1\'',
      '    volumes:',
      '      - data:/data',
      'volumes:',
      '  data:',
      '',
    ].join('\n'),
  );
  const compose = runWith('docker-compose', a.denv, a.dir, dir);
  const docker = dockerWith(a.denv, a.dir);
  const up = await compose('-p', 'shop', 'up', '-d');
  assert.equal(up.code, 0, up.stderr);
  const exit = await docker('wait', 'shop_client_1');
  assert.equal(exit.code, 0, exit.stderr);
  assert.equal(exit.stdout.trim(), '0', (await docker('logs', 'shop_client_1')).stderr);
  assert.match((await docker('logs', 'shop_client_1')).stdout, /hello-compose/);
  assert.deepEqual((await docker('volume', 'ls', '--format', '{{.Name}}')).stdout.trim(), 'shop_data');
  assert.deepEqual((await docker('network', 'ls', '--format', '{{.Name}}')).stdout.trim(), 'shop_default');
  const placed = await client.request<Placed[]>('GET', '/v1/tenants/acme/projects/app/containers');
  assert.equal(placed.length, 2);
  assert.equal(new Set(placed.map((c) => c.machineId)).size, 1, 'both services follow the network to one machine');
  const down = await compose('-p', 'shop', 'down', '-v');
  assert.equal(down.code, 0, down.stderr);
  assert.equal((await docker('ps', '-a', '-q')).stdout.trim(), '');
  assert.equal((await docker('volume', 'ls', '-q')).stdout.trim(), '');
  assert.equal((await docker('network', 'ls', '-q')).stdout.trim(), '');
  assert.deepEqual((await Promise.all(machines.map(madeOn))).flat(), []);
});
