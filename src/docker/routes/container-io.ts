/**
 * What flows in and out of a container: logs, stats, top, `docker cp` (archive) and attach, with and without a
 * connection upgrade.
 */
import { writableReady } from '../../common/index.ts';
import { settleTimeFor, settledWriter } from '../upgrade-settle.ts';
import { type Container, type ContainerStats, localContext } from '../../machine/port/index.ts';
import { hostCpuCount } from '../../machine/client/index.ts';
import { archiveGet, archivePut, archiveStat } from '../archive.ts';
import { DockerError, badRequest } from '../errors.ts';
import { rfc3339Nano } from '../format.ts';
import { flag, readUpgradeBody, sendEmpty, sendJson, type Ctx } from '../http.ts';
import { ID, type RouteDeps, type Router, type UpgradeCtx } from '../router.ts';
import { frameSink, guestExec, runAttach, type AttachOptions } from '../streams.ts';
import { parseTime } from '../system.ts';

const LOCAL = localContext('docker');

/** Registers logs, stats, top, archive and attach. */
export function registerContainerIoRoutes(router: Router, deps: RouteDeps): void {
  const m = deps.machine.containers;
  router.on('GET', `/containers/${ID}/logs`, (ctx) => containerLogs(deps, ctx));
  router.on('GET', `/containers/${ID}/stats`, (ctx) => containerStats(deps, ctx));
  router.on('GET', `/containers/${ID}/top`, (ctx) => containerTop(deps, ctx));
  router.on('HEAD', `/containers/${ID}/archive`, async ({ res, params, query }) => {
    const stat = await archiveStat(m, await filesOf(deps, params[0]!), requiredPath(query));
    res.writeHead(200, { 'X-Docker-Container-Path-Stat': stat, 'Content-Length': 0 });
    res.end();
  });
  router.on('GET', `/containers/${ID}/archive`, async ({ res, params, query }) => {
    await archiveGet(m, await filesOf(deps, params[0]!), requiredPath(query), res);
  });
  // The tar streams into the guest's tar (the container's disk is its limit), never held by the daemon.
  router.on(
    'PUT',
    `/containers/${ID}/archive`,
    async ({ req, res, params, query }) => {
      await archivePut(m, await filesOf(deps, params[0]!), requiredPath(query), req, flag(query, 'copyUIDGID'));
      sendEmpty(res, 200);
    },
    { streamedBody: true },
  );
  // Attach without a connection upgrade (SDKs): the stream is the response body.
  router.on('POST', `/containers/${ID}/attach`, async ({ res, params, query }) => {
    const c = await m.inspect(LOCAL, params[0]!);
    res.writeHead(200, { 'Content-Type': streamType(c.config.tty) });
    res.flushHeaders();
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    await runAttach(
      deps.machine,
      c,
      { ...attachOptions(query), stdin: false },
      (b) => void res.write(b),
      null,
      abort.signal,
      writableReady(res),
    );
    res.end();
  });
  router.upgrade('POST', `/containers/${ID}/attach`, (ctx) => upgradedAttach(deps, ctx));
}

/** `POST /containers/{id}/attach` with a connection upgrade (docker run, docker attach). */
async function upgradedAttach(deps: RouteDeps, { req, socket, head, params, query, accept }: UpgradeCtx): Promise<void> {
  const c = await deps.machine.containers.inspect(LOCAL, params[0]!);
  const opts = attachOptions(query);
  const { rest } = await readUpgradeBody(req, socket, head);
  accept(c.config.tty);
  if (rest.length > 0) socket.unshift(rest);
  // docker-py's first bytes wait a moment after the 101 (its reader would lose them: see upgrade-settle.ts).
  const out = settledWriter(socket, settleTimeFor(req));
  const abort = new AbortController();
  socket.on('close', () => abort.abort());
  await runAttach(deps.machine, c, opts, out.write, socket, abort.signal, writableReady(socket));
  await out.flushed();
}

