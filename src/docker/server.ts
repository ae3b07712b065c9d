/**
 * The Docker Engine API personality of the machine daemon: a node:http server whose every route maps onto
 * MachineRuntime, its ImageStore and its VolumeManager. Routes are matched on the path without its `/vX.Y`
 * prefix; attach and exec start are hijacked connections (HTTP 101). What Boson cannot do answers 501 with
 * Docker's `{"message"}`.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { isBosonError, type BosonPaths } from '../common/index.ts';
import { hostCpuCount, localContext, parseMemory, parseSignal, pipeClientStdin, type ContainerRecord, type MachineRuntime, type WaitCondition } from '../machine/index.ts';
import { CONTAINER_FILTERS, checkContainerName, containerInspect, containerSummary, containerSpecOf, matchesFilters } from './containers.ts';
import { normalizeDockerRepo } from './repo-name.ts';
import { badRequest, DockerError, notSupported } from './errors.ts';
import { familiarName, rfc3339Nano, withSha } from './format.ts';
import { API_VERSION, flag, jsonBody, parseFilters, readUpgradeBody, parseJsonObject, sendEmpty, sendError, sendJson, socketError, splitVersion, writeUpgraded, type Ctx } from './http.ts';
import { checkLogin, imageInspect, imageSummary, pullReference, pullStream, registryAuth } from './images.ts';
import { frameSink, guestExec, runAttach, type AttachOptions } from './streams.ts';
import { diskUsage, eventStream, parseTime, systemInfo, versionInfo } from './system.ts';
import { archiveGet, archivePut, archiveStat } from './archive.ts';

/** Calls on behalf of the Docker API's clients (no authentication on this personality yet). */
const LOCAL = localContext('docker');

type Handler = (ctx: Ctx) => Promise<void> | void;
interface Route {
  method: string;
  re: RegExp;
  handler: Handler;
}

/** The Docker API over one MachineRuntime. */
export class DockerApi {
  private readonly routes: Route[] = [];
  /** Resize functions of running execs, by exec id. */
  private readonly execResize = new Map<string, (rows: number, cols: number) => void>();
  /** Hijacked connections (not tracked by the HTTP server once upgraded). */
  private readonly hijacked = new Set<Duplex>();

  constructor(private readonly service: MachineRuntime, private readonly paths: BosonPaths) {
    this.defineRoutes();
  }

  private on(method: string, pattern: string, handler: Handler): void {
    this.routes.push({ method, re: new RegExp(`^${pattern}$`), handler });
  }

