/**
 * Pods through CRI, each a micro-VM of its own (real QEMU guests): RunPodSandbox boots one VM (its QEMU belongs to
 * the pod, its size is the pod's resources, hostname and DNS are the pod's), containers join it after it booted
 * with their own root filesystems, ExecSync runs in them (the guest kernel answers uname -r), logs are in the CRI
 * format, and stop and remove leave nothing behind.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { assertGuestRelease, assertQemuOwns, qemuPidsUsing, useDaemonHost, waitFor } from './helpers.ts';
import { criClient, expectStatus, streamExec, type CriClient } from './cri-client.ts';

const { host, daemon } = useDaemonHost();
let client: CriClient | undefined;
const c = (): CriClient => (client ??= criClient(path.join(host().stateDir, 'run', 'cri.sock')));
let logDir: string | undefined;
after(async () => {
  client?.close();
  if (logDir) await rm(logDir, { recursive: true, force: true });
});

const IMAGE = 'localhost/busybox:latest';
const text = (b: Buffer | undefined): string => (b ?? Buffer.alloc(0)).toString('utf8');

function podConfig(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    metadata: { name, uid: `uid-${name}`, namespace: 'default', attempt: 0 },
    hostname: name,
    labels: { app: name, tier: 'test' },
    annotations: { 'example.com/note': `pod ${name}` },
    ...extra,
  };
}

function containerConfig(name: string, args: string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { metadata: { name, attempt: 0 }, image: { image: IMAGE }, args, labels: { container: name }, ...extra };
}

async function execSync(containerId: string, cmd: string[]): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const r = await c().runtime.ExecSync!({ containerId, cmd, timeout: 60 });
  return { stdout: text(r.stdout), stderr: text(r.stderr), exitCode: r.exitCode };
}

describe('a pod sandbox is one micro-VM', () => {
  let podId = '';

  test('RunPodSandbox boots a VM of the pod size, with its hostname and DNS; PodSandboxStatus shows its QEMU', async () => {
    logDir = await mkdtemp(path.join(os.tmpdir(), 'boson-cri-logs-'));
    const run = await c().runtime.RunPodSandbox!({
      config: podConfig('web', {
        logDirectory: logDir,
        dnsConfig: { servers: ['10.96.0.10'], searches: ['default.svc.cluster.local', 'svc.cluster.local'], options: [] },
        linux: { resources: { memoryLimitInBytes: String(192 * 1024 * 1024), cpuPeriod: '100000', cpuQuota: '200000' } },
      }),
    });
    podId = run.podSandboxId;
    assert.match(podId, /^[0-9a-f]{64}$/);
    const status = await c().runtime.PodSandboxStatus!({ podSandboxId: podId, verbose: true });
    assert.equal(status.status.state, 'SANDBOX_READY');
    assert.equal(status.status.metadata.name, 'web');
    assert.deepEqual(status.status.labels, { app: 'web', tier: 'test' });
    assert.equal(status.status.annotations['example.com/note'], 'pod web');
    assert.match(status.status.network.ip, /^\d+\.\d+\.\d+\.\d+$/);
    const info = JSON.parse(status.info.info);
    assert.ok(['tcg', 'kvm'].includes(info.vm.accelerator), info.vm.accelerator);
    assert.equal(info.vm.memoryMiB, 192);
    assert.equal(info.vm.cpus, 2);
    await assertQemuOwns(host().stateDir, info.vm.pid, info.vm.containerId);
  });

  test('PodSandboxStats and ListPodSandboxStats: the pod VM CPU and memory, seen from the host', async () => {
    const { stats } = await c().runtime.PodSandboxStats!({ podSandboxId: podId });
    assert.equal(stats.attributes.id, podId);
    assert.equal(stats.attributes.metadata.name, 'web');
    assert.ok(Number(stats.linux.cpu.usageCoreNanoSeconds.value) > 0);
    const rss = Number(stats.linux.memory.workingSetBytes.value);
    assert.ok(rss > 4 * 1024 * 1024 && rss < 1024 * 1024 * 1024, `QEMU resident ${rss}`);
    const listed = await c().runtime.ListPodSandboxStats!({ filter: { labelSelector: { app: 'web' } } });
    assert.deepEqual(
      listed.stats.map((s: { attributes: { id: string } }) => s.attributes.id),
      [podId],
    );
    assert.deepEqual((await c().runtime.ListPodSandboxStats!({ filter: { labelSelector: { app: 'none' } } })).stats, []);
  });

  test('ListPodSandbox filters by id prefix, state and labels', async () => {
    const all = await c().runtime.ListPodSandbox!({});
    assert.ok(all.items.some((p: { id: string }) => p.id === podId));
    const byId = await c().runtime.ListPodSandbox!({ filter: { id: podId.slice(0, 12) } });
    assert.deepEqual(
      byId.items.map((p: { id: string }) => p.id),
      [podId],
    );
    const byLabel = await c().runtime.ListPodSandbox!({ filter: { labelSelector: { app: 'web' } } });
    assert.deepEqual(
      byLabel.items.map((p: { id: string }) => p.id),
      [podId],
    );
    assert.deepEqual((await c().runtime.ListPodSandbox!({ filter: { labelSelector: { app: 'other' } } })).items, []);
    const notReady = await c().runtime.ListPodSandbox!({ filter: { state: { state: 'SANDBOX_NOTREADY' } } });
    assert.ok(!notReady.items.some((p: { id: string }) => p.id === podId));
  });

  let first = '';
  let second = '';

  test('containers join the running VM, each with its own root filesystem, process, env, cwd and user', async () => {
    const created = await c().runtime.CreateContainer!({
      podSandboxId: podId,
      config: containerConfig('app', ['sh', '-c', 'echo hello from app; echo to stderr >&2; printf unfinished; exec sleep 1000'], {
        envs: [{ key: 'GREETING', value: Buffer.from('hi there') }],
        workingDir: '/work',
        logPath: 'app/0.log',
      }),
    });
    first = created.containerId;
    let status = await c().runtime.ContainerStatus!({ containerId: first });
    assert.equal(status.status.state, 'CONTAINER_CREATED');
    await c().runtime.StartContainer!({ containerId: first });
    status = await c().runtime.ContainerStatus!({ containerId: first, verbose: true });
    assert.equal(status.status.state, 'CONTAINER_RUNNING');
    assert.ok(Number(status.status.startedAt) > 0);
    assert.ok(JSON.parse(status.info.info).pid > 1);

    const second_ = await c().runtime.CreateContainer!({
      podSandboxId: podId,
      config: containerConfig('sidecar', ['sleep', '1000'], {
        linux: { securityContext: { runAsUser: { value: '65534' } } },
        logPath: 'sidecar/0.log',
      }),
    });
    second = second_.containerId;
    await c().runtime.StartContainer!({ containerId: second });

    // The guest kernel, not the host's: the containers run in the pod's VM.
    const uname = await execSync(first, ['uname', '-r']);
    assert.equal(uname.exitCode, 0, uname.stderr);
    assertGuestRelease(uname.stdout.trim());
    assert.equal((await execSync(second, ['uname', '-r'])).stdout, uname.stdout);

    // Own root filesystems: what one writes, the other does not see.
    assert.equal((await execSync(first, ['sh', '-c', 'echo mine > /only-in-app && cat /only-in-app'])).stdout, 'mine\n');
    const other = await execSync(second, ['cat', '/only-in-app']);
    assert.notEqual(other.exitCode, 0);
    // Own process settings.
    const env = await execSync(first, ['sh', '-c', 'echo "$GREETING|$(pwd)|$(id -u)"']);
    assert.equal(env.stdout, 'hi there|/work|0\n');
    assert.equal((await execSync(second, ['id', '-u'])).stdout, '65534\n');
    // The pod's hostname, DNS and size, seen from inside.
    assert.equal((await execSync(first, ['hostname'])).stdout, 'web\n');
    const resolv = (await execSync(first, ['cat', '/etc/resolv.conf'])).stdout;
    assert.match(resolv, /nameserver 10\.96\.0\.10/);
    assert.match(resolv, /search default\.svc\.cluster\.local svc\.cluster\.local/);
    assert.equal((await execSync(first, ['nproc'])).stdout, '2\n');
    const memTotalKb = Number(/MemTotal:\s+(\d+)/.exec((await execSync(first, ['cat', '/proc/meminfo'])).stdout)?.[1]);
    assert.ok(memTotalKb > 150 * 1024 && memTotalKb <= 192 * 1024, `MemTotal ${memTotalKb} kB`);
    // Both containers share the pod's network: one VM, one address.
    const addr = (await execSync(first, ['ip', '-4', 'addr'])).stdout;
    assert.equal((await execSync(second, ['ip', '-4', 'addr'])).stdout, addr);
    // Exit codes come back.
    assert.equal((await execSync(first, ['sh', '-c', 'echo out; echo err >&2; exit 3'])).exitCode, 3);
    const missing = await execSync(first, ['no-such-command']);
    assert.equal(missing.exitCode, 127);
    // A command that outlives ExecSync's timeout is killed and reported as such.
    const t0 = Date.now();
    await expectStatus(c().runtime.ExecSync!({ containerId: first, cmd: ['sleep', '60'], timeout: 1 }), grpc.status.DEADLINE_EXCEEDED);
    assert.ok(Date.now() - t0 < 30_000);
  });

  test('a read-only root filesystem (readonlyRootfs) stays read-only, for ExecSync too', async () => {
    const { containerId } = await c().runtime.CreateContainer!({
      podSandboxId: podId,
      config: containerConfig('ro', ['sh', '-c', 'touch /at-start 2>&1; echo "touch: $?"; exec sleep 1000'], {
        linux: { securityContext: { readonlyRootfs: true } },
        logPath: 'ro/0.log',
      }),
    });
    await c().runtime.StartContainer!({ containerId });
    const write = await execSync(containerId, ['touch', '/tmp/x']);
    assert.notEqual(write.exitCode, 0);
    assert.match(write.stderr, /Read-only file system/);
    // Its /proc, /dev and the pod's resolv.conf are there as usual.
    assert.equal((await execSync(containerId, ['cat', '/proc/sys/kernel/hostname'])).stdout, 'web\n');
    assert.match((await execSync(containerId, ['cat', '/etc/resolv.conf'])).stdout, /10\.96\.0\.10/);
    await waitFor(async () => (await readFile(path.join(logDir!, 'ro', '0.log'), 'utf8')).includes('touch: 1'), 10_000, 'the log line');
    // A writable container of the same pod (same image) can write its own root.
    assert.equal((await execSync(first, ['touch', '/tmp/x'])).exitCode, 0);
    await c().runtime.RemoveContainer!({ containerId });
  });

  test('volumes: host directories and files bound into a container after the VM booted, read-only where asked', async () => {
    const vol = await mkdtemp(path.join(os.tmpdir(), 'boson-cri-vol-'));
    try {
      await writeFile(path.join(vol, 'in.txt'), 'from the host\n');
      await writeFile(path.join(vol, 'config.txt'), 'setting=1\n');
      await writeFile(path.join(vol, 'termination-log'), '');
      const { containerId } = await c().runtime.CreateContainer!({
        podSandboxId: podId,
        config: containerConfig('vol', ['sleep', '1000'], {
          mounts: [
            { hostPath: vol, containerPath: '/data' },
            { hostPath: path.join(vol, 'config.txt'), containerPath: '/etc/app/config.txt', readonly: true },
            { hostPath: path.join(vol, 'termination-log'), containerPath: '/dev/termination-log' },
          ],
        }),
      });
      await c().runtime.StartContainer!({ containerId });
      assert.equal((await execSync(containerId, ['cat', '/data/in.txt'])).stdout, 'from the host\n');
      assert.equal((await execSync(containerId, ['sh', '-c', 'echo from the guest > /data/out.txt'])).exitCode, 0);
      assert.equal(await readFile(path.join(vol, 'out.txt'), 'utf8'), 'from the guest\n');
      assert.equal((await execSync(containerId, ['cat', '/etc/app/config.txt'])).stdout, 'setting=1\n');
      const ro = await execSync(containerId, ['sh', '-c', 'echo x > /etc/app/config.txt']);
      assert.notEqual(ro.exitCode, 0);
      assert.match(ro.stderr, /Read-only file system/);
      assert.equal((await execSync(containerId, ['sh', '-c', 'echo done > /dev/termination-log'])).exitCode, 0);
      assert.equal(await readFile(path.join(vol, 'termination-log'), 'utf8'), 'done\n');
      // The other containers of the pod do not see it.
      assert.notEqual((await execSync(first, ['cat', '/data/in.txt'])).exitCode, 0);
      // Removing the container unbinds the host paths and leaves their files alone.
      await c().runtime.RemoveContainer!({ containerId });
      assert.equal(await readFile(path.join(vol, 'in.txt'), 'utf8'), 'from the host\n');
      assert.equal(await readFile(path.join(vol, 'out.txt'), 'utf8'), 'from the guest\n');
      assert.doesNotMatch(await readFile('/proc/self/mountinfo', 'utf8'), new RegExp(` ${vol}`));
      await expectStatus(
        c().runtime.CreateContainer!({
          podSandboxId: podId,
          config: containerConfig('bad', ['true'], { mounts: [{ hostPath: path.join(vol, 'missing'), containerPath: '/m' }] }),
        }),
        grpc.status.INVALID_ARGUMENT,
      );
    } finally {
      await rm(vol, { recursive: true, force: true });
    }
  });

  test('Exec streams through a WebSocket of the channel protocol: stdin, stdout, stderr and the exit status', async () => {
    const { url } = await c().runtime.Exec!({
      containerId: first,
      cmd: ['sh', '-c', 'read line; echo "got:$line"; echo oops >&2; exit 3'],
      stdin: true,
      stdout: true,
      stderr: true,
    });
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/exec\/[0-9a-f]{32}$/);
    const r = await streamExec(url, 'hello\n');
    assert.equal(r.protocol, 'v5.channel.k8s.io');
    assert.equal(r.stdout, 'got:hello\n');
    assert.equal(r.stderr, 'oops\n');
    assert.equal(r.status?.status, 'Failure');
    assert.equal(r.status?.reason, 'NonZeroExitCode');
    assert.deepEqual(r.status?.details?.causes, [{ reason: 'ExitCode', message: '3' }]);
    // A URL is used once.
    await assert.rejects(streamExec(url, null), /404/);
    // v4, without stdin: the guest kernel answers, and success is a Success status.
    const v4 = await streamExec(
      (await c().runtime.Exec!({ containerId: first, cmd: ['uname', '-r'], stdout: true, stderr: true })).url,
      null,
      ['v4.channel.k8s.io'],
    );
    assert.equal(v4.protocol, 'v4.channel.k8s.io');
    assertGuestRelease(v4.stdout.trim());
    assert.equal(v4.status?.status, 'Success');
    // SPDY (no WebSocket offer) is refused with a reason.
    const spdy = (await c().runtime.Exec!({ containerId: first, cmd: ['true'], stdout: true })).url;
    await assert.rejects(streamExec(spdy, null, ['SPDY/3.1+portforward.k8s.io']), /400.*v5\.channel\.k8s\.io/s);
  });

  test('ContainerStats and ListContainerStats: the process of each running container, read in the pod VM', async () => {
    const { stats } = await c().runtime.ContainerStats!({ containerId: second });
    assert.equal(stats.attributes.id, second);
    assert.equal(stats.attributes.metadata.name, 'sidecar');
    const rss = Number(stats.memory.workingSetBytes.value);
    assert.ok(rss > 0 && rss < 64 * 1024 * 1024, `sleep's resident memory ${rss}`);
    assert.ok(Number(stats.cpu.usageCoreNanoSeconds.value) >= 0);
    const listed = await c().runtime.ListContainerStats!({ filter: { podSandboxId: podId } });
    assert.deepEqual(listed.stats.map((s: { attributes: { id: string } }) => s.attributes.id).sort(), [first, second].sort());
    assert.ok(listed.stats.every((s: { memory: { workingSetBytes: { value: string } } }) => Number(s.memory.workingSetBytes.value) > 0));
    const byLabel = await c().runtime.ListContainerStats!({ filter: { labelSelector: { container: 'app' } } });
    assert.deepEqual(
      byLabel.stats.map((s: { attributes: { id: string } }) => s.attributes.id),
      [first],
    );
  });

  test('ListContainers filters by pod, state, id and labels', async () => {
    const inPod = await c().runtime.ListContainers!({ filter: { podSandboxId: podId } });
    assert.deepEqual(inPod.containers.map((x: { id: string }) => x.id).sort(), [first, second].sort());
    const byLabel = await c().runtime.ListContainers!({ filter: { labelSelector: { container: 'sidecar' } } });
    assert.deepEqual(
      byLabel.containers.map((x: { id: string }) => x.id),
      [second],
    );
    const running = await c().runtime.ListContainers!({ filter: { state: { state: 'CONTAINER_RUNNING' }, id: first.slice(0, 10) } });
    assert.deepEqual(
      running.containers.map((x: { id: string }) => x.id),
      [first],
    );
  });

  test('StopContainer ends the process (SIGTERM, then SIGKILL after the timeout); its log is in the CRI format', async () => {
    await c().runtime.StopContainer!({ containerId: first, timeout: 5 });
    const status = await c().runtime.ContainerStatus!({ containerId: first });
    assert.equal(status.status.state, 'CONTAINER_EXITED');
    assert.equal(status.status.exitCode, 143);
    assert.equal(status.status.reason, 'Error');
    assert.ok(Number(status.status.finishedAt) >= Number(status.status.startedAt));
    const logPath = status.status.logPath;
    assert.equal(logPath, path.join(logDir!, 'app', '0.log'));
    const records = (await readFile(logPath, 'utf8'))
      .trimEnd()
      .split('\n')
      .map((l) => /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (stdout|stderr) (F|P) (.*)$/.exec(l)?.slice(2));
    assert.deepEqual(
      records.filter((r) => r?.[0] === 'stdout'),
      [
        ['stdout', 'F', 'hello from app'],
        ['stdout', 'F', 'unfinished'],
      ],
    );
    assert.deepEqual(
      records.filter((r) => r?.[0] === 'stderr'),
      [['stderr', 'F', 'to stderr']],
    );
    await expectStatus(c().runtime.ExecSync!({ containerId: first, cmd: ['true'] }), grpc.status.FAILED_PRECONDITION);
    await c().runtime.RemoveContainer!({ containerId: first });
    await expectStatus(c().runtime.ContainerStatus!({ containerId: first }), grpc.status.NOT_FOUND);
    await c().runtime.RemoveContainer!({ containerId: first }); // gone already: no error
  });

  test('StopPodSandbox stops its containers and its VM; RemovePodSandbox removes everything', async () => {
    const { info } = await c().runtime.PodSandboxStatus!({ podSandboxId: podId, verbose: true });
    const qemu = JSON.parse(info.info).vm.pid as number;
    await c().runtime.StopPodSandbox!({ podSandboxId: podId });
    const status = await c().runtime.PodSandboxStatus!({ podSandboxId: podId });
    assert.equal(status.status.state, 'SANDBOX_NOTREADY');
    const sidecar = await c().runtime.ContainerStatus!({ containerId: second });
    assert.equal(sidecar.status.state, 'CONTAINER_EXITED');
    await waitFor(async () => !(await qemuPidsUsing(host().stateDir)).includes(qemu), 10_000, 'the pod QEMU to end');
    await expectStatus(
      c().runtime.CreateContainer!({ podSandboxId: podId, config: containerConfig('late', ['true']) }),
      grpc.status.FAILED_PRECONDITION,
    );
    await c().runtime.StopPodSandbox!({ podSandboxId: podId }); // again: no error
    await c().runtime.RemovePodSandbox!({ podSandboxId: podId });
    await expectStatus(c().runtime.PodSandboxStatus!({ podSandboxId: podId }), grpc.status.NOT_FOUND);
    // Its shared directory is unmounted and gone.
    assert.doesNotMatch(await readFile('/proc/self/mountinfo', 'utf8'), new RegExp(podId));
    await assert.rejects(access(path.join(host().stateDir, 'pods', podId)));
    assert.deepEqual((await c().runtime.ListContainers!({ filter: { podSandboxId: podId } })).containers, []);
    await c().runtime.RemovePodSandbox!({ podSandboxId: podId }); // gone already: no error
  });
});

test('two pods are two VMs: each has its own QEMU and guest', async () => {
  const pods: string[] = [];
  try {
    const a = (await c().runtime.RunPodSandbox!({ config: podConfig('pod-a') })).podSandboxId;
    pods.push(a);
    const b = (await c().runtime.RunPodSandbox!({ config: podConfig('pod-b') })).podSandboxId;
    pods.push(b);
    const pid = async (id: string): Promise<number> =>
      JSON.parse((await c().runtime.PodSandboxStatus!({ podSandboxId: id, verbose: true })).info.info).vm.pid;
    assert.notEqual(await pid(a), await pid(b));
    const ca = (await c().runtime.CreateContainer!({ podSandboxId: a, config: containerConfig('x', ['sleep', '1000']) })).containerId;
    const cb = (await c().runtime.CreateContainer!({ podSandboxId: b, config: containerConfig('x', ['sleep', '1000']) })).containerId;
    await c().runtime.StartContainer!({ containerId: ca });
    await c().runtime.StartContainer!({ containerId: cb });
    assert.equal((await execSync(ca, ['hostname'])).stdout, 'pod-a\n');
    assert.equal((await execSync(cb, ['hostname'])).stdout, 'pod-b\n');
    // One container per name and attempt in a pod; the same name in another pod is another container.
    await expectStatus(
      c().runtime.CreateContainer!({ podSandboxId: a, config: containerConfig('x', ['sleep', '1000']) }),
      grpc.status.ALREADY_EXISTS,
    );
    // The containers of a pod reach each other on localhost; the other pod's do not.
    const server = (
      await c().runtime.CreateContainer!({
        podSandboxId: a,
        config: containerConfig('server', [
          'sh',
          '-c',
          'mkdir -p /www && echo page-of-a > /www/index.html && exec httpd -f -p 8080 -h /www',
        ]),
      })
    ).containerId;
    await c().runtime.StartContainer!({ containerId: server });
    await waitFor(
      async () => (await execSync(ca, ['wget', '-qO-', 'http://127.0.0.1:8080/'])).stdout === 'page-of-a\n',
      20_000,
      'the page on localhost',
    );
    const fromB = await execSync(cb, ['wget', '-qO-', '-T', '3', 'http://127.0.0.1:8080/']);
    assert.notEqual(fromB.exitCode, 0, fromB.stdout);
    // The processes of one pod are not in the other's VM.
    const psA = (await execSync(ca, ['ps'])).stdout;
    assert.match(psA, /sleep 1000/);
    assert.equal(psA.match(/sleep 1000/g)!.length, 1, psA);
    assert.doesNotMatch((await execSync(cb, ['ps'])).stdout, /httpd/);
  } finally {
    for (const id of pods) await c().runtime.RemovePodSandbox!({ podSandboxId: id });
  }
});

test('a daemon restart keeps the pod VM: its old containers are reported, new ones start, and it is removed cleanly', async () => {
  const podSandboxId = (await c().runtime.RunPodSandbox!({ config: podConfig('keep') })).podSandboxId;
  try {
    const old = (await c().runtime.CreateContainer!({ podSandboxId, config: containerConfig('old', ['sleep', '1000']) })).containerId;
    await c().runtime.StartContainer!({ containerId: old });
    const pidBefore = JSON.parse((await c().runtime.PodSandboxStatus!({ podSandboxId, verbose: true })).info.info).vm.pid;
    client?.close();
    client = undefined;
    await daemon.stop();
    await daemon.start();
    const status = await c().runtime.PodSandboxStatus!({ podSandboxId, verbose: true });
    assert.equal(status.status.state, 'SANDBOX_READY');
    assert.equal(JSON.parse(status.info.info).vm.pid, pidBefore, 'the same QEMU, re-attached');
    const oldStatus = await c().runtime.ContainerStatus!({ containerId: old });
    assert.equal(oldStatus.status.state, 'CONTAINER_EXITED');
    assert.equal(oldStatus.status.reason, 'Unknown');
    const fresh = (await c().runtime.CreateContainer!({ podSandboxId, config: containerConfig('new', ['sleep', '1000']) })).containerId;
    await c().runtime.StartContainer!({ containerId: fresh });
    assert.equal((await execSync(fresh, ['hostname'])).stdout, 'keep\n');
  } finally {
    await c().runtime.RemovePodSandbox!({ podSandboxId });
  }
  assert.doesNotMatch(await readFile('/proc/self/mountinfo', 'utf8'), new RegExp(podSandboxId));
});

test('bad pod and container requests are refused with a precise status, and change nothing', async () => {
  await expectStatus(c().runtime.RunPodSandbox!({ config: podConfig('h'), runtimeHandler: 'runc' }), grpc.status.INVALID_ARGUMENT);
  await expectStatus(c().runtime.RunPodSandbox!({ config: { metadata: {} } }), grpc.status.INVALID_ARGUMENT);
  assert.deepEqual((await c().runtime.ListPodSandbox!({})).items, []);
  await expectStatus(c().runtime.CreateContainer!({ podSandboxId: 'f00d', config: containerConfig('x', ['true']) }), grpc.status.NOT_FOUND);
});