/** `GET /containers/{id}/logs`. */
async function containerLogs({ machine: { containers: m } }: RouteDeps, { res, params, query }: Ctx): Promise<void> {
  const c = await m.inspect(LOCAL, params[0]!);
  const stdout = flag(query, 'stdout');
  const stderr = flag(query, 'stderr');
  if (!stdout && !stderr) throw badRequest('Bad parameters: you must choose at least one stream');
  const tailRaw = query.get('tail');
  const tail = tailRaw === null || tailRaw === '' || tailRaw === 'all' ? undefined : Number(tailRaw);
  if (tail !== undefined && (!Number.isInteger(tail) || tail < 0)) throw badRequest(`invalid value for "tail": ${tailRaw}`);
  const q = { stdout, stderr, sinceNs: nonZero(parseTime(query.get('since'))), untilNs: nonZero(parseTime(query.get('until'))), tail };
  const timestamps = flag(query, 'timestamps');
  res.writeHead(200, { 'Content-Type': streamType(c.config.tty) });
  res.flushHeaders();
  const abort = new AbortController();
  res.on('close', () => abort.abort());
  const sink = frameSink((b) => void res.write(b), c.config.tty);
  const onLine = (l: { stream: 'stdout' | 'stderr'; timeNs: bigint; data: Buffer }): void => {
    const data = timestamps ? Buffer.concat([Buffer.from(`${rfc3339Nano(l.timeNs)} `), l.data]) : l.data;
    if (l.stream === 'stdout') sink.stdout(data);
    else sink.stderr(data);
  };
  await m.logs(LOCAL, c.id, q, flag(query, 'follow'), onLine, abort.signal, writableReady(res));
  res.end();
}

interface Sample {
  stats: ContainerStats;
  system: number;
}

/** `GET /containers/{id}/stats`: one document (two samples 0.5 s apart unless one-shot), or a stream of one a second. */
async function containerStats({ machine: { containers: m } }: RouteDeps, { req, res, params, query }: Ctx): Promise<void> {
  const c = await m.inspect(LOCAL, params[0]!);
  const sample = async (): Promise<Sample> => ({ stats: await m.stats(LOCAL, c.id), system: await systemCpuNs() });
  if (!flag(query, 'stream', true)) {
    let pre: Sample | null = null;
    if (!flag(query, 'one-shot') && c.state === 'running') {
      pre = await sample();
      await new Promise((r) => setTimeout(r, 500));
    }
    sendJson(res, 200, statsJson(c, await sample(), pre));
    return;
  }
  res.writeHead(200, { 'Content-Type': 'application/json' });
  let pre: Sample | null = null;
  let open = true;
  req.socket.once('close', () => (open = false));
  while (open) {
    const cur = await sample();
    res.write(JSON.stringify(statsJson(c, cur, pre)) + '\n');
    pre = cur;
    await new Promise((r) => setTimeout(r, 1000));
  }
  res.end();
}

/** `GET /containers/{id}/top`: ps in the guest, without the guest's kernel threads, boson-init and the ps itself. */
async function containerTop(deps: RouteDeps, { res, params, query }: Ctx): Promise<void> {
  const c = await deps.machine.containers.inspect(LOCAL, params[0]!);
  if (c.state !== 'running') throw new DockerError(409, `container ${c.id} is not running`);
  const psArgs = (query.get('ps_args') ?? '').trim();
  const ps = async (argv: string[]): Promise<string> => {
    const r = await guestExec(deps.machine.containers, c.id, argv);
    if (r.code !== 0) throw new DockerError(500, `ps in the container failed (exit ${r.code}): ${r.stderr.trim()}`);
    return r.stdout.toString('utf8');
  };
  const own = psTable(await ps(['ps']), 'ps');
  if (!psArgs) return sendJson(res, 200, own);
  // Other formats do not show kernel threads as [name] or init as /init: keep the rows of the processes the default
  // format leaves (the container's), by PID; this ps is a later process than the first one, so it drops out too.
  const table = psTable(await ps(['ps', ...psArgs.split(/\s+/)]), '');
  sendJson(res, 200, onlyPids(table, new Set(own.Processes.map((p) => p[0] ?? ''))));
}

