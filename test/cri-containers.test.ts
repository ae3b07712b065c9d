/**
 * Containers of one pod VM through CRI (a real QEMU guest, one VM for every check): Attach through the streaming
 * server's URL (stdin of `cat` read back, stdin_once, a tty with resize), per-container limits in a cgroup v2 of
 * the guest (visible from the container, enforced, changed by UpdateContainerResources), the pod's DNS config in
 * every container's /etc/resolv.conf, and the security context (user, group, supplementary groups, refusals).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { useDaemonHost, waitFor } from './helpers.ts';
import { criClient, expectStatus, openStream, type CriClient } from './cri-client.ts';

const { host } = useDaemonHost();
let client: CriClient | undefined;
const c = (): CriClient => (client ??= criClient(path.join(host().stateDir, 'run', 'cri.sock')));

const IMAGE = 'localhost/busybox:latest';
const text = (b: Buffer | undefined): string => (b ?? Buffer.alloc(0)).toString('utf8');
const MiB = 1024 * 1024;

function containerConfig(name: string, args: string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { metadata: { name, attempt: 0 }, image: { image: IMAGE }, args, labels: { container: name }, ...extra };
}

async function execSync(containerId: string, cmd: string[]): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const r = await c().runtime.ExecSync!({ containerId, cmd, timeout: 60 });
  return { stdout: text(r.stdout), stderr: text(r.stderr), exitCode: r.exitCode };
}

async function started(name: string, args: string[], extra: Record<string, unknown> = {}): Promise<string> {
  const { containerId } = await c().runtime.CreateContainer!({ podSandboxId: await pod(), config: containerConfig(name, args, extra) });
  await c().runtime.StartContainer!({ containerId });
  return containerId;
}

async function exited(containerId: string): Promise<{ exitCode: number }> {
  await waitFor(
    async () => (await c().runtime.ContainerStatus!({ containerId })).status.state === 'CONTAINER_EXITED',
    30_000,
    'the container to exit',
  );
  return (await c().runtime.ContainerStatus!({ containerId })).status;
}

let podId = '';

/** The one pod VM of this file, booted by the first test that needs it. */
async function pod(): Promise<string> {
  podId ||= (
    await c().runtime.RunPodSandbox!({
      config: {
        metadata: { name: 'box', uid: 'uid-box', namespace: 'default', attempt: 0 },
        hostname: 'box',
        dnsConfig: {
          servers: ['10.96.0.10', '10.96.0.11'],
          searches: ['default.svc.cluster.local', 'cluster.local'],
          options: ['ndots:5', 'edns0'],
        },
        linux: { resources: { memoryLimitInBytes: String(256 * MiB) } },
      },
    })
  ).podSandboxId;
  return podId;
}

after(() => client?.close());

