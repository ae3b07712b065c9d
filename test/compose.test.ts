/**
 * Debian's docker-compose 1.29 (it drives the daemon through docker-py, at the server's API version) against
 * Boson's Docker socket, on test/compose/docker-compose.yml: "web" (busybox httpd, a published port, an env_file,
 * a named volume) and "client" (depends_on web, fetches it by service name on the project's network).
 *
 * The project's own network does not work yet: `up` creates each container on the project network, inspects it and
 * then connects it to that network with its aliases (compose's connect_container_to_networks), and Boson refuses
 * the connect. Those tests are to-dos that say so; they turn on when connect lands. The same app with
 * `network_mode: bridge` (no project network, no service-name DNS) runs today and covers the rest: the volume,
 * env_file, depends_on, the published port, logs, exec and down.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../src/common/index.ts';
import { collect, useDaemonHost, type BosonResult } from './helpers.ts';

const DIR = path.join(PACKAGE_ROOT, 'test', 'compose');
const { host } = useDaemonHost();
const dockerHost = (): string => `unix://${host().env.BOSON_RUN_DIR}/docker.sock`;

/** Runs `docker-compose args` in test/compose for `project`. */
function compose(project: string, args: string[], files: string[] = []): Promise<BosonResult> {
  const fileArgs = files.length > 0 ? ['-f', 'docker-compose.yml', ...files.flatMap((f) => ['-f', f])] : [];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DOCKER_HOST: dockerHost(),
    COMPOSE_PROJECT_NAME: project,
    COMPOSE_INTERACTIVE_NO_CLI: '1',
  };
  delete env.DOCKER_CONTEXT;
  delete env.COMPOSE_FILE;
  return collect(spawn('docker-compose', [...fileArgs, ...args], { cwd: DIR, env, stdio: ['pipe', 'pipe', 'pipe'] }), undefined, 300_000, [
    'docker-compose',
    ...args,
  ]);
}

/** The stock CLI on the same socket (clean-up and checks of what compose left). */
function docker(args: string[]): Promise<BosonResult> {
  return collect(
    spawn('docker', args, { env: { ...process.env, DOCKER_HOST: dockerHost() }, stdio: ['pipe', 'pipe', 'pipe'] }),
    undefined,
    120_000,
    ['docker', ...args],
  );
}

const out = (r: BosonResult): string => r.stdout.toString('utf8');

