/**
 * Debian's docker-compose 1.29 (it drives the daemon through docker-py, at the server's API version) against
 * Boson's Docker socket, on test/compose/docker-compose.yml: "web" (busybox httpd, a published port, an env_file)
 * and "client" (depends_on web, fetches it by service name on the project's network, keeps the page on a named
 * volume).
 *
 * On the project network compose creates each container, inspects it, disconnects it when the short id is not among
 * its aliases (so from API 1.45), connects it with [short id, service name] as aliases, and only then starts it:
 * for Boson, connect and disconnect of a container that is not running are configuration (the network and aliases
 * its micro-VM boots with). The same app with `network_mode: bridge` covers the default network.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../src/common/index.ts';
import { collect, qemuPidsUsing, useDaemonHost, waitFor, type BosonResult } from './helpers.ts';

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

/** The ids of a project's containers (all states). */
async function projectIds(project: string, service?: string): Promise<string[]> {
  const filters = [
    '--filter',
    `label=com.docker.compose.project=${project}`,
    ...(service ? ['--filter', `label=com.docker.compose.service=${service}`] : []),
  ];
  return out(await docker(['ps', '-aq', '--no-trunc', ...filters]))
    .trim()
    .split('\n')
    .filter(Boolean);
}

/** What a named volume holds in `file` (read by a throw-away container). */
async function volumeFile(volume: string, file: string): Promise<string> {
  const r = await docker(['run', '--rm', '-v', `${volume}:/v:ro`, 'busybox', 'cat', `/v/${file}`]);
  assert.equal(r.code, 0, r.stderr.toString());
  return out(r);
}

