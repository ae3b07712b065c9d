/**
 * Real applications, not only busybox: redis-server and nginx from Debian's packages (images built by
 * scripts/build-app-images.sh), pushed to a loopback registry, run by the stock docker CLI through `boson up` with
 * a published port, and asked real questions from the host with their own clients (redis-cli SET/GET/INFO, HTTP).
 * Each runs under the guest kernel (docker exec uname -r), and nothing is left behind (no container, no QEMU).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { qemuPidsUsing, useDaemonHost, withFreePort, type BosonResult } from './helpers.ts';
import { APPS, NGINX_PAGE, dockerIn, firstAnswer, httpGet, redisCli, startAppRegistry, type App } from './apps-fixture.ts';
import { DEBIAN_DOCKER_PATH } from './docker-clis.ts';
import type { TestRegistry } from './registry-fixture.ts';

const out = (r: BosonResult): string => r.stdout.toString();
const ok = (r: BosonResult, what: string): void => assert.equal(r.code, 0, `${what}: ${r.stderr}`);
const app = (name: string): App => APPS.find((a) => a.name === name)!;

describe('real applications through the docker CLI', () => {
  const { host } = useDaemonHost();
  let registry: TestRegistry;
  let config: string;
  const env = (): NodeJS.ProcessEnv => ({
    ...process.env,
    DOCKER_HOST: `unix://${host().env.BOSON_RUN_DIR}/docker.sock`,
    DOCKER_CONFIG: config,
  });
  const docker = (...args: string[]): Promise<BosonResult> => dockerIn(DEBIAN_DOCKER_PATH, env(), args);
  const ref = (a: App): string => `${registry.host}/apps/${a.name}:latest`;

  before(async () => {
    config = await mkdtemp(path.join(os.tmpdir(), 'boson-apps-docker-'));
    registry = await startAppRegistry();
  });
  after(async () => {
    await registry?.stop();
    await rm(config, { recursive: true, force: true });
  });

  /**
   * docker run -d NAME on a published 127.0.0.1 port (another one when a process took it meanwhile), then polls
   * the app's own client until it answers: the time from `docker run` to that answer is logged.
   */
  async function runApp(a: App, ...extra: string[]): Promise<{ port: number; ms: number; answer: string }> {
    const { port, result } = await withFreePort(
      async (p) => {
        await docker('rm', '-f', a.name);
        const t0 = performance.now();
        return { t0, r: await docker('run', '-d', '--name', a.name, '-p', `127.0.0.1:${p}:${a.port}`, ...extra, ref(a)) };
      },
      ({ r }) => /port is already allocated|address already in use/.test(r.stderr),
    );
    ok(result.r, `docker run ${a.name}`);
    const { answer, at } = await firstAnswer(() => a.probe(port), 120_000);
    const ms = Math.round(at - result.t0);
    process.stderr.write(`# ${a.name}: first answer ${ms} ms after docker run\n`);
    return { port, ms, answer };
  }

  // Config.ExposedPorts is not in Boson's docker image inspect yet (src/docker/images.ts leaves it out), so it is
  // not checked here.
  test('the images are pulled through the registry with their config (Cmd, User)', async () => {
    for (const a of APPS) ok(await docker('pull', '-q', ref(a)), `pull ${a.name}`);
    const redis = await docker('image', 'inspect', ref(app('redis')), '--format', '{{json .Config.Cmd}} {{.Config.User}}');
    assert.equal(out(redis).trim(), '["redis-server","/etc/redis/redis.conf"] redis');
    const nginx = await docker('image', 'inspect', ref(app('nginx')), '--format', '{{json .Config.Cmd}}');
    assert.equal(out(nginx).trim(), '["nginx","-g","daemon off;"]');
  });

  test('redis-server: redis-cli from the host sets and gets keys; it runs as redis under the guest kernel', async (t) => {
    t.after(() => docker('rm', '-f', 'redis'));
    const { port, answer } = await runApp(app('redis'));
    assert.equal(answer, 'PONG');
    assert.equal((await redisCli(port, 'SET', 'greeting', 'hello from the host')).trim(), 'OK');
    assert.equal((await redisCli(port, 'GET', 'greeting')).trim(), 'hello from the host');
    assert.equal((await redisCli(port, 'INCRBY', 'counter', '41')).trim(), '41');
    assert.equal((await redisCli(port, 'INCR', 'counter')).trim(), '42');
    // The server itself says which kernel it runs on.
    const info = await redisCli(port, 'INFO', 'server');
    assert.match(info, /^os:Linux \S*boson\S* x86_64\r?$/m, info);
    const uname = await docker('exec', 'redis', 'uname', '-r');
    ok(uname, 'exec uname');
    assert.match(out(uname), /boson/);
    assert.notEqual(out(uname).trim(), os.release(), 'not the host kernel');
    const who = await docker('exec', 'redis', 'sh', '-c', 'id -un; redis-cli -h 127.0.0.1 GET greeting');
    assert.equal(out(who), 'redis\nhello from the host\n', who.stderr);
    const logs = await docker('logs', 'redis');
    assert.match(out(logs) + logs.stderr, /Ready to accept connections/);
    ok(await docker('rm', '-f', 'redis'), 'rm');
    await assert.rejects(redisCli(port, 'PING'), 'the port is released with the container');
  });

  test('nginx: the page from the image over HTTP from the host, a 404, the access log in docker logs', async (t) => {
    t.after(() => docker('rm', '-f', 'nginx'));
    const { port, answer } = await runApp(app('nginx'));
    assert.match(answer, new RegExp(NGINX_PAGE));
    const missing = await httpGet(port, '/no-such-page');
    assert.equal(missing.status, 404);
    assert.match(missing.body, /nginx/);
    const uname = await docker('exec', 'nginx', 'uname', '-r');
    ok(uname, 'exec uname');
    assert.match(out(uname), /boson/);
    const logs = await docker('logs', 'nginx');
    assert.match(out(logs), /"GET \/no-such-page HTTP\/1\.1" 404/);
    // docker stop sends the image's StopSignal (SIGQUIT: nginx's graceful stop); it exits by itself.
    ok(await docker('stop', '-t', '20', 'nginx'), 'stop');
    const state = await docker('inspect', '--format', '{{.State.Status}}', 'nginx');
    assert.equal(out(state).trim(), 'exited');
    ok(await docker('rm', 'nginx'), 'rm');
  });

  test('-P publishes what the image exposes (nginx: 80/tcp) on a free host port, which answers', async (t) => {
    t.after(() => docker('rm', '-f', 'nginx-p'));
    ok(await docker('run', '-d', '--name', 'nginx-p', '-P', ref(app('nginx'))), 'run -P');
    const mapping =
      out(await docker('port', 'nginx-p', '80/tcp'))
        .trim()
        .split('\n')[0] ?? '';
    const port = Number(/:(\d+)$/.exec(mapping)?.[1]);
    assert.ok(port > 0, `docker port names the published port: ${JSON.stringify(mapping)}`);
    let answer: { status: number; body: string } | undefined;
    const end = Date.now() + 60_000;
    while (Date.now() < end) {
      answer = await httpGet(port, '/').catch(() => undefined);
      if (answer?.status === 200) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(answer?.status, 200);
    assert.match(answer!.body, new RegExp(NGINX_PAGE));
  });

  test('nothing is left: no container, no QEMU', async () => {
    assert.equal(out(await docker('ps', '-aq')), '');
    assert.deepEqual(await qemuPidsUsing(host().stateDir), []);
  });
});