/** Removes whatever a project left (containers, its network and volume), however far its tests got. */
async function removeProject(project: string, files: string[] = []): Promise<void> {
  await compose(project, ['down', '-v', '--remove-orphans', '-t', '1'], files);
  const ids = out(await docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`]))
    .trim()
    .split('\n')
    .filter(Boolean);
  if (ids.length > 0) await docker(['rm', '-f', '-v', ...ids]);
  await docker(['network', 'rm', `${project}_default`]);
  await docker(['volume', 'rm', `${project}_data`]);
}

/** Fetches http://127.0.0.1:port/ from the host. */
async function fetchPage(port: string): Promise<string> {
  const res = await fetch(`http://${port}/`, { signal: AbortSignal.timeout(20_000) });
  return res.text();
}

/** The reason the project-network tests are to-dos (the first request of `up` that Boson fails). */
const CONNECT_TODO =
  'docker-compose up (docker-py at the server\'s API version, 1.47): after POST /v1.47/networks/create {"Name": "bosonapp_default", "CheckDuplicate": true, "Attachable": true, …}, ' +
  'POST /v1.47/containers/create?name=bosonapp_web_1 (NetworkingConfig.EndpointsConfig {"bosonapp_default": {"Aliases": ["web"]}}) and GET /v1.47/containers/{id}/json, ' +
  'compose connects the created (not started) container to its network: POST /v1.47/networks/bosonapp_default/connect {"Container": id, "EndpointConfig": {"Aliases": [short id, "web"]}}. ' +
  'Boson answers 501 "connecting a container to another network is not supported by Boson (a running micro-VM would need a network card hot-plugged)"; Docker answers 200. ' +
  '(Compose disconnects first when inspect lists the network by name without the short id among its Aliases, as Docker does from API 1.45: Boson must accept disconnect of a created container too.)';

describe('docker-compose 1.29: web and client on the project network', () => {
  const project = 'bosonapp';
  after(() => removeProject(project));

  test('up -d creates the network, the volume and both services', { todo: CONNECT_TODO }, async () => {
    const up = await compose(project, ['up', '-d']);
    assert.equal(up.code, 0, up.stderr);
    const ps = out(
      await docker(['ps', '-a', '--filter', `label=com.docker.compose.project=${project}`, '--format', '{{.Names}} {{.State}}']),
    );
    assert.deepEqual(ps.trim().split('\n').sort(), [`${project}_client_1 exited`, `${project}_web_1 running`].sort());
  });

  test(
    'client fetched web by service name, after web started (depends_on), with the env_file greeting',
    { todo: CONNECT_TODO },
    async () => {
      const wait = await docker(['wait', `${project}_client_1`]);
      assert.equal(out(wait).trim(), '0', wait.stderr);
      const logs = await compose(project, ['logs', '--no-color', 'client']);
      assert.match(out(logs), /client_1 +\| hello from web via compose\n/);
    },
  );

  test('web answers on its published port from the host; its named volume holds the hit', { todo: CONNECT_TODO }, async () => {
    const port = await compose(project, ['port', 'web', '8080']);
    assert.match(out(port), /^127\.0\.0\.1:\d+\n$/, port.stderr);
    assert.equal(await fetchPage(out(port).trim()), 'hello from web via compose\n');
    const hits = await compose(project, ['exec', '-T', 'web', 'cat', '/data/hits']);
    assert.equal(out(hits), 'hit\n', hits.stderr);
  });

  test('ps lists each service once', { todo: CONNECT_TODO }, async () => {
    const ps = await compose(project, ['ps', '--services', '--filter', 'status=running']);
    assert.equal(out(ps), 'web\n', ps.stderr);
  });

  test('down -v removes the containers, the network and the volume', async () => {
    const down = await compose(project, ['down', '-v', '-t', '1']);
    assert.equal(down.code, 0, down.stderr);
    assert.equal(out(await docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`])), '');
    assert.doesNotMatch(out(await docker(['network', 'ls', '--format', '{{.Name}}'])), new RegExp(`^${project}_default$`, 'm'));
    assert.doesNotMatch(out(await docker(['volume', 'ls', '--format', '{{.Name}}'])), new RegExp(`^${project}_data$`, 'm'));
  });
});

describe('docker-compose 1.29: the same app on the default bridge (network_mode: bridge)', () => {
  const project = 'bosonbr';
  let work: string;
  let override: string;
  after(async () => {
    if (override) await removeProject(project, [override]);
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('up -d: the volume, env_file, depends_on and the published port', async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'boson-compose-'));
    override = path.join(work, 'bridge.yml');
    // No service-name DNS on the default bridge: client only says it ran (after web, by depends_on).
    await writeFile(
      override,
      'version: "3.8"\nservices:\n  web:\n    network_mode: bridge\n  client:\n    network_mode: bridge\n    command: ["sh", "-c", "echo client ran"]\n',
    );
    const up = await compose(project, ['up', '-d'], [override]);
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stderr, new RegExp(`Creating volume "${project}_data" with default driver`));
    const port = await compose(project, ['port', 'web', '8080'], [override]);
    assert.match(out(port), /^127\.0\.0\.1:\d+\n$/, port.stderr);
    assert.equal(await fetchPage(out(port).trim()), 'hello from web via compose\n');
    const hits = await compose(project, ['exec', '-T', 'web', 'sh', '-c', 'cat /data/hits; echo "$GREETING"'], [override]);
    assert.equal(out(hits), 'hit\nhello from web via compose\n', hits.stderr);
    const logs = await compose(project, ['logs', '--no-color', 'client'], [override]);
    assert.match(out(logs), /\| client ran\n/);
  });

  test(
    'each service has one container, numbered 1',
    {
      todo: 'compose lists a service\'s containers with GET /v1.47/containers/json?all=1&filters={"label":["com.docker.compose.project=bosonbr","com.docker.compose.service=client","com.docker.compose.oneoff=False"]}: Boson answers the containers with ANY of the labels (web_1 too), so client becomes bosonbr_client_2 and `ps` lists web_1 twice; Docker answers only the containers with ALL the labels',
    },
    async () => {
      const names = out(await docker(['ps', '-a', '--filter', `label=com.docker.compose.project=${project}`, '--format', '{{.Names}}']))
        .trim()
        .split('\n')
        .sort();
      assert.deepEqual(names, [`${project}_client_1`, `${project}_web_1`]);
      const ps = out(await compose(project, ['ps', '-q'], [override]))
        .trim()
        .split('\n');
      assert.equal(ps.length, 2, `compose ps -q: ${ps.join(' ')}`);
    },
  );

  test('down -v removes the containers and the volume', async () => {
    const down = await compose(project, ['down', '-v', '-t', '1'], [override]);
    assert.equal(down.code, 0, down.stderr);
    assert.equal(out(await docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`])), '');
    assert.doesNotMatch(out(await docker(['volume', 'ls', '--format', '{{.Name}}'])), new RegExp(`^${project}_data$`, 'm'));
  });
});
