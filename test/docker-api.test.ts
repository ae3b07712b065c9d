/**
 * Boson's Docker Engine API as SDKs and misbehaving clients see it: dockerode (create/start/wait/logs/inspect/
 * list, exec with a hijacked stream), raw HTTP (ping headers, versions, malformed JSON, unknown fields, bad names,
 * huge bodies, an exec body split from its upgrade head, clients that disconnect mid-attach and mid-pull), and
 * `docker pull`/`docker login` against a loopback registry (Debian's docker-registry, image pushed with skopeo).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import Docker from 'dockerode';
import { BUSYBOX_LAYOUT, collect, useDaemonHost, waitFor, type BosonResult } from './helpers.ts';
import { pushLayout, startRegistry, type TestRegistry } from './registry-fixture.ts';

const { host } = useDaemonHost();
const sock = (): string => `${host().env.BOSON_RUN_DIR}/docker.sock`;
let work: string;
let plain: TestRegistry;
let basic: TestRegistry;
const docker = (args: string[], input?: string): Promise<BosonResult> =>
  collect(
    spawn('docker', args, {
      env: { ...process.env, DOCKER_HOST: `unix://${sock()}`, DOCKER_CONFIG: path.join(work, 'cfg') },
      stdio: ['pipe', 'pipe', 'pipe'],
    }),
    input,
    90_000,
    ['docker', ...args],
  );

/** One raw HTTP request on the Docker socket. */
function request(
  method: string,
  urlPath: string,
  body?: string | Buffer,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        socketPath: sock(),
        method,
        path: urlPath,
        headers: { ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}), ...headers },
      },
      (res) => {
        let data = '';
        res.on('data', (d: Buffer) => (data += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: data }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Sends raw bytes and collects the answer until the server closes (or `untilMs`). */
function raw(chunks: Array<string | Buffer>, gapMs = 0, untilMs = 30_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = net.connect(sock());
    const got: Buffer[] = [];
    s.on('data', (d) => got.push(d));
    s.on('error', reject);
    s.on('close', () => resolve(Buffer.concat(got)));
    setTimeout(() => s.destroy(), untilMs).unref();
    s.on('connect', async () => {
      for (const c of chunks) {
        s.write(c);
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
    });
  });
}

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'boson-docker-api-'));
  [plain, basic] = await Promise.all([startRegistry(), startRegistry({ kind: 'htpasswd', user: 'alice', password: 'wonder' })]);
  await pushLayout(BUSYBOX_LAYOUT, 'localhost/busybox:latest', `${plain.host}/tools/box:v1`);
  await pushLayout(BUSYBOX_LAYOUT, 'localhost/busybox:latest', `${basic.host}/private/box:v1`, { creds: 'alice:wonder' });
});
after(async () => {
  await plain?.stop();
  await basic?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('Docker API: SDKs and bad input', () => {
  test('/_ping (HEAD and GET) answers with the headers the CLI negotiates with', async () => {
    for (const method of ['HEAD', 'GET']) {
      const r = await request(method, '/_ping');
      assert.equal(r.status, 200);
      assert.equal(r.headers['api-version'], '1.47');
      assert.equal(r.headers.ostype, 'linux');
      assert.equal(r.headers['docker-experimental'], 'false');
      assert.equal(r.headers['cache-control'], 'no-cache, no-store, must-revalidate');
      assert.equal(r.headers.pragma, 'no-cache');
      assert.equal(r.body, method === 'GET' ? 'OK' : '');
    }
  });

  test('errors: Docker bodies with Content-Type application/json; versions, JSON, names, sizes; unknown fields ignored', async () => {
    const notFound = await request('GET', '/v1.47/containers/nope/json');
    assert.deepEqual(
      [notFound.status, notFound.headers['content-type'], JSON.parse(notFound.body)],
      [404, 'application/json', { message: 'No such container: nope' }],
    );
    const tooNew = await request('GET', '/v1.99/containers/json');
    assert.deepEqual(
      [tooNew.status, JSON.parse(tooNew.body).message],
      [400, 'client version 1.99 is too new. Maximum supported API version is 1.47'],
    );
    assert.equal((await request('GET', '/v1.44/containers/json')).status, 200, 'an older version is served');
    const badJson = await request('POST', '/containers/create', '{"Image": "busybox",');
    assert.equal(badJson.status, 400);
    assert.match(JSON.parse(badJson.body).message, /invalid JSON/);
    const wrongType = await request('POST', '/containers/create', JSON.stringify({ Image: 'busybox', Tty: 'yes' }));
    assert.equal(wrongType.status, 400);
    const badName = await request('POST', '/containers/create?name=-bad/name', JSON.stringify({ Image: 'busybox' }));
    assert.deepEqual(
      [badName.status, JSON.parse(badName.body).message],
      [400, 'Invalid container name (-bad/name), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed'],
    );
    const noImage = await request('POST', '/containers/create', JSON.stringify({ Image: 'nosuch-image-xyz:1' }));
    assert.deepEqual([noImage.status, JSON.parse(noImage.body).message], [404, 'No such image: nosuch-image-xyz:1']);
    const huge = await request('POST', '/containers/create', Buffer.alloc(5 * 1024 * 1024, 0x20));
    assert.equal(huge.status, 413);
    const unknown = await request(
      'POST',
      '/containers/create?name=extra',
      JSON.stringify({ Image: 'busybox', NoSuchField: 1, HostConfig: { Whatever: true } }),
    );
    assert.equal(unknown.status, 201, unknown.body);
    assert.equal((await request('DELETE', '/containers/extra')).status, 204);
    const unsupported = await request('POST', '/containers/x/pause');
    assert.equal(unsupported.status, 501);
    assert.match(JSON.parse(unsupported.body).message, /not supported by Boson/);
    assert.equal((await request('GET', '/no/such/endpoint')).status, 404);
    assert.equal((await request('GET', '/_ping')).status, 200, 'the daemon is still healthy');
  });

  test('every refused endpoint answers 501 "not supported by Boson" as Docker JSON', async () => {
    for (const [method, urlPath] of [
      ['POST', '/v1.47/build'],
      ['POST', '/commit?container=x'],
      ['POST', '/containers/x/pause'],
      ['POST', '/containers/x/unpause'],
      ['GET', '/containers/x/export'],
      ['GET', '/containers/x/changes'],
      ['GET', '/images/get?names=busybox'],
      ['POST', '/images/load'],
      ['POST', '/images/busybox/push'],
      ['POST', '/swarm/init'],
      ['GET', '/services'],
      ['GET', '/plugins'],
    ] as const) {
      const r = await request(method, urlPath, method === 'POST' ? '{}' : undefined);
      assert.equal(r.status, 501, `${method} ${urlPath}: ${r.body}`);
      assert.equal(r.headers['content-type'], 'application/json');
      assert.match(JSON.parse(r.body).message, /not supported by Boson/, `${method} ${urlPath}`);
    }
  });

  test('304 for start of a running and stop of a stopped container; cp from a stopped one reads its disks; volume -o size', async () => {
    const vol = await request('POST', '/volumes/create', JSON.stringify({ Name: 'sized', DriverOpts: { size: '64m' } }));
    assert.equal(vol.status, 201, vol.body);
    assert.deepEqual(JSON.parse(vol.body).Options, { size: String(64 * 1024 * 1024) });
    const created = await request(
      'POST',
      '/containers/create?name=states',
      JSON.stringify({ Image: 'busybox', Cmd: ['sleep', '600'], HostConfig: { Binds: ['sized:/data'] } }),
    );
    assert.equal(created.status, 201, created.body);
    try {
      assert.equal((await request('POST', '/containers/states/start')).status, 204);
      assert.equal((await request('POST', '/containers/states/start')).status, 304, 'start of a running container');
      const client = new Docker({ socketPath: sock() });
      const exec = await client.getContainer('states').exec({ Cmd: ['df', '-k', '/data'], AttachStdout: true, AttachStderr: true });
      const stream = await exec.start({ hijack: true, stdin: false });
      const chunks: Buffer[] = [];
      const stdout = new PassThrough();
      stdout.on('data', (d: Buffer) => chunks.push(d));
      client.modem.demuxStream(stream, stdout, new PassThrough());
      await new Promise((r) => stream.on('end', r));
      const blocks = Number(Buffer.concat(chunks).toString().trim().split('\n')[1]!.trim().split(/\s+/)[1]);
      assert.ok(blocks > 40_000 && blocks <= 65_536, `the volume's ext4 is about 64 MiB: ${blocks} KiB`);
      assert.equal((await request('POST', '/containers/states/stop?t=0')).status, 204);
      assert.equal((await request('POST', '/containers/states/stop?t=0')).status, 304, 'stop of a stopped container');
      // Files of a stopped container are read through a helper micro-VM on its disks (test/docker-cp.test.ts).
      const cp = await request('GET', '/containers/states/archive?path=/etc/passwd');
      assert.equal(cp.status, 200, cp.body);
      assert.match(cp.body, /root:x:0:0:/, "the tar holds the stopped container's /etc/passwd");
      const missing = await request('GET', '/containers/states/archive?path=/no/such/file');
      assert.equal(missing.status, 404, missing.body);
    } finally {
      await request('DELETE', '/containers/states?force=1');
      await request('DELETE', '/volumes/sized');
    }
  });

  test('dockerode: create, start, wait, logs, inspect, list; exec with a hijacked stream', async () => {
    const client = new Docker({ socketPath: sock() });
    const c = await client.createContainer({
      Image: 'busybox',
      name: 'sdk',
      Cmd: ['sh', '-c', 'echo from-sdk; echo err-sdk >&2; sleep 600'],
      Labels: { via: 'dockerode' },
    });
    await c.start();
    const list = await client.listContainers({ filters: { label: ['via=dockerode'] } });
    assert.equal(list.length, 1);
    assert.deepEqual([list[0]!.Names, list[0]!.State], [['/sdk'], 'running']);
    const info = await c.inspect();
    assert.equal(info.State.Running, true);
    assert.equal(info.Config.Labels.via, 'dockerode');
    const exec = await c.exec({ Cmd: ['sh', '-c', 'cat; echo done; exit 6'], AttachStdin: true, AttachStdout: true, AttachStderr: true });
    const stream = await exec.start({ hijack: true, stdin: true });
    const stdout = new PassThrough();
    const chunks: Buffer[] = [];
    stdout.on('data', (d: Buffer) => chunks.push(d));
    client.modem.demuxStream(stream, stdout, new PassThrough());
    stream.end('typed\n');
    await new Promise((r) => stream.on('end', r));
    assert.equal(Buffer.concat(chunks).toString(), 'typed\ndone\n');
    assert.equal((await exec.inspect()).ExitCode, 6);
    const logs = await c.logs({ stdout: true, stderr: true, follow: false });
    assert.ok(logs.includes(Buffer.from('from-sdk\n')) && logs.includes(Buffer.from('err-sdk\n')));
    assert.equal(logs[0], 1, 'multiplexed frames');
    await c.kill();
    assert.deepEqual(await c.wait(), { StatusCode: 137, Error: null });
    await c.remove();
  });

  test('an exec body in the first socket data after the upgrade head; a client that leaves mid-attach', async () => {
    const client = new Docker({ socketPath: sock() });
    const c = await client.createContainer({ Image: 'busybox', name: 'rawbox', Cmd: ['sleep', '600'], OpenStdin: true });
    // Attach before start, then disconnect: nothing breaks.
    const head = `POST /v1.47/containers/rawbox/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n`;
    const attached = await raw([head, 'some stdin'], 100, 500);
    assert.match(
      attached.toString(),
      /^HTTP\/1.1 101 UPGRADED\r\nContent-Type: application\/vnd.docker.multiplexed-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n/,
    );
    await c.start();
    const exec = await c.exec({ Cmd: ['echo', 'split-body'], AttachStdout: true, AttachStderr: true });
    const body = JSON.stringify({ Detach: false, Tty: false });
    const answer = await raw(
      [
        `POST /v1.47/exec/${exec.id}/start HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: ${body.length}\r\n\r\n`,
        body,
      ],
      200,
    );
    const text = answer.toString('latin1');
    assert.match(text, /^HTTP\/1.1 101 UPGRADED\r\n/);
    const payload = answer.subarray(text.indexOf('\r\n\r\n') + 4);
    assert.deepEqual([payload[0], payload.readUInt32BE(4), payload.subarray(8).toString()], [1, 11, 'split-body\n']);
    const gone = await raw([
      `POST /exec/nope/start HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 2\r\n\r\n{}`,
    ]);
    assert.match(gone.toString(), /^HTTP\/1.1 404 .*\r\nContent-Type: application\/json\r\n[\s\S]*"No such exec instance: nope"/);
    await c.remove({ force: true });
    assert.equal((await request('GET', '/_ping')).status, 200);
  });

  test('docker pull from a loopback registry, run it; docker login; a client that leaves mid-pull', async () => {
    const ref = `${plain.host}/tools/box:v1`;
    const pull = await docker(['pull', ref]);
    assert.equal(pull.code, 0, pull.stderr);
    assert.match(pull.stdout.toString(), /Status: Downloaded newer image for/);
    assert.match(pull.stdout.toString(), new RegExp(`${ref.replace(/[.]/g, '\\.')}\\n$`));
    const again = await docker(['pull', ref]);
    assert.match(again.stdout.toString(), /Image is up to date/);
    const unknownTag = await docker(['pull', `${plain.host}/tools/box:nope`]);
    assert.equal(unknownTag.code, 1);
    assert.match(unknownTag.stderr, /manifest for .*box:nope not found/);
    // run of an image that is not there yet: the CLI pulls it (create → 404 → pull → create)
    const untag = await docker(['rmi', ref]);
    assert.equal(untag.code, 0, untag.stderr);
    assert.match(untag.stdout.toString(), new RegExp(`^Untagged: ${ref.replace(/[.]/g, '\\.')}\n`));
    const run = await docker(['run', '--rm', ref, 'echo', 'pulled-and-ran']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.toString(), 'pulled-and-ran\n');
    assert.match(run.stderr, /Unable to find image/);
    // login against Basic auth; the pull then carries X-Registry-Auth
    const denied = await docker(['pull', `${basic.host}/private/box:v1`]);
    assert.equal(denied.code, 1);
    const wrong = await docker(['login', '-u', 'alice', '--password-stdin', basic.host], 'nope\n');
    assert.equal(wrong.code, 1);
    const login = await docker(['login', '-u', 'alice', '--password-stdin', basic.host], 'wonder\n');
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stdout.toString(), /Login Succeeded/);
    const priv = await docker(['pull', `${basic.host}/private/box:v1`]);
    assert.equal(priv.code, 0, priv.stderr);
    // mid-pull disconnect: the daemon stays healthy and the image still arrives
    const rmi = await docker(['rmi', ref]);
    assert.equal(rmi.code, 0, rmi.stderr);
    const tagged = async (): Promise<boolean> => {
      const images = await request('GET', '/images/json');
      assert.equal(images.status, 200);
      return (JSON.parse(images.body) as Array<{ RepoTags: string[] | null }>).some((i) => (i.RepoTags ?? []).includes(ref));
    };
    assert.equal(await tagged(), false, 'the image is gone before the pull');
    await new Promise<void>((resolve) => {
      const req = http.request(
        { socketPath: sock(), method: 'POST', path: `/images/create?fromImage=${plain.host}/tools/box&tag=v1` },
        (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        },
      );
      req.on('error', () => resolve());
      req.end();
    });
    assert.equal((await request('GET', '/_ping')).status, 200);
    await waitFor(tagged, 60_000, `${ref} to arrive after its client left`);
    assert.equal((await docker(['image', 'inspect', '--format', '{{.Os}}', ref])).stdout.toString(), 'linux\n');
  });
});
