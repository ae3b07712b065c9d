/**
 * Container commands that talk to the machine daemon: create, start, stop, restart, kill, rm, wait, ps, inspect,
 * logs, attach, exec, stats, events, rename.
 */
import type { Command } from 'commander';
import { BosonError, bosonPaths, isBosonError } from '../../common/index.ts';
import { MachineClient, StreamDemuxer, daemonSocketPath, execStatusError, humanDuration, parseSignal, statusText, type ContainerRecord, type ContainerStats, type ExecSpec, type ExecStatus, type VolumeRecord } from '../../machine/index.ts';
import { addContainerFlags, containerSpecOf, envFromFlags, labelsFromFlags, type ContainerFlags } from '../container-flags.ts';
import { flushOutput, formatBytes, printJson, printTable } from '../output.ts';

function client(): MachineClient {
  return new MachineClient(daemonSocketPath(bosonPaths()));
}

const enc = encodeURIComponent;

async function forEach(refs: string[], fn: (ref: string) => Promise<void>): Promise<void> {
  let failed: unknown;
  for (const ref of refs) {
    try {
      await fn(ref);
    } catch (err) {
      failed = err;
      process.stderr.write(`boson: ${(err as Error).message}\n`);
    }
  }
  if (failed !== undefined) process.exitCode = 1;
}

/**
 * Pipes an upgraded stream to this terminal; resolves when the server closes it. Output is raw with a TTY unless
 * `framed` (a one-request exec, whose status frame goes to `onStatus`).
 */
async function pump(stream: import('node:stream').Duplex, tty: boolean, stdin: boolean, framed = false, onStatus?: (s: ExecStatus) => void): Promise<void> {
  const demux = new StreamDemuxer((d) => process.stdout.write(d), (d) => process.stderr.write(d), onStatus);
  stream.on('data', (d: Buffer) => (tty && !framed ? process.stdout.write(d) : demux.push(d)));
  const raw = tty && stdin && process.stdin.isTTY;
  if (raw) process.stdin.setRawMode(true);
  if (stdin) {
    process.stdin.on('data', (d: Buffer) => stream.write(d));
    process.stdin.on('end', () => stream.end());
  }
  await new Promise<void>((resolve) => {
    stream.on('close', resolve);
    stream.on('end', resolve);
    stream.on('error', () => resolve());
  });
  if (raw) process.stdin.setRawMode(false);
  if (stdin) process.stdin.pause();
}

/** Prints the JSON of each named resource under `base` (errors reported per name). */
async function inspectEach(base: string, names: string[]): Promise<void> {
  const out: unknown[] = [];
  await forEach(names, async (n) => void out.push(await client().request('GET', `${base}/${enc(n)}`)));
  printJson(out);
}

/** Deletes each named resource under `base`, printing the names removed (errors reported per name). */
async function removeEach(base: string, names: string[]): Promise<void> {
  await forEach(names, async (n) => {
    await client().request('DELETE', `${base}/${enc(n)}`);
    process.stdout.write(`${n}\n`);
  });
}