describe('Attach', () => {
  test('to cat with stdin and stdin_once: what is written comes back, closing stdin ends it', async () => {
    const id = await started('cat', ['cat'], { stdin: true, stdinOnce: true });
    const { url } = await c().runtime.Attach!({ containerId: id, stdin: true, stdout: true, stderr: true });
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/attach\/[0-9a-f]{32}$/);
    const s = await openStream(url);
    assert.equal(s.protocol, 'v5.channel.k8s.io');
    s.send(0, 'hello through attach\n');
    await s.until((x) => x.stdout === 'hello through attach\n', 30_000, 'cat to echo the line');
    s.send(0, 'second line\n');
    await s.until((x) => x.stdout.endsWith('second line\n'), 30_000, 'the second line');
    s.closeStdin();
    await s.closed;
    assert.equal(s.status?.status, 'Success');
    assert.equal((await exited(id)).exitCode, 0);
    // A URL is used once.
    await assert.rejects(openStream(url), /404/);
  });

  test('without stdin_once, a detached attach leaves stdin open for the next one', async () => {
    const id = await started('cat2', ['cat'], { stdin: true });
    const first = await openStream((await c().runtime.Attach!({ containerId: id, stdin: true, stdout: true })).url);
    first.send(0, 'one\n');
    await first.until((x) => x.stdout === 'one\n', 30_000, 'the first line');
    first.close();
    await first.closed;
    const second = await openStream((await c().runtime.Attach!({ containerId: id, stdin: true, stdout: true })).url);
    second.send(0, 'two\n');
    await second.until((x) => x.stdout === 'two\n', 30_000, 'the second attach to be served');
    assert.equal((await c().runtime.ContainerStatus!({ containerId: id })).status.state, 'CONTAINER_RUNNING');
    second.closeStdin(); // without stdin_once, this does not reach cat
    second.close();
    await second.closed;
    assert.equal((await c().runtime.ContainerStatus!({ containerId: id })).status.state, 'CONTAINER_RUNNING');
    await c().runtime.RemoveContainer!({ containerId: id });
  });

  test('with a tty: one output stream, resize reaches the terminal, the shell exits with its code', async () => {
    const id = await started('shell', ['sh'], { stdin: true, stdinOnce: true, tty: true });
    await expectStatus(c().runtime.Attach!({ containerId: id, stdin: true, stdout: true, tty: false }), grpc.status.INVALID_ARGUMENT);
    const s = await openStream((await c().runtime.Attach!({ containerId: id, stdin: true, stdout: true, tty: true })).url);
    s.send(4, JSON.stringify({ Width: 123, Height: 45 }));
    s.send(0, 'stty size; tty\n');
    await s.until((x) => /45 123\r\n\/dev\/pts\/\d+\r\n/.test(x.stdout), 30_000, 'stty size and tty');
    s.send(0, 'echo err >&2\n');
    await s.until((x) => /\r\nerr\r\n/.test(x.stdout), 30_000, 'stderr on the terminal');
    assert.equal(s.stderr, '');
    s.send(0, 'exit 7\n');
    await s.closed;
    assert.equal((await exited(id)).exitCode, 7);
  });

  test('output only, to a container without stdin; stdin or a stopped container are refused', async () => {
    const id = await started('ticker', ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done']);
    await expectStatus(c().runtime.Attach!({ containerId: id, stdin: true, stdout: true }), grpc.status.INVALID_ARGUMENT);
    const s = await openStream((await c().runtime.Attach!({ containerId: id, stdout: true, stderr: true })).url, ['v4.channel.k8s.io']);
    assert.equal(s.protocol, 'v4.channel.k8s.io');
    await s.until((x) => (x.stdout.match(/tick \d+\n/g) ?? []).length >= 2, 30_000, 'two ticks');
    await c().runtime.StopContainer!({ containerId: id, timeout: 2 });
    await s.closed;
    assert.equal(s.status?.status, 'Success');
    await expectStatus(c().runtime.Attach!({ containerId: id, stdout: true }), grpc.status.FAILED_PRECONDITION);
    await c().runtime.RemoveContainer!({ containerId: id });
  });
});