  /** A node:http server with this API's request and upgrade handlers. */
  createServer(): http.Server {
    const server = http.createServer({ keepAliveTimeout: 30_000, requestTimeout: 0 }, (req, res) => void this.handle(req, res));
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => void this.handleUpgrade(req, socket, head));
    server.on('clientError', (_err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 32\r\nConnection: close\r\n\r\n{"message":"malformed request"}\n');
      else socket.destroy();
    });
    return server;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (process.env.BOSON_DOCKER_TRACE) {
      const t0 = performance.now();
      process.stderr.write(`${Date.now() % 100000} > ${req.method} ${req.url}\n`);
      res.on('finish', () => process.stderr.write(`${Date.now() % 100000} < ${req.method} ${req.url} ${res.statusCode} ${(performance.now() - t0).toFixed(1)} ms\n`));
    }
    res.on('error', () => undefined);
    req.on('error', () => undefined);
    try {
      const url = new URL(req.url ?? '/', 'http://docker');
      const { version, path } = splitVersion(url.pathname);
      const method = req.method === 'HEAD' && path !== '/_ping' && !/\/archive$/.test(path) ? 'GET' : req.method ?? 'GET';
      for (const route of this.routes) {
        if (route.method !== method && !(route.method === 'GET' && method === 'HEAD')) continue;
        const m = route.re.exec(path);
        if (!m) continue;
        const params = m.slice(1).map((p) => decodeURIComponent(p));
        await route.handler({ req, res, params, query: url.searchParams, version });
        return;
      }
      const unsupported = unsupportedRoute(path);
      if (unsupported) throw unsupported;
      if (this.routes.some((r) => r.re.test(path))) throw new DockerError(405, `method ${req.method} is not allowed on ${path}`);
      throw new DockerError(404, 'page not found');
    } catch (err) {
      sendError(res, err);
    }
  }

  private defineRoutes(): void {
    const s = this.service;
    const ID = '([^/]+)';

    // ---- system ---------------------------------------------------------------------------------------------
    const ping: Handler = ({ req, res }) => {
      res.writeHead(200, {
        'Api-Version': API_VERSION, Ostype: 'linux', 'Docker-Experimental': 'false', Swarm: 'inactive',
        'Cache-Control': 'no-cache, no-store, must-revalidate', Pragma: 'no-cache', 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': req.method === 'HEAD' ? 0 : 2,
      });
      res.end(req.method === 'HEAD' ? undefined : 'OK');
    };
    this.on('GET', '/_ping', ping);
    this.on('HEAD', '/_ping', ping);
    this.on('GET', '/version', ({ res }) => sendJson(res, 200, versionInfo()));
    this.on('GET', '/info', async ({ res }) => sendJson(res, 200, await systemInfo(s, this.paths)));
    this.on('GET', '/system/df', async ({ res }) => sendJson(res, 200, await diskUsage(s)));
    this.on('GET', '/events', ({ req, res, query }) => eventStream(s, req, res, query));
    this.on('POST', '/auth', async (ctx) => {
      const b = await jsonBody(ctx);
      const username = typeof b.username === 'string' ? b.username : '';
      const password = typeof b.password === 'string' ? b.password : '';
      if (!username || !password) throw badRequest('a user name and a password are required (identity tokens are not supported by Boson)');
      try {
        await checkLogin(typeof b.serveraddress === 'string' ? b.serveraddress : '', username, password);
      } catch (err) {
        if (isBosonError(err, 'REGISTRY_AUTH_FAILED')) throw new DockerError(401, `login attempt failed: ${err.message}`);
        throw err;
      }
      sendJson(ctx.res, 200, { Status: 'Login Succeeded', IdentityToken: '' });
    });

    // ---- containers -----------------------------------------------------------------------------------------
    this.on('GET', '/containers/json', async ({ res, query }) => {
      const filters = parseFilters(query, CONTAINER_FILTERS);
      const all = flag(query, 'all') || filters.has('status') || filters.has('exited');
      let records = await s.records(all);
      if (filters.size > 0) {
        const ancestors = new Map<string, string | null>();
        for (const v of filters.get('ancestor') ?? []) ancestors.set(v, await s.imageService.inspect(LOCAL, v).then((i) => withSha(i.id), () => null));
        records = records.filter((r) => matchesFilters(r, filters, (ref) => ancestors.get(ref) ?? null));
      }
      const limit = Number(query.get('limit') ?? -1);
      if (Number.isInteger(limit) && limit > 0) records = records.slice(0, limit);
      const now = Date.now();
      sendJson(res, 200, records.map((r) => containerSummary(s, r, now)));
    });

    this.on('POST', '/containers/create', async (ctx) => {
      const body = await jsonBody(ctx);
      const name = ctx.query.get('name');
      const platform = ctx.query.get('platform');
      if (platform && !/^linux(\/(amd64|x86_64))?$/.test(platform)) throw badRequest(`image platform ${platform} is not supported by Boson (linux/amd64 micro-VMs)`);
      const container = await s.create(LOCAL, containerSpecOf(body, name || null, hostCpuCount()));
      sendJson(ctx.res, 201, { Id: container.id, Warnings: [] });
    });

    this.on('POST', '/containers/prune', async ({ res }) => {
      const deleted: string[] = [];
      for (const r of await s.records(true)) {
        if (r.state !== 'exited' && r.state !== 'created' && r.state !== 'dead') continue;
        await s.remove(LOCAL, r.id, { force: false }).then(() => deleted.push(r.id), () => undefined);
      }
      sendJson(res, 200, { ContainersDeleted: deleted, SpaceReclaimed: 0 });
    });

    this.on('GET', `/containers/${ID}/json`, async ({ res, params }) => sendJson(res, 200, await containerInspect(s, s.record(params[0]!))));

    this.on('POST', `/containers/${ID}/start`, async ({ res, params }) => {
      const record = s.record(params[0]!);
      if (record.state === 'running') return sendEmpty(res, 304);
      try {
        await s.start(LOCAL, record.id);
      } catch (err) {
        if (record.autoRemove) await s.remove(LOCAL, record.id, { force: true }).catch(() => undefined);
        throw err;
      }
      sendEmpty(res, 204);
    });

    const timeout = (q: URLSearchParams): number | undefined => {
      const t = q.get('t') ?? q.get('timeout');
      if (t === null || t === '') return undefined;
      const n = Number(t);
      if (!Number.isInteger(n)) throw badRequest(`invalid value for t: ${t}`);
      return n < 0 ? 365 * 24 * 3600 : n;
    };
    this.on('POST', `/containers/${ID}/stop`, async ({ res, params, query }) => {
      const record = s.record(params[0]!);
      if (record.state !== 'running' && record.state !== 'restarting') return sendEmpty(res, 304);
      await s.stop(LOCAL, record.id, timeout(query));
      sendEmpty(res, 204);
    });
    this.on('POST', `/containers/${ID}/restart`, async ({ res, params, query }) => {
      await s.restart(LOCAL, s.record(params[0]!).id, timeout(query));
      sendEmpty(res, 204);
    });
    this.on('POST', `/containers/${ID}/kill`, async ({ res, params, query }) => {
      const record = s.record(params[0]!);
      const signal = query.get('signal') || 'KILL';
      try {
        parseSignal(signal);
      } catch {
        throw badRequest(`Invalid signal: ${signal}`);
      }
      if (!s.liveIds().has(record.id)) throw new DockerError(409, `Cannot kill container: ${params[0]}: container ${record.id} is not running`);
      await s.kill(LOCAL, record.id, signal);
      sendEmpty(res, 204);
    });
    this.on('POST', `/containers/${ID}/wait`, async ({ req, res, params, query }) => {
      const record = s.record(params[0]!);
      const condition = (query.get('condition') || 'not-running') as WaitCondition;
      if (!['not-running', 'next-exit', 'removed'].includes(condition)) throw badRequest(`invalid condition: "${condition}"`);
      const result = s.wait(LOCAL, record.id, condition);
      // Headers go out now: the CLI waits for them before it starts the container.
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.flushHeaders();
      const closed = new Promise<null>((resolve) => req.socket.once('close', () => resolve(null)));
      const r = await Promise.race([result, closed]);
      if (r) res.end(JSON.stringify({ StatusCode: r.statusCode, Error: null }) + '\n');
    });
    this.on('POST', `/containers/${ID}/rename`, async ({ res, params, query }) => {
      const name = query.get('name');
      if (!name) throw badRequest('a new name is required');
      await s.rename(LOCAL, s.record(params[0]!).id, checkContainerName(name));
      sendEmpty(res, 204);
    });
    this.on('POST', `/containers/${ID}/resize`, ({ res, params, query }) => {
      const { h, w } = dims(query);
      s.resize(LOCAL, s.record(params[0]!).id, h, w);
      sendEmpty(res, 200);
    });
    this.on('DELETE', `/containers/${ID}`, async ({ res, params, query }) => {
      const record = s.record(params[0]!);
      try {
        await s.remove(LOCAL, record.id, { force: flag(query, 'force'), volumes: flag(query, 'v') });
      } catch (err) {
        if (isBosonError(err, 'CONTAINER_RUNNING')) throw new DockerError(409, `cannot remove container "/${record.name}": container is running: stop the container before removing or force remove`);
        throw err;
      }
      sendEmpty(res, 204);
    });

    this.on('GET', `/containers/${ID}/logs`, async ({ req, res, params, query }) => {
      const record = s.record(params[0]!);
      const stdout = flag(query, 'stdout');
      const stderr = flag(query, 'stderr');
      if (!stdout && !stderr) throw badRequest('Bad parameters: you must choose at least one stream');
      const tailRaw = query.get('tail');
      const tail = tailRaw === null || tailRaw === '' || tailRaw === 'all' ? undefined : Number(tailRaw);
      if (tail !== undefined && (!Number.isInteger(tail) || tail < 0)) throw badRequest(`invalid value for "tail": ${tailRaw}`);
      const q = { stdout, stderr, sinceNs: nonZero(parseTime(query.get('since'))), untilNs: nonZero(parseTime(query.get('until'))), tail };
      const timestamps = flag(query, 'timestamps');
      const tty = record.config.tty;
      res.writeHead(200, { 'Content-Type': tty ? 'application/vnd.docker.raw-stream' : 'application/vnd.docker.multiplexed-stream' });
      res.flushHeaders();
      const abort = new AbortController();
      res.on('close', () => abort.abort());
      const sink = frameSink((b) => void res.write(b), tty);
      await s.logs(LOCAL, record.id, q, flag(query, 'follow'), (l) => {
        const data = timestamps ? Buffer.concat([Buffer.from(`${rfc3339Nano(l.timeNs)} `), l.data]) : l.data;
        if (l.stream === 'stdout') sink.stdout(data);
        else sink.stderr(data);
      }, abort.signal);
      res.end();
      void req;
    });

    this.on('GET', `/containers/${ID}/stats`, async ({ req, res, params, query }) => {
      const record = s.record(params[0]!);
      const stream = flag(query, 'stream', true);
      const oneShot = flag(query, 'one-shot');
      const sample = async (): Promise<{ stats: Awaited<ReturnType<MachineRuntime['stats']>>; system: number }> => ({ stats: await s.stats(LOCAL, record.id), system: await systemCpuNs() });
      const doc = (cur: Awaited<ReturnType<typeof sample>>, pre: Awaited<ReturnType<typeof sample>> | null): Record<string, unknown> => statsJson(record, cur, pre);
      if (!stream) {
        let pre: Awaited<ReturnType<typeof sample>> | null = null;
        if (!oneShot && s.liveIds().has(record.id)) {
          pre = await sample();
          await new Promise((r) => setTimeout(r, 500));
        }
        sendJson(res, 200, doc(await sample(), pre));
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/json' });
      let pre: Awaited<ReturnType<typeof sample>> | null = null;
      let open = true;
      req.socket.once('close', () => (open = false));
      while (open) {
        const cur = await sample();
        res.write(JSON.stringify(doc(cur, pre)) + '\n');
        pre = cur;
        await new Promise((r) => setTimeout(r, 1000));
        if (!s.liveIds().has(record.id) && !open) break;
      }
      res.end();
    });

    this.on('GET', `/containers/${ID}/top`, async ({ res, params, query }) => {
      const record = s.record(params[0]!);
      if (!s.liveIds().has(record.id)) throw new DockerError(409, `container ${record.id} is not running`);
      const psArgs = (query.get('ps_args') ?? '').trim();
      const argv = ['ps', ...(psArgs ? psArgs.split(/\s+/) : [])];
      const r = await guestExec(s, record.id, argv);
      if (r.code !== 0) throw new DockerError(500, `ps in the container failed (exit ${r.code}): ${r.stderr.trim()}`);
      const lines = r.stdout.toString('utf8').split('\n').filter((l) => l.trim() !== '');
      const titles = (lines.shift() ?? '').trim().split(/\s+/);
      const self = argv.join(' ');
      const processes = lines.map((l) => {
        const parts = l.trim().split(/\s+/);
        return [...parts.slice(0, titles.length - 1), parts.slice(titles.length - 1).join(' ')];
      }).filter((p) => {
        // Docker lists the container's processes: not the guest kernel's threads, boson-init (PID 1) or this ps.
        const cmd = p[p.length - 1] ?? '';
        return cmd !== self && !/^\[.*\]$/.test(cmd) && !(p[0] === '1' && cmd === '/init');
      });
      sendJson(res, 200, { Titles: titles, Processes: processes });
    });

    this.on('HEAD', `/containers/${ID}/archive`, async ({ res, params, query }) => {
      const stat = await archiveStat(s, this.runningRecord(params[0]!), requiredPath(query));
      res.writeHead(200, { 'X-Docker-Container-Path-Stat': stat, 'Content-Length': 0 });
      res.end();
    });
    this.on('GET', `/containers/${ID}/archive`, async ({ res, params, query }) => archiveGet(s, this.runningRecord(params[0]!), requiredPath(query), res));
    this.on('PUT', `/containers/${ID}/archive`, async ({ req, res, params, query }) => {
      await archivePut(s, this.runningRecord(params[0]!), requiredPath(query), req, flag(query, 'copyUIDGID'));
      sendEmpty(res, 200);
    });

    // Attach without a connection upgrade (SDKs): the stream is the response body.
    this.on('POST', `/containers/${ID}/attach`, async ({ req, res, params, query }) => {
      const record = s.record(params[0]!);
      const opts = attachOptions(query);
      res.writeHead(200, { 'Content-Type': record.config.tty ? 'application/vnd.docker.raw-stream' : 'application/vnd.docker.multiplexed-stream' });
      res.flushHeaders();
      const abort = new AbortController();
      res.on('close', () => abort.abort());
      await runAttach(s, record, { ...opts, stdin: false }, (b) => void res.write(b), null, abort.signal);
      res.end();
      void req;
    });

    // ---- exec -----------------------------------------------------------------------------------------------
    this.on('POST', `/containers/${ID}/exec`, async (ctx) => {
      const b = await jsonBody(ctx);
      const record = s.record(ctx.params[0]!);
      const cmd = Array.isArray(b.Cmd) ? b.Cmd : typeof b.Cmd === 'string' ? [b.Cmd] : [];
      if (cmd.length === 0 || !cmd.every((c) => typeof c === 'string')) throw badRequest('No exec command specified');
      if (b.Privileged === true) throw notSupported('exec --privileged', 'a micro-VM has no host privileges to grant');
      if (!s.liveIds().has(record.id)) throw new DockerError(409, `container ${record.id} is not running`);
      const env = Array.isArray(b.Env) ? b.Env.filter((e): e is string => typeof e === 'string') : [];
      const exec = s.newExec(record.id, {
        argv: cmd as string[], env, cwd: typeof b.WorkingDir === 'string' && b.WorkingDir ? b.WorkingDir : undefined,
        user: typeof b.User === 'string' && b.User ? b.User : undefined, tty: b.Tty === true, stdin: b.AttachStdin === true,
      });
      sendJson(ctx.res, 201, { Id: exec.id });
    });
    this.on('GET', `/exec/${ID}/json`, ({ res, params }) => {
      const e = s.getExec(params[0]!);
      sendJson(res, 200, {
        CanRemove: false, ContainerID: e.containerId, DetachKeys: '', ExitCode: e.exitCode, ID: e.id, OpenStderr: true, OpenStdin: e.stdin, OpenStdout: true,
        ProcessConfig: { arguments: e.argv.slice(1), entrypoint: e.argv[0], privileged: false, tty: e.tty, user: e.user ?? '' },
        Running: e.running, Pid: e.pid ?? 0,
      });
    });
    this.on('POST', `/exec/${ID}/resize`, ({ res, params, query }) => {
      s.getExec(params[0]!);
      const { h, w } = dims(query);
      this.execResize.get(params[0]!)?.(h, w);
      sendEmpty(res, 200);
    });
    this.on('POST', `/exec/${ID}/start`, async (ctx) => {
      const b = await jsonBody(ctx);
      const exec = s.getExec(ctx.params[0]!);
      if (exec.running || exec.exitCode !== null) throw new DockerError(409, `exec ${exec.id} has already run`);
      if (b.Detach === true) {
        const ctl = await s.startExec(LOCAL, exec.id, { stdout: () => undefined, stderr: () => undefined });
        this.trackExec(exec.id, ctl.resize, ctl.exit);
        return sendEmpty(ctx.res, 200);
      }
      const { res } = ctx;
      res.writeHead(200, { 'Content-Type': exec.tty ? 'application/vnd.docker.raw-stream' : 'application/vnd.docker.multiplexed-stream' });
      res.flushHeaders();
      const ctl = await s.startExec(LOCAL, exec.id, frameSink((d) => void res.write(d), exec.tty));
      this.trackExec(exec.id, ctl.resize, ctl.exit);
      if (exec.stdin) ctl.closeStdin();
      await ctl.exit;
      res.end();
    });

    // ---- images ---------------------------------------------------------------------------------------------
    this.on('GET', '/images/json', async ({ res, query }) => {
      const filters = parseFilters(query, ['dangling', 'reference', 'label', 'before', 'since']);
      let images = await s.imageService.list(LOCAL);
      const refs = filters.get('reference') ?? [];
      if (refs.length > 0) images = images.filter((i) => i.references.some((r) => refs.some((f) => referenceMatches(familiarName(r), f))));
      const dangling = filters.get('dangling')?.[0];
      if (dangling !== undefined) images = images.filter((i) => (i.references.length === 0) === (dangling === 'true' || dangling === '1'));
      const labels = filters.get('label') ?? [];
      if (labels.length > 0) images = images.filter((i) => labels.every((l) => {
        const eq = l.indexOf('=');
        return eq < 0 ? l in (i.config.labels ?? {}) : i.config.labels?.[l.slice(0, eq)] === l.slice(eq + 1);
      }));
      const counts = new Map<string, number>();
      for (const r of await s.records(true)) counts.set(r.imageId, (counts.get(r.imageId) ?? 0) + 1);
      sendJson(res, 200, images.map((i) => imageSummary(i, counts.get(i.id) ?? 0)));
    });
    this.on('POST', '/images/create', async ({ req, res, query }) => {
      if (query.get('fromSrc')) throw notSupported('docker import', 'images come from registries, OCI layouts and docker-save archives (boson image import)');
      const reference = pullReference(query.get('fromImage') ?? '', query.get('tag') ?? '');
      await pullStream(s, res, reference, { platform: query.get('platform') ?? undefined, auth: registryAuth(req.headers['x-registry-auth']) });
    });
    this.on('POST', '/images/prune', async ({ res }) => {
      const r = await s.imageService.prune(LOCAL);
      sendJson(res, 200, { ImagesDeleted: r.images.map((id) => ({ Deleted: withSha(id) })), SpaceReclaimed: r.bytes });
    });
    this.on('GET', '/images/(.+)/json', async ({ res, params }) => sendJson(res, 200, imageInspect(await s.imageService.inspect(LOCAL, params[0]!))));
    this.on('GET', '/images/(.+)/history', async ({ res, params }) => {
      const img = await s.imageService.inspect(LOCAL, params[0]!);
      const created = img.created ? Math.floor(Date.parse(img.created) / 1000) : 0;
      sendJson(res, 200, img.layers.map((l, i) => ({ Id: i === img.layers.length - 1 ? withSha(img.id) : '<missing>', Created: created, CreatedBy: '', Tags: i === img.layers.length - 1 ? img.references.map(familiarName) : null, Size: l.size, Comment: '' })).reverse());
    });
    this.on('POST', '/images/(.+)/tag', async ({ res, params, query }) => {
      const repo = query.get('repo');
      if (!repo) throw badRequest('repository name (repo) is required');
      const tag = query.get('tag') || 'latest';
      await s.imageService.tag(LOCAL, params[0]!, `${normalizeDockerRepo(repo)}:${tag}`);
      sendEmpty(res, 201);
    });
    this.on('POST', '/images/(.+)/push', () => {
      throw notSupported('docker push', 'Boson keeps flattened micro-VM root disks, not pushable layers');
    });
    this.on('DELETE', '/images/(.+)', async ({ res, params, query }) => {
      const r = await s.imageService.remove(LOCAL, params[0]!, { force: flag(query, 'force') });
      sendJson(res, 200, [...r.untagged.map((u) => ({ Untagged: familiarName(u) })), ...(r.deleted ? [{ Deleted: withSha(r.deleted) }] : [])]);
    });

    // ---- networks -------------------------------------------------------------------------------------------
    this.on('GET', '/networks', async ({ res }) => sendJson(res, 200, (await s.networks.list()).map(networkJson)));
    this.on('GET', `/networks/${ID}`, async ({ res, params }) => sendJson(res, 200, networkJson(await s.networks.get(params[0]!))));
    this.on('POST', '/networks/create', async (ctx) => {
      const b = await jsonBody(ctx);
      const name = typeof b.Name === 'string' ? b.Name : '';
      if (!name) throw badRequest('network name is required');
      const driver = typeof b.Driver === 'string' ? b.Driver : 'bridge';
      if (driver !== '' && driver !== 'bridge') throw notSupported(`network driver "${driver}"`, 'Boson networks are bridges');
      const ipam = b.IPAM as { Config?: Array<{ Subnet?: string; Gateway?: string }> } | undefined;
      const cfg = ipam?.Config?.[0];
      const n = await s.networks.create(name, { subnet: cfg?.Subnet || undefined, gateway: cfg?.Gateway || undefined, internal: b.Internal === true, labels: (b.Labels ?? {}) as Record<string, string> });
      sendJson(ctx.res, 201, { Id: n.id, Warning: '' });
    });
    this.on('DELETE', `/networks/${ID}`, async ({ res, params }) => {
      await s.networks.remove(params[0]!);
      sendEmpty(res, 204);
    });
    this.on('POST', '/networks/prune', async ({ res }) => {
      const deleted: string[] = [];
      for (const n of await s.networks.list()) {
        if (n.builtin) continue;
        try {
          await s.networks.remove(n.id);
          deleted.push(n.name);
        } catch (err) {
          if (!isBosonError(err, 'NETWORK_IN_USE')) throw err;
        }
      }
      sendJson(res, 200, { NetworksDeleted: deleted });
    });

    // ---- volumes --------------------------------------------------------------------------------------------
    this.on('GET', '/volumes', async ({ res, query }) => {
      const filters = parseFilters(query, ['name', 'dangling', 'label', 'driver']);
      const out = [];
      for (const v of s.volumes.list()) {
        const names = filters.get('name') ?? [];
        if (names.length > 0 && !names.some((n) => v.name.includes(n))) continue;
        const dangling = filters.get('dangling')?.[0];
        if (dangling !== undefined && ((await s.volumeUsers(v.name)).length === 0) !== (dangling === 'true' || dangling === '1')) continue;
        const labels = filters.get('label') ?? [];
        if (!labels.every((l) => {
          const eq = l.indexOf('=');
          return eq < 0 ? l in v.labels : v.labels[l.slice(0, eq)] === l.slice(eq + 1);
        })) continue;
        const drivers = filters.get('driver') ?? [];
        if (drivers.length > 0 && !drivers.includes('local')) continue;
        out.push(volumeJson(v));
      }
      sendJson(res, 200, { Volumes: out, Warnings: null });
    });
    this.on('POST', '/volumes/create', async (ctx) => {
      const b = await jsonBody(ctx);
      const driver = typeof b.Driver === 'string' ? b.Driver : '';
      if (driver !== '' && driver !== 'local') throw notSupported(`volume driver "${driver}"`, 'Boson volumes are ext4 disks of the "local" driver');
      let sizeBytes: number | undefined;
      const opts = b.DriverOpts && typeof b.DriverOpts === 'object' ? b.DriverOpts as Record<string, unknown> : {};
      for (const [k, v] of Object.entries(opts)) {
        if (k !== 'size') throw badRequest(`invalid option key: "${k}" (Boson volumes take only size)`);
        try {
          sizeBytes = parseMemory(String(v)) * 1024 * 1024;
        } catch {
          throw badRequest(`invalid size option: ${String(v)}`);
        }
      }
      const labels = b.Labels && typeof b.Labels === 'object' ? b.Labels as Record<string, string> : undefined;
      const v = await s.volumes.create(typeof b.Name === 'string' ? b.Name : '', { labels, sizeBytes });
      sendJson(ctx.res, 201, volumeJson(v));
    });
    this.on('POST', '/volumes/prune', async ({ res, query }) => {
      const filters = parseFilters(query, ['all', 'label']);
      const all = ['true', '1'].includes(filters.get('all')?.[0] ?? '');
      const deleted: string[] = [];
      let bytes = 0;
      for (const v of s.volumes.list()) {
        if (!v.anonymous && !all) continue;
        if ((await s.volumeUsers(v.name)).length > 0) continue;
        const size = await s.volumes.usage(v.name);
        await s.volumes.remove(v.name, []);
        deleted.push(v.name);
        bytes += size;
      }
      sendJson(res, 200, { VolumesDeleted: deleted, SpaceReclaimed: bytes });
    });
    this.on('GET', '/volumes/([^/]+)', async ({ res, params }) => {
      const v = s.volumes.get(params[0]!);
      sendJson(res, 200, { ...volumeJson(v), UsageData: { Size: await s.volumes.usage(v.name), RefCount: (await s.volumeUsers(v.name)).length } });
    });
    this.on('DELETE', '/volumes/([^/]+)', async ({ res, params }) => {
      const name = params[0]!;
      s.volumes.get(name);
      const users = await s.volumeUsers(name);
      if (users.length > 0) throw new DockerError(409, `remove ${name}: volume is in use - [${users.join(', ')}]`);
      await s.volumes.remove(name, users);
      sendEmpty(res, 204);
    });
  }

  private runningRecord(ref: string): ContainerRecord {
    const record = this.service.record(ref);
    if (!this.service.liveIds().has(record.id)) {
      throw new DockerError(409, `container ${record.name} is not running: Boson copies files through the container's running micro-VM, so start it first`);
    }
    return record;
  }

  private trackExec(id: string, resize: (r: number, c: number) => void, exit: Promise<number>): void {
    this.execResize.set(id, resize);
    void exit.finally(() => this.execResize.delete(id));
  }

  /** Connection upgrades: attach and exec start. */
  /** Ends every hijacked connection (daemon shutdown). */
  closeStreams(): void {
    for (const s of this.hijacked) s.destroy();
    this.hijacked.clear();
  }

  private async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => undefined);
    this.hijacked.add(socket);
    socket.once('close', () => this.hijacked.delete(socket));
    socket.pause();
    let upgraded = false;
    try {
      const url = new URL(req.url ?? '/', 'http://docker');
      const { version, path } = splitVersion(url.pathname);
      const multiplexedType = (tty: boolean): boolean => !tty && Number(version.split('.')[1] ?? 0) >= 42;
      const attach = /^\/containers\/([^/]+)\/attach$/.exec(path);
      const execStart = /^\/exec\/([^/]+)\/start$/.exec(path);
      if (attach && req.method === 'POST') {
        const record = this.service.record(decodeURIComponent(attach[1]!));
        const opts = attachOptions(url.searchParams);
        const { rest } = await readUpgradeBody(req, socket, head);
        writeUpgraded(socket, multiplexedType(record.config.tty));
        upgraded = true;
        if (rest.length > 0) socket.unshift(rest);
        const abort = new AbortController();
        socket.on('close', () => abort.abort());
        await runAttach(this.service, record, opts, (b) => void (socket.writable && socket.write(b)), socket, abort.signal);
        socket.end();
      } else if (execStart && req.method === 'POST') {
        const exec = this.service.getExec(decodeURIComponent(execStart[1]!));
        const { body, rest } = await readUpgradeBody(req, socket, head);
        const b = parseJsonObject(body);
        if (exec.running || exec.exitCode !== null) throw new DockerError(409, `exec ${exec.id} has already run`);
        if (!this.service.liveIds().has(exec.containerId)) throw new DockerError(409, `container ${exec.containerId} is not running`);
        const tty = exec.tty || b.Tty === true;
        writeUpgraded(socket, multiplexedType(tty));
        upgraded = true;
        const ctl = await this.service.startExec(LOCAL, exec.id, frameSink((d) => void (socket.writable && socket.write(d)), exec.tty));
        this.trackExec(exec.id, ctl.resize, ctl.exit);
        pipeClientStdin(socket, ctl, exec.stdin, rest);
        await ctl.exit;
        socket.end();
      } else {
        throw unsupportedRoute(path) ?? new DockerError(404, 'page not found');
      }
    } catch (err) {
      if (!upgraded) socketError(socket, err);
      else socket.end();
    }
  }
}