/** The rows of a ps table whose PID is in `pids` (Docker's answer when ps prints no PID column). */
export function onlyPids(
  table: { Titles: string[]; Processes: string[][] },
  pids: Set<string>,
): { Titles: string[]; Processes: string[][] } {
  const col = table.Titles.indexOf('PID');
  if (col < 0) throw new DockerError(500, `Couldn't find PID field in ps output`);
  return { Titles: table.Titles, Processes: table.Processes.filter((p) => pids.has(p[col] ?? '')) };
}

/** Docker's top answer from ps output (`self`: the ps command line, left out). */
export function psTable(output: string, self: string): { Titles: string[]; Processes: string[][] } {
  const lines = output.split('\n').filter((l) => l.trim() !== '');
  const titles = (lines.shift() ?? '').trim().split(/\s+/);
  const processes = lines
    .map((l) => {
      const parts = l.trim().split(/\s+/);
      return [...parts.slice(0, titles.length - 1), parts.slice(titles.length - 1).join(' ')];
    })
    .filter((p) => {
      const cmd = p[p.length - 1] ?? '';
      return cmd !== self && !/^\[.*\]$/.test(cmd) && !(p[0] === '1' && cmd === '/init');
    });
  return { Titles: titles, Processes: processes };
}

/** A container `docker cp` can reach: its files are copied through its running micro-VM. */
/** The container whose files a copy reads or writes, in any state (a stopped one is served by a helper micro-VM). */
async function filesOf(deps: RouteDeps, ref: string): Promise<Container> {
  return deps.machine.containers.inspect(LOCAL, ref);
}

function streamType(tty: boolean): string {
  return tty ? 'application/vnd.docker.raw-stream' : 'application/vnd.docker.multiplexed-stream';
}

function nonZero(ns: bigint | undefined): bigint | undefined {
  return ns === 0n ? undefined : ns;
}

function attachOptions(q: URLSearchParams): AttachOptions {
  return {
    stdin: flag(q, 'stdin'),
    stdout: flag(q, 'stdout'),
    stderr: flag(q, 'stderr'),
    logs: flag(q, 'logs'),
    stream: flag(q, 'stream'),
  };
}

function requiredPath(q: URLSearchParams): string {
  const p = q.get('path');
  if (!p) throw badRequest('path is required');
  return p;
}

async function systemCpuNs(): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const line = (await readFile('/proc/stat', 'utf8').catch(() => '')).split('\n')[0] ?? '';
  const ticks = line
    .split(/\s+/)
    .slice(1)
    .map(Number)
    .filter(Number.isFinite)
    .reduce((a, b) => a + b, 0);
  return Math.round((ticks / 100) * 1e9);
}

/** Docker's stats document from a sample and the one before it (none: zeros, as Docker's first sample). */
export function statsJson(c: Pick<Container, 'id' | 'name'>, cur: Sample, pre: Sample | null): Record<string, unknown> {
  const cpu = (x: Sample | null): Record<string, unknown> => ({
    cpu_usage: { total_usage: x?.stats.cpuNs ?? 0, usage_in_kernelmode: 0, usage_in_usermode: x?.stats.cpuNs ?? 0 },
    system_cpu_usage: x?.system ?? 0,
    online_cpus: x ? hostCpuCount() : 0,
    throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 },
  });
  const blkio = [
    'io_service_bytes_recursive',
    'io_serviced_recursive',
    'io_queue_recursive',
    'io_service_time_recursive',
    'io_wait_time_recursive',
    'io_merged_recursive',
    'io_time_recursive',
    'sectors_recursive',
  ];
  return {
    read: cur.stats.read,
    preread: pre?.stats.read ?? '0001-01-01T00:00:00Z',
    pids_stats: { current: cur.stats.pids },
    blkio_stats: Object.fromEntries(blkio.map((k) => [k, null])),
    num_procs: 0,
    storage_stats: {},
    cpu_stats: cpu(cur),
    precpu_stats: cpu(pre),
    memory_stats: { usage: cur.stats.memoryBytes, limit: cur.stats.memoryLimitBytes, stats: {} },
    name: `/${c.name}`,
    id: c.id,
  };
}
