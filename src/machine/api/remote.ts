/**
 * The typed client of a machine: the whole port (MachineContainers, MachineImages, MachineVolumes,
 * MachineNetworks, MachineEvents) over the daemon's REST API. Answers are typed by the port's schemas, the same
 * ones the server validates and documents with; problem answers become the typed BosonErrors the machine raised.
 * The calls that stream a process's I/O (attach, run, exec start) ride the connection upgrades of MachineClient;
 * logs and events its NDJSON streams. For a terminal that pumps its own bytes (raw mode, Ctrl-C), the raw upgraded
 * streams are offered too (openAttach, openExec, openExecStart, openRun).
 */
import type { Duplex } from 'node:stream';
import { BosonError } from '../../common/index.ts';
import type {
  Attachment,
  EventQuery,
  ExecSession,
  ImageImportSource,
  ImageProgressListener,
  LogLine,
  LogQuery,
  Machine,
  MachineContainers,
  MachineEvents,
  MachineImages,
  MachineNetworks,
  MachineVolumes,
  ProcessControls,
  RunOptions,
  RunSession,
  StreamSink,
} from '../port/machine.ts';
import type {
  Container,
  ContainerSpec,
  ContainerStats,
  ContainerUpdate,
  SuspendResult,
  Event,
  ExecInstance,
  ExecSpec,
  Image,
  ImageInspect,
  ImagePruneResult,
  ImagePullRequest,
  ImagePullResult,
  ImagePullStreamItem,
  ImageRemoveResult,
  LogEntry,
  Network,
  NetworkConnectOptions,
  NetworkCreateRequest,
  NetworkInspect,
  NetworkPruneResult,
  RequestContext,
  Volume,
  VolumeCreateRequest,
  VolumeInspect,
  VolumePruneResult,
  WaitCondition,
  WaitResult,
} from '../port/schemas.ts';
import { StreamDemuxer, errorFrom, execStatusError, type MachineClient } from './client.ts';
import type { ExecStatus } from './exec-stream.ts';

const seg = (ref: string): string => encodeURIComponent(ref);
const qs = (query: Record<string, string | undefined>): string => {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) q.set(k, v);
  return q.size > 0 ? `?${q}` : '';
};

/** MachineImages over `/v1/images`. */
export class RemoteImages implements MachineImages {
  constructor(private readonly client: MachineClient) {}

  async pull(_ctx: RequestContext, request: ImagePullRequest, onProgress?: ImageProgressListener): Promise<ImagePullResult> {
    let result: ImagePullResult | undefined;
    let failure: BosonError | undefined;
    await this.client.stream<ImagePullStreamItem>(
      '/v1/images/pull',
      (item) => {
        if ('progress' in item) onProgress?.(item.progress);
        else if ('result' in item) result = item.result;
        else failure = errorFrom(item.error.status, JSON.stringify(item.error));
      },
      undefined,
      { body: request },
    );
    if (failure) throw failure;
    if (!result) throw new BosonError('DAEMON_UNAVAILABLE', `the pull of ${request.reference} ended without a result`);
    return result;
  }

  async import(
    _ctx: RequestContext,
    source: ImageImportSource,
    options: { tag?: string; onProgress?: ImageProgressListener } = {},
  ): Promise<Image[]> {
    const query = new URLSearchParams();
    if (options.tag !== undefined) query.set('tag', options.tag);
    if ('path' in source) {
      query.set('path', source.path);
      return this.client.request<Image[]>('POST', `/v1/images/import?${query}`);
    }
    return this.client.request<Image[]>('POST', `/v1/images/import?${query}`, source.tar, 'application/x-tar');
  }

  list(_ctx: RequestContext): Promise<Image[]> {
    return this.client.request<Image[]>('GET', '/v1/images');
  }

  inspect(_ctx: RequestContext, ref: string): Promise<ImageInspect> {
    return this.client.request<ImageInspect>('GET', `/v1/images/${seg(ref)}`);
  }

  tag(_ctx: RequestContext, ref: string, name: string): Promise<Image> {
    return this.client.request<Image>('POST', `/v1/images/${seg(ref)}/tag?${new URLSearchParams({ name })}`);
  }

  remove(_ctx: RequestContext, ref: string, options: { force?: boolean } = {}): Promise<ImageRemoveResult> {
    return this.client.request<ImageRemoveResult>('DELETE', `/v1/images/${seg(ref)}${options.force ? '?force=1' : ''}`);
  }

  prune(_ctx: RequestContext): Promise<ImagePruneResult> {
    return this.client.request<ImagePruneResult>('POST', '/v1/images/prune');
  }
}

/** MachineVolumes over `/v1/volumes`. */
export class RemoteVolumes implements MachineVolumes {
  constructor(private readonly client: MachineClient) {}