describe('resources inside the pod VM', () => {
  let id = '';

  test("a container's limits are its cgroup's in the guest, visible from inside it, for ExecSync too", async () => {
    id = await started('limited', ['sleep', '1000'], {
      linux: {
        resources: {
          cpuPeriod: '100000',
          cpuQuota: '50000',
          cpuShares: '512',
          memoryLimitInBytes: String(48 * MiB),
          oomScoreAdj: '1000',
          unified: { 'pids.max': '20' },
        },
      },
    });
    const cg = await execSync(id, ['cat', '/proc/self/cgroup']);
    assert.equal(cg.stdout, `0::/boson/${id}\n`);
    const dir = `/sys/fs/cgroup/boson/${id}`;
    const read = async (file: string): Promise<string> => (await execSync(id, ['cat', `${dir}/${file}`])).stdout.trim();
    assert.equal(await read('memory.max'), String(48 * MiB));
    assert.equal(await read('cpu.max'), '50000 100000');
    assert.equal(await read('cpu.weight'), '20'); // 512 shares, as runc converts them
    assert.equal(await read('pids.max'), '20');
    // The main process is in it as well.
    const { info } = await c().runtime.ContainerStatus!({ containerId: id, verbose: true });
    assert.match((await execSync(id, ['cat', `${dir}/cgroup.procs`])).stdout, new RegExp(`^${JSON.parse(info.info).pid}$`, 'm'));
    // Read-only for the container: it cannot raise its own limits.
    const raise = await execSync(id, ['sh', '-c', `echo max > ${dir}/memory.max`]);
    assert.notEqual(raise.exitCode, 0);
    assert.match(raise.stderr, /Read-only file system/);
  });

  test('the limits are enforced: memory.max OOM-kills what goes beyond, pids.max stops forks', async () => {
    // A 64 MB string in awk, in a container limited to 48 MiB: the kernel's OOM killer ends it (SIGKILL).
    const hog = await execSync(id, ['awk', 'BEGIN { s = sprintf("%64000000s", ""); print length(s) }']);
    assert.equal(hog.exitCode, 137, `awk: ${hog.exitCode} ${hog.stdout} ${hog.stderr}`);
    assert.match((await execSync(id, ['cat', `/sys/fs/cgroup/boson/${id}/memory.events`])).stdout, /oom_kill [1-9]/);
    assert.equal((await execSync(id, ['awk', 'BEGIN { s = sprintf("%8000000s", ""); print length(s) }'])).stdout, '8000000\n');
    // 20 processes at most: the shell cannot fork its 30 sleeps.
    const forks = await execSync(id, ['sh', '-c', 'i=0; while [ $i -lt 30 ]; do sleep 30 & i=$((i+1)); done; echo all started']);
    await execSync(id, ['pkill', '-f', 'sleep 30']);
    assert.doesNotMatch(forks.stdout, /all started/);
    assert.match(forks.stderr, /can't fork/);
  });

  test('UpdateContainerResources changes them while it runs; absent fields become unlimited', async () => {
    await c().runtime.UpdateContainerResources!({
      containerId: id,
      linux: { cpuPeriod: '100000', cpuQuota: '150000', memoryLimitInBytes: String(96 * MiB) },
    });
    const dir = `/sys/fs/cgroup/boson/${id}`;
    const { status } = await c().runtime.ContainerStatus!({ containerId: id });
    assert.equal(status.resources.linux.memoryLimitInBytes, String(96 * MiB));
    assert.equal(status.resources.linux.cpuQuota, '150000');
    assert.equal((await execSync(id, ['cat', `${dir}/memory.max`])).stdout.trim(), String(96 * MiB));
    assert.equal((await execSync(id, ['cat', `${dir}/cpu.max`])).stdout.trim(), '150000 100000');
    assert.equal((await execSync(id, ['cat', `${dir}/pids.max`])).stdout.trim(), 'max');
    await expectStatus(c().runtime.UpdateContainerResources!({ containerId: id, linux: { cpusetCpus: '0' } }), grpc.status.UNIMPLEMENTED);
    await expectStatus(
      c().runtime.UpdateContainerResources!({ containerId: id, linux: { unified: { 'memory.high': '1000000' } } }),
      grpc.status.UNIMPLEMENTED,
    );
    await expectStatus(c().runtime.UpdateContainerResources!({ containerId: 'f00d', linux: {} }), grpc.status.NOT_FOUND);
    // Removing the container removes its cgroup.
    await c().runtime.RemoveContainer!({ containerId: id });
    const other = await started('other', ['sleep', '1000']);
    assert.notEqual((await execSync(other, ['test', '-d', dir])).exitCode, 0);
    // A container without limits is in a cgroup of its own too, unlimited.
    assert.equal((await execSync(other, ['cat', `/sys/fs/cgroup/boson/${other}/memory.max`])).stdout, 'max\n');
    await c().runtime.RemoveContainer!({ containerId: other });
  });
});

test('ContainerStats count every process of the container (its cgroup), its children too', async () => {
  const id = await started('hog', ['sh', '-c', `awk 'BEGIN { s = sprintf("%24000000s", ""); system("sleep 1000") }'`]);
  const workingSet = async (): Promise<number> =>
    Number((await c().runtime.ContainerStats!({ containerId: id })).stats.memory.workingSetBytes.value);
  await waitFor(async () => (await workingSet()) > 20 * MiB, 30_000, "awk's 24 MB in the container's stats");
  assert.ok((await workingSet()) < 128 * MiB);
  await c().runtime.RemoveContainer!({ containerId: id });
});

test('a stopped container leaves nothing running: what its main process started is killed with it', async () => {
  const id = await started('parent', ['sh', '-c', 'sleep 990 & exec sleep 1000']);
  const watcher = await started('watcher', ['sleep', '1000']);
  const running = async (): Promise<boolean> => /sleep 990/.test((await execSync(watcher, ['ps'])).stdout);
  await waitFor(running, 30_000, 'the background sleep');
  await c().runtime.StopContainer!({ containerId: id, timeout: 2 });
  assert.equal(await running(), false, 'the background sleep was killed');
  await c().runtime.RemoveContainer!({ containerId: id });
  await c().runtime.RemoveContainer!({ containerId: watcher });
});

test("the pod's DNS config (servers, searches, options) is in every container's /etc/resolv.conf", async () => {
  const a = await started('dns-a', ['sleep', '1000']);
  const b = await started('dns-b', ['sleep', '1000'], { linux: { securityContext: { readonlyRootfs: true } } });
  for (const id of [a, b]) {
    const resolv = (await execSync(id, ['cat', '/etc/resolv.conf'])).stdout;
    assert.equal(
      resolv,
      'nameserver 10.96.0.10\nnameserver 10.96.0.11\nsearch default.svc.cluster.local cluster.local\noptions ndots:5 edns0\n',
    );
  }
  await c().runtime.RemoveContainer!({ containerId: a });
  await c().runtime.RemoveContainer!({ containerId: b });
});

test('security context: user, group and supplementary groups apply; what cannot be enforced is refused', async () => {
  const id = await started('user', ['sleep', '1000'], {
    linux: { securityContext: { runAsUser: { value: '1000' }, runAsGroup: { value: '3000' }, supplementalGroups: ['4000', '5000'] } },
  });
  const ids = await execSync(id, ['sh', '-c', 'echo "$(id -u) $(id -g) $(id -G)"']);
  assert.match(ids.stdout, /^1000 3000 (3000 )?4000 5000\n$/);
  // The main process, not only ExecSync.
  const { info } = await c().runtime.ContainerStatus!({ containerId: id, verbose: true });
  const status = (await execSync(id, ['cat', `/proc/${JSON.parse(info.info).pid}/status`])).stdout;
  assert.match(status, /^Uid:\s+1000\s/m);
  assert.match(status, /^Gid:\s+3000\s/m);
  assert.match(status, /^Groups:\s+4000 5000\s*$/m);
  await c().runtime.RemoveContainer!({ containerId: id });

  // Capabilities: containerd's default set unless told otherwise; add and drop as containerd applies them.
  const capsOf = async (id: string): Promise<string> =>
    /CapBnd:\s+([0-9a-f]+)/.exec((await execSync(id, ['cat', '/proc/self/status'])).stdout)?.[1] ?? '';
  const plain = await started('caps-default', ['sleep', '1000']);
  assert.equal(await capsOf(plain), '00000000a80425fb');
  // Without CAP_SYS_ADMIN a container cannot make its cgroup writable (nor mount anything).
  const remount = await execSync(plain, ['mount', '-o', 'remount,rw', '/sys/fs/cgroup']);
  assert.notEqual(remount.exitCode, 0);
  const few = await started('caps-few', ['sleep', '1000'], {
    linux: { securityContext: { capabilities: { dropCapabilities: ['ALL'], addCapabilities: ['NET_BIND_SERVICE'] }, noNewPrivs: true } },
  });
  assert.equal(await capsOf(few), '0000000000000400');
  assert.match((await execSync(few, ['cat', '/proc/self/status'])).stdout, /NoNewPrivs:\s+1/);
  const more = await started('caps-more', ['sleep', '1000'], {
    linux: { securityContext: { capabilities: { addCapabilities: ['CAP_SYS_ADMIN'], dropCapabilities: ['MKNOD'] } } },
  });
  assert.equal(await capsOf(more), '00000000a02425fb');
  assert.equal((await execSync(more, ['sh', '-c', 'mkdir -p /mnt/t && mount -t tmpfs t /mnt/t && echo mounted'])).stdout, 'mounted\n');
  for (const x of [plain, few, more]) await c().runtime.RemoveContainer!({ containerId: x });

  const refused = async (securityContext: Record<string, unknown>, code: grpc.status): Promise<string> =>
    expectStatus(
      c().runtime.CreateContainer!({ podSandboxId: podId, config: containerConfig('bad', ['true'], { linux: { securityContext } }) }),
      code,
    );
  assert.match(await refused({ privileged: true }, grpc.status.UNIMPLEMENTED), /privileged/);
  assert.match(await refused({ runAsGroup: { value: '3000' } }, grpc.status.INVALID_ARGUMENT), /run_as_group needs run_as_user/);
  assert.match(await refused({ supplementalGroupsPolicy: 'Strict' }, grpc.status.UNIMPLEMENTED), /Strict/);
  assert.match(await refused({ capabilities: { addCapabilities: ['FLY'] } }, grpc.status.INVALID_ARGUMENT), /unknown capability "FLY"/);
  assert.match(await refused({ capabilities: { addAmbientCapabilities: ['NET_RAW'] } }, grpc.status.UNIMPLEMENTED), /ambient/);
  assert.match(await refused({ seccomp: { profileType: 'Localhost', localhostRef: '/x.json' } }, grpc.status.UNIMPLEMENTED), /seccomp/);
  assert.deepEqual(
    (await c().runtime.ListContainers!({ filter: { podSandboxId: podId, labelSelector: { container: 'bad' } } })).containers,
    [],
  );
});

test('RemovePodSandbox removes the pod VM with every container left in it', async () => {
  const id = await pod();
  await c().runtime.RemovePodSandbox!({ podSandboxId: id });
  await expectStatus(c().runtime.PodSandboxStatus!({ podSandboxId: id }), grpc.status.NOT_FOUND);
});