function nonZero(ns: bigint | undefined): bigint | undefined {
  return ns === 0n ? undefined : ns;
}

function dims(q: URLSearchParams): { h: number; w: number } {
  const h = Number(q.get('h') ?? 0);
  const w = Number(q.get('w') ?? 0);
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 0 || w < 0 || h > 65535 || w > 65535) throw badRequest(`invalid terminal size: ${q.get('h')}x${q.get('w')}`);
  return { h, w };
}

function attachOptions(q: URLSearchParams): AttachOptions {
  return { stdin: flag(q, 'stdin'), stdout: flag(q, 'stdout'), stderr: flag(q, 'stderr'), logs: flag(q, 'logs'), stream: flag(q, 'stream') };
}

function requiredPath(q: URLSearchParams): string {
  const p = q.get('path');
  if (!p) throw badRequest('path is required');
  return p;
}

function referenceMatches(ref: string, pattern: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`);
  const colon = ref.lastIndexOf(':');
  const repo = colon > ref.lastIndexOf('/') ? ref.slice(0, colon) : ref;
  return re.test(ref) || re.test(repo);
}

function volumeJson(v: { name: string; created: string; labels: Record<string, string>; mountpoint: string; sizeBytes: number }): Record<string, unknown> {
  return { CreatedAt: v.created, Driver: 'local', Labels: v.labels, Mountpoint: v.mountpoint, Name: v.name, Options: { size: String(v.sizeBytes) }, Scope: 'local' };
}

async function systemCpuNs(): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const line = (await readFile('/proc/stat', 'utf8').catch(() => '')).split('\n')[0] ?? '';
  const ticks = line.split(/\s+/).slice(1).map(Number).filter(Number.isFinite).reduce((a, b) => a + b, 0);
  return Math.round((ticks / 100) * 1e9);
}

function statsJson(record: ContainerRecord, cur: { stats: { cpuNs: number; memoryBytes: number; memoryLimitBytes: number; pids: number; read: string }; system: number }, pre: typeof cur | null): Record<string, unknown> {
  const cpu = (x: typeof cur | null): Record<string, unknown> => ({
    cpu_usage: { total_usage: x?.stats.cpuNs ?? 0, usage_in_kernelmode: 0, usage_in_usermode: x?.stats.cpuNs ?? 0 },
    system_cpu_usage: x?.system ?? 0,
    online_cpus: x ? hostCpuCount() : 0,
    throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 },
  });
  return {
    read: cur.stats.read,
    preread: pre?.stats.read ?? '0001-01-01T00:00:00Z',
    pids_stats: { current: cur.stats.pids },
    blkio_stats: { io_service_bytes_recursive: null, io_serviced_recursive: null, io_queue_recursive: null, io_service_time_recursive: null, io_wait_time_recursive: null, io_merged_recursive: null, io_time_recursive: null, sectors_recursive: null },
    num_procs: 0,
    storage_stats: {},
    cpu_stats: cpu(cur),
    precpu_stats: cpu(pre),
    memory_stats: { usage: cur.stats.memoryBytes, limit: cur.stats.memoryLimitBytes, stats: {} },
    name: `/${record.name}`,
    id: record.id,
  };
}

/** Docker's network JSON for a Boson network. */
function networkJson(n: { id: string; name: string; created: string; subnet: string; gateway: string; internal: boolean; labels: Record<string, string> }): Record<string, unknown> {
  return {
    Name: n.name, Id: n.id, Created: n.created, Scope: 'local', Driver: 'bridge', EnableIPv6: false,
    IPAM: { Driver: 'default', Options: null, Config: [{ Subnet: n.subnet, Gateway: n.gateway }] },
    Internal: n.internal, Attachable: false, Ingress: false, ConfigFrom: { Network: '' }, ConfigOnly: false, Containers: {}, Options: {}, Labels: n.labels,
  };
}

/** Docker endpoints Boson knows it does not have: a clear 501 instead of "page not found". */
function unsupportedRoute(path: string): DockerError | null {
  const rules: Array<[RegExp, () => DockerError]> = [
    [/^\/build(\/|$)/, () => notSupported('docker build', 'Boson runs images built elsewhere; build with BuildKit or another builder and pull or import the result')],
    [/^\/commit$/, () => notSupported('docker commit', 'a container\'s writable layer is a disk inside its micro-VM')],
    [/^\/containers\/[^/]+\/(pause|unpause)$/, () => notSupported('pausing containers', 'a micro-VM is not frozen through a cgroup freezer')],
    [/^\/containers\/[^/]+\/update$/, () => notSupported('docker update', 'a micro-VM\'s memory and CPUs are fixed when it boots')],
    [/^\/containers\/[^/]+\/export$/, () => notSupported('docker export')],
    [/^\/containers\/[^/]+\/changes$/, () => notSupported('docker diff')],
    [/^\/containers\/[^/]+\/checkpoints/, () => notSupported('checkpoints')],
    [/^\/images\/(get|load|search)$/, () => notSupported('docker save/load/search', 'use boson image import for OCI layouts and docker-save archives')],
    [/^\/images\/.+\/get$/, () => notSupported('docker save')],
    [/^\/(swarm|services|nodes|tasks|secrets|configs)(\/|$)/, () => notSupported('swarm mode')],
    [/^\/plugins(\/|$)/, () => notSupported('plugins')],
    [/^\/(session|grpc)$/, () => notSupported('BuildKit sessions')],
    [/^\/distribution\//, () => notSupported('distribution inspect')],
    [/^\/networks\/[^/]+\/(connect|disconnect)$/, () => notSupported('connecting a container to another network', 'a running micro-VM would need a network card hot-plugged')],
  ];
  for (const [re, make] of rules) if (re.test(path)) return make();
  return null;
}

/** Where the Docker API socket lives: `<run dir>/docker.sock`. */
export function dockerSocketPath(paths: BosonPaths): string {
  return `${paths.runDir}/docker.sock`;
}