  create(_ctx: RequestContext, request: VolumeCreateRequest): Promise<Volume> {
    return this.client.request<Volume>('POST', '/v1/volumes', request);
  }

  list(_ctx: RequestContext): Promise<Volume[]> {
    return this.client.request<Volume[]>('GET', '/v1/volumes');
  }

  inspect(_ctx: RequestContext, name: string): Promise<VolumeInspect> {
    return this.client.request<VolumeInspect>('GET', `/v1/volumes/${seg(name)}`);
  }

  async remove(_ctx: RequestContext, name: string): Promise<void> {
    await this.client.request('DELETE', `/v1/volumes/${seg(name)}`);
  }

  prune(_ctx: RequestContext, options: { all?: boolean } = {}): Promise<VolumePruneResult> {
    return this.client.request<VolumePruneResult>('POST', `/v1/volumes/prune${options.all ? '?all=1' : ''}`);
  }
}

/** MachineNetworks over `/v1/networks`. */
export class RemoteNetworks implements MachineNetworks {
  constructor(private readonly client: MachineClient) {}

  create(_ctx: RequestContext, request: NetworkCreateRequest): Promise<Network> {
    return this.client.request<Network>('POST', '/v1/networks', request);
  }

  list(_ctx: RequestContext): Promise<Network[]> {
    return this.client.request<Network[]>('GET', '/v1/networks');
  }

  inspect(_ctx: RequestContext, ref: string): Promise<NetworkInspect> {
    return this.client.request<NetworkInspect>('GET', `/v1/networks/${seg(ref)}`);
  }

  async remove(_ctx: RequestContext, ref: string): Promise<void> {
    await this.client.request('DELETE', `/v1/networks/${seg(ref)}`);
  }

  async connect(_ctx: RequestContext, ref: string, container: string, options?: NetworkConnectOptions): Promise<void> {
    await this.client.request('POST', `/v1/networks/${seg(ref)}/connect`, options ? { container, options } : { container });
  }

  async disconnect(_ctx: RequestContext, ref: string, container: string): Promise<void> {
    await this.client.request('POST', `/v1/networks/${seg(ref)}/disconnect`, { container });
  }

  prune(_ctx: RequestContext): Promise<NetworkPruneResult> {
    return this.client.request<NetworkPruneResult>('POST', '/v1/networks/prune');
  }
}

/** Nanoseconds as the REST API's time query value (unix seconds with nine decimals). */
function timeQuery(ns: bigint | undefined): string | undefined {
  return ns === undefined ? undefined : `${ns / 1_000_000_000n}.${(ns % 1_000_000_000n).toString().padStart(9, '0')}`;
}

/** MachineEvents over `/v1/events`. */
export class RemoteEvents implements MachineEvents {
  constructor(private readonly client: MachineClient) {}

  async past(ctx: RequestContext, query: EventQuery = {}): Promise<Event[]> {
    const events: Event[] = [];
    // A range that has ended: the stream ends by itself once the log is read.
    const untilNs = query.untilNs ?? BigInt(Date.now()) * 1_000_000n;
    await this.follow(ctx, { ...query, sinceNs: query.sinceNs ?? 0n, untilNs }, (e) => void events.push(e), new AbortController().signal);
    return events;
  }

  async follow(_ctx: RequestContext, query: EventQuery, onEvent: (event: Event) => void, signal: AbortSignal): Promise<void> {
    const afterSeq = query.afterSeq ?? 0;
    await this.client.stream<Event>(
      `/v1/events${qs({ since: timeQuery(query.sinceNs), until: timeQuery(query.untilNs) })}`,
      (e) => {
        if (e.seq > afterSeq) onEvent(e);
      },
      signal,
    );
  }
}

/** Resolves when an upgraded stream has ended (closed, ended or failed). */
function ended(stream: Duplex): Promise<void> {
  return new Promise<void>((resolve) => {
    stream.on('close', resolve);
    stream.on('end', resolve);
    stream.on('error', () => resolve());
  });
}

/** A machine's containers over `/v1/containers`, `/v1/execs` and `/v1/run`; its other halves as members. */
export class RemoteMachine implements MachineContainers, Machine {
  readonly images: RemoteImages;
  readonly volumes: RemoteVolumes;
  readonly networks: RemoteNetworks;
  readonly events: RemoteEvents;

  constructor(readonly client: MachineClient) {
    this.images = new RemoteImages(client);
    this.volumes = new RemoteVolumes(client);
    this.networks = new RemoteNetworks(client);
    this.events = new RemoteEvents(client);
  }

  /** The container half (this object). */
  get containers(): MachineContainers {
    return this;
  }

  create(_ctx: RequestContext, spec: ContainerSpec): Promise<Container> {
    return this.client.request<Container>('POST', '/v1/containers', spec);
  }