/** Adds `volume create|ls|inspect|rm|prune`. */
export function registerVolumeCommands(program: Command): void {
  const volume = program.command('volume').description('Manage volumes (ext4 disks that outlive containers)');
  const collect = (v: string, prev: string[]): string[] => [...prev, v];
  volume.command('create').description('Create a volume').argument('[name]').option('-l, --label <key=value>', 'set a label', collect, []).option('--size <bytes>', 'disk size (e.g. 1g; default 16g, sparse)')
    .action(async (name: string | undefined, flags: { label: string[]; size?: string }) => {
      const sizeBytes = flags.size === undefined ? undefined : parseSize(flags.size);
      const v = await client().request<VolumeRecord>('POST', '/v1/volumes', { name, labels: labelsFromFlags(flags.label), sizeBytes });
      process.stdout.write(`${v.name}\n`);
    });
  volume.command('ls').description('List volumes').option('-q, --quiet', 'only names').option('--json', 'print as JSON')
    .action(async (flags: { quiet?: boolean; json?: boolean }) => {
      const list = await client().request<VolumeRecord[]>('GET', '/v1/volumes');
      if (flags.json) printJson(list);
      else if (flags.quiet) process.stdout.write(list.map((v) => `${v.name}\n`).join(''));
      else printTable(['DRIVER', 'VOLUME NAME'], list.map((v) => ['local', v.name]));
    });
  volume.command('inspect').description('Show volumes as JSON').argument('<names...>')
    .action((names: string[]) => inspectEach('/v1/volumes', names));
  volume.command('rm').description('Remove volumes').argument('<names...>')
    .action((names: string[]) => removeEach('/v1/volumes', names));
  volume.command('prune').description('Remove unused anonymous volumes (all unused with -a)').option('-a, --all', 'named volumes too').option('-f, --force', 'do not ask')
    .action(async (flags: { all?: boolean }) => {
      const r = await client().request<{ removed: string[] }>('POST', `/v1/volumes/prune${flags.all ? '?all=1' : ''}`);
      process.stdout.write(r.removed.map((n) => `${n}\n`).join('') + `Deleted ${r.removed.length} volume(s)\n`);
    });
}

/** Adds `network create|ls|inspect|rm`. */
export function registerNetworkCommands(program: Command): void {
  const network = program.command('network').description('Manage networks (bridges with their own subnets, isolated from each other)');
  network.command('create').description('Create a network').argument('<name>').option('--subnet <cidr>', 'subnet (default: a free /24)').option('--gateway <ip>', 'gateway address')
    .option('--internal', 'no access to the outside').option('-l, --label <key=value>', 'set a label', (v: string, p: string[]) => [...p, v], [] as string[])
    .action(async (name: string, flags: { subnet?: string; gateway?: string; internal?: boolean; label: string[] }) => {
      const n = await client().request<{ id: string }>('POST', '/v1/networks', { name, subnet: flags.subnet, gateway: flags.gateway, internal: flags.internal, labels: labelsFromFlags(flags.label) });
      process.stdout.write(`${n.id}\n`);
    });
  network.command('ls').description('List networks').option('-q, --quiet', 'only ids').option('--json', 'print as JSON')
    .action(async (flags: { quiet?: boolean; json?: boolean }) => {
      const list = await client().request<Array<{ id: string; name: string; driver: string; subnet: string }>>('GET', '/v1/networks');
      if (flags.json) printJson(list);
      else if (flags.quiet) process.stdout.write(list.map((n) => `${n.id.slice(0, 12)}\n`).join(''));
      else printTable(['NETWORK ID', 'NAME', 'DRIVER', 'SUBNET'], list.map((n) => [n.id.slice(0, 12), n.name, n.driver, n.subnet]));
    });
  network.command('inspect').description('Show networks as JSON').argument('<names...>')
    .action((names: string[]) => inspectEach('/v1/networks', names));
  network.command('rm').description('Remove networks').argument('<names...>')
    .action((names: string[]) => removeEach('/v1/networks', names));
}

