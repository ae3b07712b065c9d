/**
 * The CRI personality of `boson up` through its socket, with a client generated from the proto (test/cri-client.ts):
 * runtime info and status, the precise status of RPCs Boson does not serve, image management against a loopback
 * registry (Debian's docker-registry, with Basic auth), and the CRI server turned off by --no-cri / BOSON_CRI=off.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { BUSYBOX_LAYOUT, makeTestHost, runBoson, startBoson, useDaemonHost, waitFor } from './helpers.ts';
import { criClient, expectStatus, type CriClient } from './cri-client.ts';
import { pushLayout, startRegistry, type TestRegistry } from './registry-fixture.ts';

const { host } = useDaemonHost();
let client: CriClient | undefined;
/** The client of the suite's daemon (made on first use: the host exists once the suite runs). */
const c = (): CriClient => (client ??= criClient(path.join(host().stateDir, 'run', 'cri.sock')));
after(() => client?.close());

describe('runtime info', () => {
  test('Version names Boson and the CRI API version', async () => {
    const v = await c().runtime.Version!({ version: 'v1' });
    assert.equal(v.runtimeName, 'boson');
    assert.equal(v.runtimeApiVersion, 'v1');
    assert.match(v.runtimeVersion, /^\d+\.\d+\.\d+/);
  });

  test('Status: RuntimeReady and NetworkReady are true, with verbose info', async () => {
    const s = await c().runtime.Status!({ verbose: true });
    const conditions = Object.fromEntries(s.status.conditions.map((c: { type: string; status: boolean }) => [c.type, c.status]));
    assert.deepEqual(conditions, { RuntimeReady: true, NetworkReady: true });
    assert.equal(JSON.parse(s.info.config).runtime, 'boson');
    assert.ok(s.runtimeHandlers.some((h: { name: string }) => h.name === 'boson'));
    const quiet = await c().runtime.Status!({});
    assert.deepEqual(quiet.info, {});
  });

  test('RuntimeConfig: the cgroupfs driver', async () => {
    const config = await c().runtime.RuntimeConfig!({});
    assert.equal(config.linux.cgroupDriver, 'CGROUPFS');
  });
});

describe('RPCs Boson does not serve', () => {
  test('answer UNIMPLEMENTED or FAILED_PRECONDITION with the reason', async () => {
    await expectStatus(c().runtime.Attach!({ containerId: 'f00d', stdout: true }), grpc.status.NOT_FOUND);
    await expectStatus(c().runtime.Exec!({ containerId: 'f00d', cmd: ['sh'], stdout: true }), grpc.status.NOT_FOUND);
    await expectStatus(c().runtime.PortForward!({ podSandboxId: 'f00d', port: [80] }), grpc.status.NOT_FOUND);
    assert.match(await expectStatus(c().runtime.CheckpointContainer!({ containerId: 'x' }), grpc.status.UNIMPLEMENTED), /checkpoint/i);
    assert.match(
      await expectStatus(c().runtime.UpdatePodSandboxResources!({ podSandboxId: 'x' }), grpc.status.FAILED_PRECONDITION),
      /hot-plug/,
    );
    assert.match(await expectStatus(c().runtime.ListMetricDescriptors!({}), grpc.status.UNIMPLEMENTED), /metrics/);
  });

  test('a streaming RPC ends with UNIMPLEMENTED', async () => {
    const stream = (c().raw.runtime as unknown as { GetContainerEvents: (r: object) => NodeJS.EventEmitter }).GetContainerEvents({});
    const err = await new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
    assert.equal(err.code, grpc.status.UNIMPLEMENTED);
    assert.match(err.details, /relisting/);
  });

  test('errors of the machine map through the one kind table (NotFound -> NOT_FOUND)', async () => {
    await expectStatus(c().runtime.PodSandboxStatus!({ podSandboxId: 'f00dfeed' }), grpc.status.NOT_FOUND);
    await expectStatus(c().runtime.ContainerStatus!({ containerId: 'f00dfeed' }), grpc.status.NOT_FOUND);
    await expectStatus(c().image.PullImage!({ image: { image: 'Not A Reference' } }), grpc.status.INVALID_ARGUMENT);
  });
});