  async start(_ctx: RequestContext, ref: string): Promise<void> {
    await this.client.request('POST', `/v1/containers/${seg(ref)}/start`);
  }

  async stop(_ctx: RequestContext, ref: string, timeoutSec?: number): Promise<void> {
    await this.client.request('POST', `/v1/containers/${seg(ref)}/stop${qs({ t: timeoutSec?.toString() })}`);
  }

  async restart(_ctx: RequestContext, ref: string, timeoutSec?: number): Promise<void> {
    await this.client.request('POST', `/v1/containers/${seg(ref)}/restart${qs({ t: timeoutSec?.toString() })}`);
  }

  async kill(_ctx: RequestContext, ref: string, signal?: string): Promise<void> {
    await this.client.request('POST', `/v1/containers/${seg(ref)}/kill${qs({ signal })}`);
  }

  async remove(_ctx: RequestContext, ref: string, options: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
    await this.client.request(
      'DELETE',
      `/v1/containers/${seg(ref)}${qs({ force: options.force ? '1' : undefined, v: options.volumes ? '1' : undefined })}`,
    );
  }

  suspend(_ctx: RequestContext, ref: string): Promise<SuspendResult> {
    return this.client.request<SuspendResult>('POST', `/v1/containers/${seg(ref)}/suspend`);
  }

  resume(_ctx: RequestContext, ref: string): Promise<SuspendResult> {
    return this.client.request<SuspendResult>('POST', `/v1/containers/${seg(ref)}/resume`);
  }

  async rename(_ctx: RequestContext, ref: string, newName: string): Promise<void> {
    await this.client.request('POST', `/v1/containers/${seg(ref)}/rename${qs({ name: newName })}`);
  }

  update(_ctx: RequestContext, ref: string, change: ContainerUpdate): Promise<Container> {
    return this.client.request<Container>('POST', `/v1/containers/${seg(ref)}/update`, change);
  }

  wait(_ctx: RequestContext, ref: string, condition: WaitCondition = 'not-running'): Promise<WaitResult> {
    return this.client.request<WaitResult>('POST', `/v1/containers/${seg(ref)}/wait?condition=${condition}`);
  }

  list(_ctx: RequestContext, options: { all?: boolean } = {}): Promise<Container[]> {
    return this.client.request<Container[]>('GET', `/v1/containers${options.all ? '?all=1' : ''}`);
  }

  inspect(_ctx: RequestContext, ref: string): Promise<Container> {
    return this.client.request<Container>('GET', `/v1/containers/${seg(ref)}`);
  }

  stats(_ctx: RequestContext, ref: string): Promise<ContainerStats> {
    return this.client.request<ContainerStats>('GET', `/v1/containers/${seg(ref)}/stats`);
  }

  async resize(_ctx: RequestContext, ref: string, rows: number, cols: number): Promise<void> {
    await this.client.request('POST', `/v1/containers/${seg(ref)}/resize?h=${rows}&w=${cols}`);
  }

  createExec(_ctx: RequestContext, ref: string, spec: ExecSpec): Promise<ExecInstance> {
    return this.client.request<ExecInstance>('POST', `/v1/containers/${seg(ref)}/execs`, spec);
  }

  inspectExec(_ctx: RequestContext, id: string): Promise<ExecInstance> {
    return this.client.request<ExecInstance>('GET', `/v1/execs/${seg(id)}`);
  }

  /** The raw upgraded attach stream of a running container (framed unless it has a TTY). */
  openAttach(_ctx: RequestContext, ref: string): Promise<Duplex> {
    return this.client.upgrade(`/v1/containers/${seg(ref)}/attach`);
  }

  /** The raw upgraded stream of an exec instance's start (framed unless it has a TTY). */
  openExecStart(_ctx: RequestContext, id: string): Promise<Duplex> {
    return this.client.upgrade(`/v1/execs/${seg(id)}/start`);
  }

  /** The raw upgraded stream of a one-request exec: framed output, then its status frame. */
  openExec(_ctx: RequestContext, ref: string, spec: ExecSpec): Promise<Duplex> {
    return this.client.upgrade(`/v1/containers/${seg(ref)}/exec`, spec);
  }

  /** The raw upgraded stream of a one-request run: a created frame, framed output and notices, then the status frame. */
  openRun(_ctx: RequestContext, spec: ContainerSpec, winsize?: { rows: number; cols: number }): Promise<Duplex> {
    return this.client.upgrade('/v1/run', { spec, winsize });
  }

  /** Stdin, its end and resizes of a process on an upgraded stream. */
  private controls(ctx: RequestContext, stream: Duplex, resizeRef: string | null): ProcessControls {
    return {
      stdin: (d) => void stream.write(d),
      closeStdin: () => void stream.end(),
      resize: (rows, cols) => void (resizeRef === null ? undefined : this.resize(ctx, resizeRef, rows, cols).catch(() => undefined)),
    };
  }

