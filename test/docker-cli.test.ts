/**
 * The stock docker CLI against `boson up`'s Docker Engine API, once with Debian's (20.10, API 1.41, which setup
 * installs) and once with a newer one where installed (e.g. 28.x in /usr/local/bin; see docker-clis.ts), each
 * against a daemon of its own: run (exit codes 0/1/125/126/127/137, -it through a pty, -i, flags), create/start -a, exec, logs -f, top, stats, cp both ways, inspect, rename, restart,
 * stop, kill, wait, rm, volumes reused across containers, images, tag/rmi, events, system df, signals reaching
 * the container, and Boson's clear refusals (pause, commit, build, swarm, -p, networks, API versions).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  assertGuestRelease,
  assertQemuOwns,
  collect,
  qemuPidsUsing,
  useDaemonHost,
  waitFor,
  withFreePort,
  type BosonResult,
} from './helpers.ts';
import { debianDocker, newerDocker, type DockerCli } from './docker-clis.ts';

const out = (r: BosonResult): string => r.stdout.toString();
const ok = (r: BosonResult, what: string): void => assert.equal(r.code, 0, `${what}: ${r.stderr}`);

/** The whole suite with one docker CLI binary, against a daemon of its own. */
function dockerCliSuite(cli: DockerCli): void {
  const { host } = useDaemonHost();
  let work: string;
  const env = (): NodeJS.ProcessEnv => ({
    ...process.env,
    DOCKER_HOST: `unix://${host().env.BOSON_RUN_DIR}/docker.sock`,
    DOCKER_CONFIG: path.join(work, 'docker-config'),
    DOCKER_CLI_HINTS: 'false',
  });
  const startDocker = (args: string[], extra: NodeJS.ProcessEnv = {}): ChildProcess =>
    spawn(cli.path, args, { env: { ...env(), ...extra }, stdio: ['pipe', 'pipe', 'pipe'] });
  const docker = (args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<BosonResult> =>
    collect(startDocker(args, opts.env), opts.input, 90_000, [cli.path, ...args]);

  before(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'boson-docker-cli-'));
    await mkdir(path.join(work, 'docker-config'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  test('version, info, image inspect, system df: no micro-VM needed', async () => {
    const v = await docker(['version', '--format', '{{.Server.APIVersion}} {{.Server.Os}}']);
    ok(v, 'version');
    assert.equal(out(v).trim(), '1.47 linux');
    const info = await docker(['info', '--format', '{{.OSType}} {{.Swarm.LocalNodeState}} {{.Images}}']);
    assert.equal(out(info).trim(), 'linux inactive 1');
    const inspect = await docker(['image', 'inspect', 'busybox', '--format', '{{json .Config.Cmd}} {{.Os}}']);
    assert.equal(out(inspect).trim(), '["sh"] linux');
    const missing = await docker(['image', 'inspect', 'nosuch:tag']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /No such image: nosuch:tag/);
    const df = await docker(['system', 'df']);
    ok(df, 'system df');
    assert.match(out(df), /^Images\s+1\s+/m);
    assert.equal(
      out(await docker(['images', '--filter', 'reference=localhost/busybox', '--format', '{{.Repository}}'])),
      'localhost/busybox\n',
    );
    assert.equal(out(await docker(['images', '-q', '--filter', 'reference=nosuch'])), '');
    assert.equal(out(await docker(['images', '-q', '--filter', 'dangling=true'])), '');
    const history = await docker(['image', 'history', '--format', '{{.CreatedBy}}|{{.Size}}', 'busybox']);
    ok(history, 'image history');
    assert.ok(out(history).trim().split('\n').length >= 1, out(history));
    for (const what of ['container', 'image', 'network', 'volume']) ok(await docker([what, 'prune', '-f']), `${what} prune`);
  });

  // The 20.10 CLI sends `repo=mine/box` (newer ones docker.io/mine/box), which Boson's store reads as localhost/mine/box
  // until the Docker API normalises it as Docker does (src/docker/repo-name.ts, to be called in server.ts's tag route).
  test('tag with a short name: images lists it as Docker does; image inspect; rmi untags it', async () => {
    ok(await docker(['tag', 'busybox', 'mine/box:v1']), 'tag');
    const images = await docker(['images', '--format', '{{.Repository}}:{{.Tag}}']);
    assert.deepEqual(out(images).trim().split('\n').sort(), ['localhost/busybox:latest', 'mine/box:v1']);
    const inspect = await docker(['image', 'inspect', 'mine/box:v1', '--format', '{{json .Config.Cmd}} {{.Os}}']);
    assert.equal(out(inspect).trim(), '["sh"] linux');
    const rmi = await docker(['rmi', 'mine/box:v1']);
    assert.equal(out(rmi), 'Untagged: mine/box:v1\n');
  });

  test('what Boson cannot do is refused clearly, with exit 1 (125 for run), never a crash', async () => {
    for (const [args, re] of [
      [['pause', 'x'], /pausing containers is not supported by Boson/],
      [['commit', 'x'], /docker commit is not supported by Boson/],
      [['swarm', 'init'], /swarm mode is not supported by Boson/],
      [['save', 'busybox'], /not supported by Boson/],
    ] as Array<[string[], RegExp]>) {
      const r = await docker(args);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.stderr, re, args.join(' '));
    }
    await mkdir(path.join(work, 'ctx'));
    await writeFile(path.join(work, 'ctx', 'Dockerfile'), 'FROM busybox\n');
    const legacyBuild = await docker(['build', '-q', path.join(work, 'ctx')], { env: { DOCKER_BUILDKIT: '0' } });
    assert.equal(legacyBuild.code, 1);
    assert.match(legacyBuild.stderr, /docker build is not supported by Boson/);
    const tooNew = await docker(['ps'], { env: { DOCKER_API_VERSION: '1.49' } });
    assert.match(tooNew.stderr, /client version 1.49 is too new. Maximum supported API version is 1.47/);
    const tooOld = await docker(['ps'], { env: { DOCKER_API_VERSION: '1.12' } });
    assert.match(tooOld.stderr, /client version 1.12 is too old. Minimum supported API version is 1.24/);
    const small = await docker(['run', '--rm', '--memory', '10m', 'busybox', 'true']);
    assert.equal(small.code, 125);
    assert.match(small.stderr, /Minimum memory limit/);
    const badName = await docker(['create', '--name', 'bad name!', 'busybox']);
    assert.equal(badName.code, 1);
    assert.match(badName.stderr, /Invalid container name/);
  });

  test('network connect/disconnect: a created container is set to join the network when it boots; a running one is refused', async () => {
    ok(await docker(['network', 'create', 'cli-conn-net']), 'network create');
    try {
      ok(await docker(['create', '--name', 'cli-conn', 'busybox', 'sleep', '600']), 'create');
      ok(await docker(['network', 'connect', '--alias', 'svc', 'cli-conn-net', 'cli-conn']), 'connect of a created container');
      const created = await docker(['inspect', 'cli-conn', '--format', '{{json .NetworkSettings.Networks}}']);
      const nets = JSON.parse(out(created)) as Record<string, { Aliases: string[] | null }>;
      assert.deepEqual(Object.keys(nets), ['cli-conn-net'], 'it left the default bridge for the network (one network card)');
      assert.ok(nets['cli-conn-net']!.Aliases?.includes('svc'), `Aliases ${JSON.stringify(nets['cli-conn-net']!.Aliases)}`);
      ok(await docker(['start', 'cli-conn']), 'start');
      const running = await docker([
        'inspect',
        'cli-conn',
        '--format',
        '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{$v.IPAddress}}/{{$v.IPPrefixLen}}{{end}}',
      ]);
      assert.match(out(running), /^cli-conn-net \d+\.\d+\.\d+\.\d+\/24\n$/);
      const ps = await docker(['ps', '--filter', 'network=cli-conn-net', '--format', '{{.Names}}']);
      assert.equal(out(ps), 'cli-conn\n');
      const hot = await docker(['network', 'connect', 'bridge', 'cli-conn']);
      assert.equal(hot.code, 1);
      assert.match(hot.stderr, /a running micro-VM cannot have one hot-plugged/);
      const off = await docker(['network', 'disconnect', 'cli-conn-net', 'cli-conn']);
      assert.equal(off.code, 1);
      assert.match(off.stderr, /cannot have it removed; stop the container/);
      const inUse = await docker(['network', 'rm', 'cli-conn-net']);
      assert.equal(inUse.code, 1);
      assert.match(inUse.stderr, /has active endpoints/);
      ok(await docker(['rm', '-f', 'cli-conn']), 'rm -f');
    } finally {
      await docker(['rm', '-f', 'cli-conn']);
      await docker(['network', 'rm', 'cli-conn-net']);
    }
  });

  test('docker run: output, exit status, 127 missing command, 126 not executable', async () => {
    const r = await docker(['run', '--rm', 'busybox', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.deepEqual([r.code, out(r), r.stderr], [3, 'out\n', 'err\n']);
    const missing = await docker(['run', '--rm', 'busybox', 'no-such-command']);
    assert.equal(missing.code, 127, missing.stderr);
    assert.match(missing.stderr, /executable file not found/);
    const notExec = await docker(['run', '--name', 'notexec', 'busybox', '/etc/passwd']);
    assert.equal(notExec.code, 126, notExec.stderr);
    assert.match(notExec.stderr, /permission denied/);
    ok(await docker(['rm', 'notexec']), 'rm');
    const left = await docker(['ps', '-aq']);
    assert.equal(out(left), '', '--rm removed the failed container too');
  });

  test('docker run and docker exec run under the guest kernel, in the QEMU that owns the container (State.Pid)', async () => {
    const child = startDocker(['run', '--rm', '--name', 'dkern', 'busybox', 'sh', '-c', 'uname -r; sleep 600']);
    let seen = '';
    child.stdout!.on('data', (d: Buffer) => (seen += d.toString()));
    const result = collect(child, undefined, 90_000, ['docker run dkern']);
    await waitFor(() => seen.endsWith('\n'), 30_000, 'the release from docker run');
    const release = seen.trim();
    assertGuestRelease(release);
    const [id, pid] = out(await docker(['inspect', '--format', '{{.Id}} {{.State.Pid}}', 'dkern']))
      .trim()
      .split(' ');
    await assertQemuOwns(host().stateDir, Number(pid), id!);
    const exec = await docker(['exec', 'dkern', 'uname', '-r']);
    ok(exec, 'exec');
    assert.equal(out(exec).trim(), release, 'exec runs in the same guest kernel');
    assert.deepEqual(await qemuPidsUsing(host().stateDir), [Number(pid)], 'exec started no QEMU of its own');
    ok(await docker(['kill', 'dkern']), 'kill');
    assert.equal((await result).code, 137);
  });

  test('docker run -it gives an interactive shell through a pty; its exit status comes back', async () => {
    const child = spawn('script', ['-qec', `${cli.path} run --rm -it busybox sh`, '/dev/null'], {
      env: { ...env(), TERM: 'dumb' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let seen = '';
    child.stdout!.on('data', (d: Buffer) => (seen += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    await waitFor(() => seen.includes('# '), 30_000, 'the shell prompt');
    child.stdin!.write('tty; echo $((6*7))\n');
    await waitFor(() => /\n42\r?\n/.test(seen), 10_000, `the answer in ${JSON.stringify(seen)}`);
    child.stdin!.write('exit 3\n');
    const code = await exited;
    clearTimeout(timer);
    assert.match(seen, /\/dev\/pts\/\d+/);
    assert.equal(code, 3);
  });

  test('create with flags, start -a -i with stdin, inspect shows them; --restart, --label, --memory, --cpus', async () => {
    await writeFile(path.join(work, 'env'), 'B=from-file\n# comment\n');
    const c = await docker([
      'create',
      '-i',
      '--name',
      'flags',
      '-e',
      'A=1',
      '--env-file',
      path.join(work, 'env'),
      '-w',
      '/tmp',
      '-u',
      'nobody',
      '--hostname',
      'hh',
      '--label',
      'team=blue',
      '--memory',
      '128m',
      '--cpus',
      '1',
      '--restart',
      'on-failure:2',
      '--entrypoint',
      'sh',
      'busybox',
      '-c',
      'cat; echo "$A $B $(pwd) $(id -u) $(hostname)"',
    ]);
    ok(c, 'create');
    const inspect = JSON.parse(out(await docker(['inspect', 'flags'])))[0];
    assert.equal(inspect.Name, '/flags');
    assert.equal(inspect.State.Status, 'created');
    assert.equal(inspect.Config.Labels.team, 'blue');
    assert.equal(inspect.HostConfig.Memory, 128 * 1024 * 1024);
    assert.deepEqual(inspect.HostConfig.RestartPolicy, { Name: 'on-failure', MaximumRetryCount: 2 });
    assert.deepEqual([inspect.Path, inspect.Args], ['sh', ['-c', 'cat; echo "$A $B $(pwd) $(id -u) $(hostname)"']]);
    const ps = await docker([
      'ps',
      '-a',
      '--filter',
      'label=team=blue',
      '--filter',
      'status=created',
      '--format',
      '{{.Names}} {{.Status}}',
    ]);
    assert.equal(out(ps), 'flags Created\n');
    const r = await docker(['start', '-a', '-i', 'flags'], { input: 'piped in\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(out(r), 'piped in\n1 from-file /tmp 65534 hh\n');
    const after = await docker(['inspect', '--format', '{{.State.Status}} {{.State.ExitCode}} {{.State.Running}}', 'flags']);
    assert.equal(out(after).trim(), 'exited 0 false');
    ok(await docker(['rm', 'flags']), 'rm');
  });

  test('a running container: exec, logs -f, top, stats, cp both ways, ps filters, rename, restart, stop, kill, wait (137)', async () => {
    const run = await docker([
      'run',
      '-d',
      '--name',
      'box',
      '-v',
      'shared:/data',
      'busybox',
      'sh',
      '-c',
      'i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.2; done',
    ]);
    ok(run, 'run -d');
    const id = out(run).trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    // logs -f while the container writes
    const follow = startDocker(['logs', '-f', 'box']);
    let followed = '';
    follow.stdout!.on('data', (d: Buffer) => (followed += d.toString()));
    await waitFor(() => /tick5\n/.test(followed), 20_000, 'logs -f to show tick5');
    follow.kill('SIGINT');
    assert.match(followed, /^tick0\ntick1\n/);
    const tail = await docker(['logs', '--tail', '1', '-t', 'box']);
    assert.match(out(tail), /^\d{4}-\d\d-\d\dT[\d:.]+Z tick\d+\n$/);
    // exec
    const e = await docker([
      'exec',
      '-e',
      'X=1',
      '-w',
      '/tmp',
      '-u',
      'nobody',
      'box',
      'sh',
      '-c',
      'echo "$X $(pwd) $(id -u)"; echo to-err >&2; exit 4',
    ]);
    assert.deepEqual([e.code, out(e), e.stderr], [4, '1 /tmp 65534\n', 'to-err\n']);
    const input = await docker(['exec', '-i', 'box', 'wc', '-c'], { input: 'x'.repeat(50_000) });
    assert.equal(out(input).trim(), '50000');
    assert.equal((await docker(['exec', 'box', 'no-such-command'])).code, 127);
    ok(await docker(['exec', '-d', 'box', 'sh', '-c', 'echo detached > /data/detached']), 'exec -d');
    // top and stats
    const top = await docker(['top', 'box']);
    ok(top, 'top');
    assert.match(out(top), /PID\s+USER/);
    assert.match(out(top), /sh -c i=0/);
    assert.doesNotMatch(out(top), /kthreadd/);
    const stats = await docker(['stats', '--no-stream', '--format', '{{.Name}} {{.MemUsage}}', 'box']);
    ok(stats, 'stats');
    assert.match(out(stats), /^box \S+ \/ 256MiB\n$/);
    // cp both ways
    await writeFile(path.join(work, 'up.txt'), 'uploaded\n');
    ok(await docker(['cp', path.join(work, 'up.txt'), 'box:/tmp/']), 'cp to');
    assert.equal(out(await docker(['exec', 'box', 'cat', '/tmp/up.txt'])), 'uploaded\n');
    ok(await docker(['cp', 'box:/etc/passwd', path.join(work, 'passwd')]), 'cp from');
    assert.match(await readFile(path.join(work, 'passwd'), 'utf8'), /^root:/);
    ok(await docker(['cp', 'box:/etc', path.join(work, 'etc')]), 'cp dir');
    assert.match(await readFile(path.join(work, 'etc', 'group'), 'utf8'), /root/);
    const noFile = await docker(['cp', 'box:/no/such', path.join(work, 'x')]);
    assert.equal(noFile.code, 1);
    // The daemon's 404 has no body (HEAD): newer CLIs word it themselves, 20.10 names the container:path.
    assert.match(noFile.stderr, /Could not find the file \/no\/such in container box|No such container:path: box:\/no\/such/);
    // ps
    const ps = await docker([
      'ps',
      '--filter',
      'name=bo',
      '--filter',
      'ancestor=busybox',
      '--format',
      '{{.ID}} {{.Names}} {{.State}} {{.Status}}',
    ]);
    assert.match(
      out(ps),
      new RegExp(`^${id.slice(0, 12)} box running Up (Less than a second|\\d+ seconds|About a minute|\\d+ minutes)\\n$`),
    );
    assert.equal(out(await docker(['ps', '-q', '--filter', 'status=exited'])), '');
    // rename, restart, stop (twice: the second is a no-op), kill, wait
    ok(await docker(['rename', 'box', 'box2']), 'rename');
    const taken = await docker(['run', '-d', '--name', 'box2', 'busybox', 'true']);
    assert.equal(taken.code, 125);
    assert.match(taken.stderr, /Conflict\. .*already in use/);
    const state = async (): Promise<string[]> =>
      out(await docker(['inspect', '--format', '{{.State.Running}} {{.RestartCount}} {{.State.Pid}} {{.State.StartedAt}}', 'box2']))
        .trim()
        .split(' ');
    const [, , pidBefore, startedBefore] = await state();
    ok(await docker(['restart', '-t', '1', 'box2']), 'restart');
    const [running, restarts, pidAfter, startedAfter] = await state();
    assert.deepEqual([running, restarts], ['true', '0'], 'running, and a restart asked for is not counted (as Docker)');
    assert.notEqual(pidAfter, pidBefore, 'restart booted a new micro-VM');
    assert.deepEqual(await qemuPidsUsing(host().stateDir), [Number(pidAfter)], 'the old QEMU is gone');
    assert.ok(Date.parse(startedAfter!) > Date.parse(startedBefore!), `StartedAt ${startedBefore} -> ${startedAfter}`);
    const rmRunning = await docker(['rm', 'box2']);
    assert.equal(rmRunning.code, 1);
    assert.match(rmRunning.stderr, /container is running/);
    ok(await docker(['kill', 'box2']), 'kill');
    assert.equal(out(await docker(['wait', 'box2'])).trim(), '137');
    ok(await docker(['stop', 'box2']), 'stop of a stopped container');
    const killStopped = await docker(['kill', 'box2']);
    assert.equal(killStopped.code, 1);
    assert.match(killStopped.stderr, /is not running/);
    ok(await docker(['rm', '-v', 'box2']), 'rm');
    const gone = await docker(['inspect', 'box2']);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /No such (object|container): box2/);
  });

  test('a named volume outlives its container and is read by the next one; volume ls/inspect/rm/prune', async () => {
    const r = await docker([
      'run',
      '--rm',
      '--mount',
      'type=volume,source=shared,target=/data,readonly',
      'busybox',
      'sh',
      '-c',
      'cat /data/detached; touch /data/x 2>/dev/null || echo read-only',
    ]);
    assert.deepEqual([r.code, out(r)], [0, 'detached\nread-only\n'], r.stderr);
    assert.match(out(await docker(['volume', 'ls', '--format', '{{.Name}} {{.Driver}}'])), /^shared local$/m);
    const v = JSON.parse(out(await docker(['volume', 'inspect', 'shared'])))[0];
    assert.equal(v.Name, 'shared');
    ok(await docker(['volume', 'create', '--label', 'k=v', 'spare']), 'volume create');
    assert.equal(out(await docker(['volume', 'ls', '-q', '--filter', 'label=k=v'])), 'spare\n');
    ok(await docker(['create', '--name', 'holder', '-v', 'spare:/x', 'busybox']), 'create holder');
    const inUse = await docker(['volume', 'rm', 'spare']);
    assert.equal(inUse.code, 1);
    assert.match(inUse.stderr, /volume is in use/);
    ok(await docker(['rm', 'holder']), 'rm holder');
    ok(await docker(['volume', 'rm', 'spare', 'shared']), 'volume rm');
    ok(await docker(['volume', 'prune', '-f']), 'volume prune');
    assert.equal(out(await docker(['volume', 'ls', '-q'])), '');
  });

  test('Ctrl-C reaches the container (signal proxy); events show the lifecycle', async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    const child = startDocker([
      'run',
      '--name',
      'sig',
      'busybox',
      'sh',
      '-c',
      'trap "echo got INT; exit 42" INT; echo ready; while true; do sleep 0.1; done',
    ]);
    let seen = '';
    child.stdout!.on('data', (d: Buffer) => (seen += d.toString()));
    const result = collect(child, undefined, 60_000, ['docker run sig']);
    await waitFor(() => seen.includes('ready'), 30_000, 'the container to be ready');
    child.kill('SIGINT');
    const r = await result;
    assert.equal(r.code, 42, r.stderr);
    assert.match(seen, /got INT/);
    const events = await docker([
      'events',
      '--since',
      String(since),
      '--until',
      String(Math.floor(Date.now() / 1000) + 1),
      '--filter',
      'container=sig',
      '--format',
      '{{.Action}}',
    ]);
    ok(events, 'events');
    assert.deepEqual(
      out(events)
        .trim()
        .split('\n')
        .filter((a) => ['create', 'start', 'kill', 'die'].includes(a)),
      ['create', 'start', 'kill', 'die'],
    );
    ok(await docker(['rm', 'sig']), 'rm');
  });
  test('-p publishes a port reached with a real HTTP request; docker port and ps show it; networks are listed, created and removed', async () => {
    // The port was free a moment ago; if another process took it since, the container is removed and run again.
    const { port, result: run } = await withFreePort(
      async (p) => {
        await docker(['rm', '-f', 'dweb']);
        return docker([
          'run',
          '-d',
          '--name',
          'dweb',
          '-p',
          `127.0.0.1:${p}:80`,
          'busybox',
          'sh',
          '-c',
          'mkdir -p /www && echo docker-web > /www/index.html && exec httpd -f -p 80 -h /www',
        ]);
      },
      (r) => r.code !== 0 && /port is already allocated/.test(r.stderr),
    );
    ok(run, 'run -d -p');
    let body = '';
    await waitFor(
      async () => {
        body = await fetch(`http://127.0.0.1:${port}/`).then(
          (r) => r.text(),
          () => '',
        );
        return body !== '';
      },
      30_000,
      'the published port',
    );
    assert.equal(body, 'docker-web\n');
    assert.equal(out(await docker(['port', 'dweb'])).trim(), `80/tcp -> 127.0.0.1:${port}`);
    assert.match(
      out(await docker(['ps', '--format', '{{.Ports}}', '--filter', 'name=dweb'])),
      new RegExp(`127\\.0\\.0\\.1:${port}->80/tcp`),
    );
    ok(await docker(['rm', '-f', 'dweb']), 'rm');
    ok(await docker(['network', 'create', 'dnet']), 'network create');
    assert.match(out(await docker(['network', 'ls'])), /dnet\s+bridge\s+local/);
    const inspect = JSON.parse(out(await docker(['network', 'inspect', 'dnet'])));
    assert.match(inspect[0].IPAM.Config[0].Subnet, /^\d+\.\d+\.\d+\.\d+\/\d+$/);
    ok(await docker(['network', 'rm', 'dnet']), 'network rm');
  });
}

const debian = debianDocker();
describe(`docker CLI ${debian.version} (${debian.path}, Debian's) against Boson`, () => dockerCliSuite(debian));
const newer = newerDocker();
if ('missing' in newer) {
  describe('a newer docker CLI against Boson', () => {
    test('the same suite with a newer docker CLI', { skip: newer.missing }, () => undefined);
  });
} else {
  describe(`docker CLI ${newer.version} (${newer.path}) against Boson`, () => dockerCliSuite(newer));
}