describe('images', () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await startRegistry({ kind: 'htpasswd', user: 'kube', password: 'let-me-in' });
    await pushLayout(BUSYBOX_LAYOUT, 'localhost/busybox:latest', `${registry.host}/tools/busybox:1.0`, { creds: 'kube:let-me-in' });
  });
  after(() => registry?.stop());

  test('PullImage needs the credentials of the request, by username/password or auth', async () => {
    const ref = `${registry.host}/tools/busybox:1.0`;
    await expectStatus(c().image.PullImage!({ image: { image: ref } }), grpc.status.PERMISSION_DENIED);
    await expectStatus(
      c().image.PullImage!({ image: { image: ref }, auth: { username: 'kube', password: 'wrong' } }),
      grpc.status.PERMISSION_DENIED,
    );
    const pulled = await c().image.PullImage!({ image: { image: ref }, auth: { username: 'kube', password: 'let-me-in' } });
    assert.match(pulled.imageRef, /^sha256:[0-9a-f]{64}$/);
    const again = await c().image.PullImage!({
      image: { image: ref },
      auth: { auth: Buffer.from('kube:let-me-in').toString('base64') },
    });
    assert.equal(again.imageRef, pulled.imageRef);
  });

  test('ListImages with and without a filter, ImageStatus (verbose), ImageFsInfo, RemoveImage', async () => {
    const ref = `${registry.host}/tools/busybox:1.0`;
    const all = await c().image.ListImages!({});
    assert.ok(all.images.length >= 1);
    const filtered = await c().image.ListImages!({ filter: { image: { image: ref } } });
    assert.equal(filtered.images.length, 1);
    assert.ok(filtered.images[0].repoTags.includes(ref), JSON.stringify(filtered.images[0].repoTags));
    assert.ok(Number(filtered.images[0].size) > 0);
    const none = await c().image.ListImages!({ filter: { image: { image: 'localhost/nothing:here' } } });
    assert.deepEqual(none.images, []);

    const status = await c().image.ImageStatus!({ image: { image: ref }, verbose: true });
    assert.equal(status.image.id, filtered.images[0].id);
    assert.equal(JSON.parse(status.info.info).os, 'linux');
    const missing = await c().image.ImageStatus!({ image: { image: 'localhost/nothing:here' } });
    assert.equal(missing.image, null);

    const fs = await c().image.ImageFsInfo!({});
    assert.equal(fs.imageFilesystems.length, 1);
    assert.ok(Number(fs.imageFilesystems[0].usedBytes.value) > 0);
    assert.ok(fs.imageFilesystems[0].fsId.mountpoint.startsWith(host().stateDir));

    // The demo image has the same id under two names: removing by id removes both.
    await c().image.RemoveImage!({ image: { image: ref } });
    const after = await c().image.ImageStatus!({ image: { image: ref } });
    assert.equal(after.image, null);
    // Removing what is gone is success.
    await c().image.RemoveImage!({ image: { image: ref } });
    // The demo image comes back for the pod tests.
    const { code, stderr } = await runBoson(host(), ['image', 'import', BUSYBOX_LAYOUT]);
    assert.equal(code, 0, stderr);
  });
});

test('boson up --no-cri and BOSON_CRI=off serve no CRI socket', async () => {
  const h = await makeTestHost();
  try {
    for (const [args, env] of [
      [['up', '--no-cri'], {}],
      [['up'], { BOSON_CRI: 'off' }],
    ] as const) {
      const child = startBoson({ ...h, env: { ...h.env, ...env } }, [...args]);
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      try {
        await waitFor(() => out.includes('listening') || child.exitCode !== null, 30_000, 'the daemon to listen');
        assert.match(out, /listening/);
        assert.doesNotMatch(out, /CRI on/);
        await assert.rejects(access(path.join(h.stateDir, 'run', 'cri.sock')));
      } finally {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await gone;
      }
    }
  } finally {
    await h.cleanup();
  }
});