function parseSize(value: string): number {
  const m = /^(\d+)([kmgt]?)b?$/i.exec(value.trim());
  if (!m) throw new BosonError('INVALID_ARGUMENT', `invalid size: ${value}`);
  return Number(m[1]) * ({ '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 } as Record<string, number>)[m[2]!.toLowerCase()]!;
}

/** Adds the daemon-backed container commands to the program. */
export function registerContainerCommands(program: Command): void {
  addContainerFlags(program.command('create').description('Create a container (daemon-managed) without starting it')
    .argument('<image>').argument('[command...]').passThroughOptions())
    .action(async (image: string, command: string[], flags: ContainerFlags) => {
      const created = await client().request<{ id: string }>('POST', '/v1/containers', await containerSpecOf(image, command, flags));
      process.stdout.write(`${created.id}\n`);
    });

  program.command('start').description('Start containers').argument('<containers...>').option('-a, --attach', 'attach to its output and wait for it')
    .action(async (refs: string[], flags: { attach?: boolean }) => {
      if (flags.attach) {
        if (refs.length !== 1) throw new BosonError('INVALID_ARGUMENT', 'start -a takes one container');
        const c = client();
        const record = await c.request<ContainerRecord>('GET', `/v1/containers/${enc(refs[0]!)}`);
        await c.request('POST', `/v1/containers/${enc(record.id)}/start`);
        const stream = await c.upgrade(`/v1/containers/${enc(record.id)}/attach`);
        await pump(stream, record.config.tty, record.config.openStdin);
        const result = await c.request<{ statusCode: number }>('POST', `/v1/containers/${enc(record.id)}/wait`);
        await flushOutput();
      process.exit(result.statusCode);
      }
      await forEach(refs, async (ref) => {
        await client().request('POST', `/v1/containers/${enc(ref)}/start`);
        process.stdout.write(`${ref}\n`);
      });
    });

  for (const [name, description] of [['stop', 'Stop containers (SIGTERM, then kill after the timeout)'], ['restart', 'Restart containers']] as const) {
    program.command(name).description(description).argument('<containers...>').option('-t, --time <seconds>', 'seconds to wait before killing', '10')
      .action(async (refs: string[], flags: { time: string }) => {
        await forEach(refs, async (ref) => {
          await client().request('POST', `/v1/containers/${enc(ref)}/${name}?t=${enc(flags.time)}`);
          process.stdout.write(`${ref}\n`);
        });
      });
  }

  program.command('kill').description('Send a signal to containers').argument('<containers...>').option('-s, --signal <signal>', 'signal to send', 'KILL')
    .action(async (refs: string[], flags: { signal: string }) => {
      parseSignal(flags.signal);
      await forEach(refs, async (ref) => {
        await client().request('POST', `/v1/containers/${enc(ref)}/kill?signal=${enc(flags.signal)}`);
        process.stdout.write(`${ref}\n`);
      });
    });

  program.command('rm').description('Remove containers').argument('<containers...>').option('-f, --force', 'kill and remove running containers')
    .option('-v, --volumes', 'also remove their anonymous volumes')
    .action(async (refs: string[], flags: { force?: boolean; volumes?: boolean }) => {
      const q = new URLSearchParams({ ...(flags.force ? { force: '1' } : {}), ...(flags.volumes ? { v: '1' } : {}) });
      await forEach(refs, async (ref) => {
        await client().request('DELETE', `/v1/containers/${enc(ref)}?${q}`);
        process.stdout.write(`${ref}\n`);
      });
    });

  program.command('wait').description('Wait for containers to stop; print their exit codes').argument('<containers...>')
    .action(async (refs: string[]) => {
      await forEach(refs, async (ref) => {
        const r = await client().request<{ statusCode: number }>('POST', `/v1/containers/${enc(ref)}/wait`);
        process.stdout.write(`${r.statusCode}\n`);
      });
    });

  program.command('rename').description('Rename a container').argument('<container>').argument('<new-name>')
    .action(async (ref: string, name: string) => {
      await client().request('POST', `/v1/containers/${enc(ref)}/rename?name=${enc(name)}`);
    });

  program.command('ps').description('List containers').option('-a, --all', 'include stopped containers').option('-q, --quiet', 'only ids').option('--json', 'print as JSON')
    .action(async (flags: { all?: boolean; quiet?: boolean; json?: boolean }) => {
      const list = await client().request<ContainerRecord[]>('GET', `/v1/containers${flags.all ? '?all=1' : ''}`);
      if (flags.json) printJson(list);
      else if (flags.quiet) process.stdout.write(list.map((r) => `${r.id.slice(0, 12)}\n`).join(''));
      else {
        printTable(['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'NAMES'], list.map((r) => {
          const cmd = JSON.stringify(r.config.argv.join(' ')).slice(0, 22);
          return [r.id.slice(0, 12), r.image, cmd, `${humanDuration(Date.now() - Date.parse(r.created))} ago`, statusText(r), r.name];
        }));
      }
    });

  program.command('inspect').description('Show containers as JSON').argument('<containers...>')
    .action(async (refs: string[]) => {
      const out: ContainerRecord[] = [];
      await forEach(refs, async (ref) => {
        out.push(await client().request<ContainerRecord>('GET', `/v1/containers/${enc(ref)}`));
      });
      printJson(out);
    });

  program.command('logs').description('Show a container\'s output').argument('<container>')
    .option('-f, --follow', 'keep following the output').option('-n, --tail <n>', 'only the last n lines', 'all')
    .option('--since <time>', 'only lines since (RFC 3339 or unix seconds)').option('--until <time>', 'only lines until').option('-t, --timestamps', 'show timestamps')
    .action(async (ref: string, flags: { follow?: boolean; tail: string; since?: string; until?: string; timestamps?: boolean }) => {
      const abort = new AbortController();
      process.once('SIGINT', () => abort.abort());
      // With -f, a daemon that restarts does not end the stream: reconnect and go on from the last line shown
      // (lines are skipped by timestamp and by how many with that timestamp were shown, so none repeats).
      let lastNs: bigint | undefined;
      let shownAtLast = 0;
      let giveUpAt = 0;
      for (;;) {
        const q = new URLSearchParams({
          ...(lastNs === undefined ? { tail: flags.tail } : { sinceNs: lastNs.toString() }),
          ...(flags.follow ? { follow: '1' } : {}), ...(flags.since && lastNs === undefined ? { since: flags.since } : {}), ...(flags.until ? { until: flags.until } : {}),
        });
        let skip = lastNs === undefined ? 0 : shownAtLast;
        try {
          await client().stream<{ stream: string; time: string; data: string }>(`/v1/containers/${enc(ref)}/logs?${q}`, (item) => {
            const ns = BigInt(item.time);
            giveUpAt = 0;
            if (lastNs !== undefined && ns === lastNs && skip > 0) {
              skip--;
              return;
            }
            shownAtLast = ns === lastNs ? shownAtLast + 1 : 1;
            lastNs = ns;
            let data = Buffer.from(item.data, 'base64');
            if (flags.timestamps) {
              const iso = new Date(Number(ns / 1_000_000n)).toISOString().replace(/\.\d+Z$/, `.${(ns % 1_000_000_000n).toString().padStart(9, '0')}Z`);
              data = Buffer.concat([Buffer.from(`${iso} `), data]);
            }
            (item.stream === 'stderr' ? process.stderr : process.stdout).write(data);
          }, abort.signal);
          return;
        } catch (err) {
          if (!flags.follow || abort.signal.aborted || !isBosonError(err, 'DAEMON_UNAVAILABLE')) throw err;
          giveUpAt ||= Date.now() + 120_000;
          if (Date.now() > giveUpAt) throw err;
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    });

  program.command('attach').description('Attach this terminal to a running container').argument('<container>').option('--no-stdin', 'do not forward stdin')
    .action(async (ref: string, flags: { stdin: boolean }) => {
      const c = client();
      const record = await c.request<ContainerRecord>('GET', `/v1/containers/${enc(ref)}`);
      const stream = await c.upgrade(`/v1/containers/${enc(record.id)}/attach`);
      await pump(stream, record.config.tty, flags.stdin && record.config.openStdin);
      const result = await c.request<{ statusCode: number }>('POST', `/v1/containers/${enc(record.id)}/wait`);
      await flushOutput();
      process.exit(result.statusCode);
    });

  const collect = (v: string, prev: string[]): string[] => [...prev, v];
  program.command('exec').description('Run a further command in a running container').argument('<container>').argument('<command...>')
    .option('-i, --interactive', 'forward stdin').option('-t, --tty', 'allocate a pty').option('-d, --detach', 'run in the background')
    .option('-e, --env <KEY=value>', 'set an environment variable (repeatable)', collect, []).option('-w, --workdir <dir>', 'working directory')
    .option('-u, --user <user[:group]>', 'user to run as').passThroughOptions().helpOption('--help', 'display help for command')
    .action(async (ref: string, command: string[], flags: { interactive?: boolean; tty?: boolean; detach?: boolean; env: string[]; workdir?: string; user?: string }) => {
      const c = client();
      const env = await envFromFlags({ env: flags.env, envFile: [], label: [] });
      const spec: ExecSpec = { argv: command, env, cwd: flags.workdir, user: flags.user, tty: Boolean(flags.tty), stdin: Boolean(flags.interactive) && !flags.detach };
      if (flags.detach) {
        const { id } = await c.request<{ id: string }>('POST', `/v1/containers/${enc(ref)}/execs`, spec);
        (await c.upgrade(`/v1/execs/${id}/start`)).destroy();
        return;
      }
      // One request: the exit status comes at the end of the stream.
      const stream = await c.upgrade(`/v1/containers/${enc(ref)}/exec`, spec);
      let status: ExecStatus | undefined;
      await pump(stream, Boolean(flags.tty), Boolean(flags.interactive), true, (s) => (status = s));
      if (!status) throw new BosonError('DAEMON_UNAVAILABLE', 'lost the connection to the Boson daemon before the exec ended');
      if (status.exitCode === null) throw execStatusError(status);
      await flushOutput();
      process.exit(status.exitCode);
    });

  program.command('stats').description('Resource usage of running containers').argument('[containers...]')
    .option('--no-stream', 'print once and exit (the default here)').option('--json', 'print as JSON')
    .action(async (refs: string[], flags: { json?: boolean }) => {
      const c = client();
      const targets = refs.length > 0 ? refs : (await c.request<ContainerRecord[]>('GET', '/v1/containers')).map((r) => r.id);
      const stats: ContainerStats[] = [];
      for (const ref of targets) stats.push(await c.request<ContainerStats>('GET', `/v1/containers/${enc(ref)}/stats`));
      if (flags.json) printJson(stats);
      else printTable(['CONTAINER ID', 'NAME', 'CPU TIME', 'MEM USAGE / LIMIT', 'PIDS'], stats.map((s) => [
        s.id.slice(0, 12), s.name, `${(s.cpuNs / 1e9).toFixed(2)}s`, `${formatBytes(s.memoryBytes)} / ${formatBytes(s.memoryLimitBytes)}`, String(s.pids),
      ]));
    });

  program.command('events').description('Stream lifecycle events').option('--since <time>', 'start from this time').option('--until <time>', 'stop at this time').option('--json', 'one JSON object per line')
    .action(async (flags: { since?: string; until?: string; json?: boolean }) => {
      const q = new URLSearchParams({ ...(flags.since ? { since: flags.since } : {}), ...(flags.until ? { until: flags.until } : {}) });
      const abort = new AbortController();
      process.once('SIGINT', () => abort.abort());
      await client().stream<{ timeNano: string; type: string; action: string; actorId: string; attributes: Record<string, string> }>(`/v1/events?${q}`, (e) => {
        if (flags.json) process.stdout.write(JSON.stringify(e) + '\n');
        else {
          const t = new Date(Number(BigInt(e.timeNano) / 1_000_000n)).toISOString();
          const attrs = Object.entries(e.attributes).map(([k, v]) => `${k}=${v}`).join(', ');
          process.stdout.write(`${t} ${e.type} ${e.action} ${e.actorId} (${attrs})\n`);
        }
      }, abort.signal);
    });
}