describe('docker-compose 1.29: web and client on the project network', () => {
  const project = 'bosonapp';
  const ids = new Set<string>();
  after(() => removeProject(project));

  test('up -d creates the network, the volume and both services; client fetched web by service name after it started', async () => {
    const up = await compose(project, ['up', '-d']);
    assert.equal(up.code, 0, up.stderr.toString());
    assert.match(up.stderr.toString(), new RegExp(`Creating network "${project}_default" with the default driver`));
    for (const id of await projectIds(project)) ids.add(id);
    const wait = await docker(['wait', `${project}_client_1`]);
    assert.equal(out(wait).trim(), '0', `client's exit status; its logs: ${out(await docker(['logs', `${project}_client_1`]))}`);
    const ps = out(
      await docker([
        'ps',
        '-a',
        '--filter',
        `label=com.docker.compose.project=${project}`,
        '--format',
        '{{.Names}} {{.State}} {{.Networks}}',
      ]),
    );
    assert.deepEqual(ps.trim().split('\n').sort(), [
      `${project}_client_1 exited ${project}_default`,
      `${project}_web_1 running ${project}_default`,
    ]);
    const logs = await compose(project, ['logs', '--no-color', 'client']);
    assert.match(out(logs), /client_1 +\| hello from web via compose\n/);
    assert.equal(await volumeFile(`${project}_data`, 'fetched'), 'hello from web via compose\n', 'the page on the named volume');
  });

  test('web: aliases on the project network, its published port from the host, exec with the env_file', async () => {
    const [web] = JSON.parse(out(await docker(['inspect', `${project}_web_1`]))) as Array<{
      Id: string;
      NetworkSettings: { Networks: Record<string, { Aliases: string[]; DNSNames: string[]; IPAddress: string }> };
    }>;
    const ep = web!.NetworkSettings.Networks[`${project}_default`];
    assert.ok(ep, `Networks: ${Object.keys(web!.NetworkSettings.Networks).join(', ')}`);
    assert.deepEqual([...ep.Aliases].sort(), [web!.Id.slice(0, 12), 'web'].sort());
    assert.ok(ep.DNSNames.includes('web') && ep.DNSNames.includes(`${project}_web_1`), `DNSNames ${ep.DNSNames.join(' ')}`);
    const net = JSON.parse(out(await docker(['network', 'inspect', `${project}_default`]))) as Array<{
      Containers: Record<string, { Name: string; IPv4Address: string }>;
    }>;
    assert.equal(net[0]!.Containers[web!.Id]?.IPv4Address.split('/')[0], ep.IPAddress);
    const port = await compose(project, ['port', 'web', '8080']);
    assert.match(out(port), /^127\.0\.0\.1:\d+\n$/, port.stderr.toString());
    assert.equal(await fetchPage(out(port).trim()), 'hello from web via compose\n');
    const greeting = await compose(project, ['exec', '-T', 'web', 'sh', '-c', 'echo "$GREETING"']);
    assert.equal(out(greeting), 'hello from web via compose\n', greeting.stderr.toString());
  });

  test('ps lists each service once', async () => {
    const ps = await compose(project, ['ps', '--services', '--filter', 'status=running']);
    assert.equal(out(ps), 'web\n', ps.stderr.toString());
    const all = out(await compose(project, ['ps', '-q']))
      .trim()
      .split('\n');
    assert.equal(all.length, 2, `compose ps -q: ${all.join(' ')}`);
  });

  test('restart: web boots again on its network and answers on its published port', async () => {
    const restart = await compose(project, ['restart', '-t', '1', 'web']);
    assert.equal(restart.code, 0, restart.stderr.toString());
    const port = await compose(project, ['port', 'web', '8080']);
    assert.match(out(port), /^127\.0\.0\.1:\d+\n$/, port.stderr.toString());
    let page = '';
    await waitFor(async () => (page = await fetchPage(out(port).trim()).catch(() => '')) !== '', 30_000, 'web to answer after its restart');
    assert.equal(page, 'hello from web via compose\n');
  });

  test('up -d --scale web=2: two webs on their own host ports, the client reaches web by name again', async () => {
    const up = await compose(project, ['up', '-d', '--scale', 'web=2']);
    assert.equal(up.code, 0, up.stderr.toString());
    for (const id of await projectIds(project)) ids.add(id);
    const webs = await projectIds(project, 'web');
    assert.equal(webs.length, 2, `web containers: ${webs.join(' ')}`);
    const ports = new Set<string>();
    for (const i of [1, 2]) {
      const port = await compose(project, ['port', '--index', String(i), 'web', '8080']);
      assert.match(out(port), /^127\.0\.0\.1:\d+\n$/, port.stderr.toString());
      assert.equal(await fetchPage(out(port).trim()), 'hello from web via compose\n');
      ports.add(out(port).trim());
    }
    assert.equal(ports.size, 2, 'each web has its own host port');
    const wait = await docker(['wait', `${project}_client_1`]);
    assert.equal(out(wait).trim(), '0', 'the client ran again and fetched web by name');
    assert.equal(await volumeFile(`${project}_data`, 'fetched'), 'hello from web via compose\n'.repeat(2));
  });

  test('down -v removes the containers, the network and the volume; no micro-VM is left', async () => {
    const down = await compose(project, ['down', '-v', '-t', '1']);
    assert.equal(down.code, 0, down.stderr.toString());
    assert.equal(out(await docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`])), '');
    assert.doesNotMatch(out(await docker(['network', 'ls', '--format', '{{.Name}}'])), new RegExp(`^${project}_default$`, 'm'));
    assert.doesNotMatch(out(await docker(['volume', 'ls', '--format', '{{.Name}}'])), new RegExp(`^${project}_data$`, 'm'));
    assert.ok(ids.size >= 2, `containers seen: ${ids.size}`);
    for (const id of ids) assert.deepEqual(await qemuPidsUsing(id), [], `QEMU of container ${id.slice(0, 12)}`);
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
    // No service-name DNS on the default bridge: client only says it ran (after web, by depends_on), on its volume too.
    await writeFile(
      override,
      'version: "3.8"\nservices:\n  web:\n    network_mode: bridge\n  client:\n    network_mode: bridge\n    command: ["sh", "-c", "echo client ran | tee /data/ran"]\n',
    );
    const up = await compose(project, ['up', '-d'], [override]);
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stderr, new RegExp(`Creating volume "${project}_data" with default driver`));
    const port = await compose(project, ['port', 'web', '8080'], [override]);
    assert.match(out(port), /^127\.0\.0\.1:\d+\n$/, port.stderr);
    assert.equal(await fetchPage(out(port).trim()), 'hello from web via compose\n');
    const greeting = await compose(project, ['exec', '-T', 'web', 'sh', '-c', 'echo "$GREETING"'], [override]);
    assert.equal(out(greeting), 'hello from web via compose\n', greeting.stderr);
    assert.equal(out(await docker(['wait', `${project}_client_1`])).trim(), '0');
    const logs = await compose(project, ['logs', '--no-color', 'client'], [override]);
    assert.match(out(logs), /\| client ran\n/);
    assert.equal(await volumeFile(`${project}_data`, 'ran'), 'client ran\n');
  });

  test('each service has one container, numbered 1', async () => {
    const names = out(await docker(['ps', '-a', '--filter', `label=com.docker.compose.project=${project}`, '--format', '{{.Names}}']))
      .trim()
      .split('\n')
      .sort();
    assert.deepEqual(names, [`${project}_client_1`, `${project}_web_1`]);
    const ps = out(await compose(project, ['ps', '-q'], [override]))
      .trim()
      .split('\n');
    assert.equal(ps.length, 2, `compose ps -q: ${ps.join(' ')}`);
  });

  test('down -v removes the containers and the volume', async () => {
    const down = await compose(project, ['down', '-v', '-t', '1'], [override]);
    assert.equal(down.code, 0, down.stderr);
    assert.equal(out(await docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`])), '');
    assert.doesNotMatch(out(await docker(['volume', 'ls', '--format', '{{.Name}}'])), new RegExp(`^${project}_data$`, 'm'));
  });
});