  async attach(ctx: RequestContext, ref: string, sink: StreamSink, signal: AbortSignal): Promise<Attachment> {
    const container = await this.inspect(ctx, ref);
    const stream = await this.openAttach(ctx, container.id);
    const demux = new StreamDemuxer(
      (d) => sink.stdout(d),
      (d) => sink.stderr(d),
    );
    stream.on('data', (d: Buffer) => (container.config.tty ? sink.stdout(d) : demux.push(d)));
    const abort = (): void => void stream.destroy();
    signal.addEventListener('abort', abort, { once: true });
    const done = ended(stream).finally(() => signal.removeEventListener('abort', abort));
    return { ...this.controls(ctx, stream, container.id), done };
  }

  async logs(
    _ctx: RequestContext,
    ref: string,
    query: LogQuery,
    follow: boolean,
    onLine: (line: LogLine) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const q = qs({
      stdout: query.stdout === false ? '0' : undefined,
      stderr: query.stderr === false ? '0' : undefined,
      sinceNs: query.sinceNs?.toString(),
      until: timeQuery(query.untilNs),
      tail: query.tail?.toString(),
      follow: follow ? '1' : undefined,
    });
    await this.client.stream<LogEntry>(
      `/v1/containers/${seg(ref)}/logs${q}`,
      (e) => onLine({ stream: e.stream, timeNs: BigInt(e.time), data: Buffer.from(e.data, 'base64') }),
      signal,
    );
  }

  async run(ctx: RequestContext, spec: ContainerSpec, sink: StreamSink, options: RunOptions = {}): Promise<RunSession> {
    const stream = await this.openRun(ctx, spec, options.winsize);
    return new Promise<RunSession>((resolveSession, rejectSession) => {
      let resolveExit!: (r: WaitResult) => void;
      let rejectExit!: (e: unknown) => void;
      const exit = new Promise<WaitResult>((res, rej) => ((resolveExit = res), (rejectExit = rej)));
      exit.catch(() => undefined);
      let session: RunSession | undefined;
      // Output that arrives while the created container is looked up waits for it (onCreated comes first).
      let held: Array<() => void> | null = null;
      const deliver = (f: () => void): void => void (held ? held.push(f) : f());
      let status: ExecStatus | undefined;
      const demux = new StreamDemuxer(
        (d) => deliver(() => sink.stdout(d)),
        (d) => deliver(() => sink.stderr(d)),
        (s) => (status = s),
        (payload) => {
          const { id } = JSON.parse(payload.toString('utf8')) as { id: string; name: string };
          held = [];
          void this.inspect(ctx, id).then(
            (container) => {
              options.onCreated?.(container);
              session = {
                ...this.controls(ctx, stream, id),
                container,
                signal: (signo) => void this.kill(ctx, id, String(signo)).catch(() => undefined),
                exit,
              };
              resolveSession(session);
              const queued = held ?? [];
              held = null;
              for (const f of queued) f();
            },
            (err: unknown) => {
              rejectSession(err);
              stream.destroy();
            },
          );
        },
        (text) => options.onNotice?.(text),
      );
      stream.on('data', (d: Buffer) => demux.push(d));
      void ended(stream).then(async () => {
        // Let a pending lookup of the created container finish first.
        while (held) await new Promise((r) => setTimeout(r, 5));
        const failure = !status
          ? new BosonError('DAEMON_UNAVAILABLE', 'lost the connection to the Boson daemon before the run ended')
          : status.exitCode === null
            ? execStatusError(status)
            : undefined;
        if (!session) rejectSession(failure ?? new BosonError('INTERNAL', 'the run ended before its container was created'));
        if (failure) rejectExit(failure);
        else resolveExit({ statusCode: status!.exitCode!, error: null });
      });
    });
  }

  async startExec(ctx: RequestContext, id: string, sink: StreamSink): Promise<ExecSession> {
    const exec = await this.inspectExec(ctx, id);
    const stream = await this.openExecStart(ctx, id);
    const demux = new StreamDemuxer(
      (d) => sink.stdout(d),
      (d) => sink.stderr(d),
    );
    stream.on('data', (d: Buffer) => (exec.tty ? sink.stdout(d) : demux.push(d)));
    const exit = ended(stream).then(async () => {
      const done = await this.inspectExec(ctx, id);
      if (done.exitCode === null) throw new BosonError('DAEMON_UNAVAILABLE', `the exec ${id.slice(0, 12)} ended without an exit code`);
      return done.exitCode;
    });
    exit.catch(() => undefined);
    return {
      ...this.controls(ctx, stream, null),
      // The REST API has no route for an exec's signals: a remote exec is ended through its container.
      signal: () => undefined,
      exit,
    };
  }
}
