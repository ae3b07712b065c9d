/**
 * Client of the machine daemon's REST API over its UNIX socket (node:http), or over its TCP endpoint with TLS and a
 * client certificate (node:https; the controller reaches the machines of its fleet so). Problem JSON answers become
 * the same typed BosonErrors the daemon raised; a socket nobody answers on is DAEMON_UNAVAILABLE.
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { BosonError, ERROR_CATALOGUE, errorFromProblem, type ErrorCode } from '../../common/index.ts';
import { EXEC_STATUS_STREAM, RUN_CREATED_STREAM, RUN_NOTICE_STREAM, type ExecStatus } from './exec-stream.ts';

/** The typed error of a problem JSON answer (`text`, with HTTP `status`): errorFromProblem of src/common. */
export function errorFrom(status: number, text: string): BosonError {
  return errorFromProblem(status, text);
}

/** A machine's TCP endpoint with mutual TLS: where it listens, the CA its certificate is checked against, our certificate. */
export interface MachineTlsEndpoint {
  host: string;
  port: number;
  ca: Buffer | string;
  cert: Buffer | string;
  key: Buffer | string;
  /** The identity (subject CN) its certificate must carry instead of a name or address matching host (a machine id). */
  identity?: string;
  /** A bound on each whole request in ms, connecting included (none by default; not for streams that follow). */
  timeoutMs?: number;
  /** A bound on connecting (TCP and TLS) in ms, for every request, streams included (none by default). */
  connectTimeoutMs?: number;
}

/**
 * A machine API served under another server's path (a controller serves each project's as one machine): where that
 * server is (a UNIX socket, or host and port: https with `tls`, else http), the path the machine's routes hang
 * under, and the headers every request carries (its bearer token).
 */
export interface MachineVia {
  /** The server as errors name it (its URL). */
  name: string;
  socketPath?: string;
  host?: string;
  port?: number;
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  /** The path the machine API's own paths are appended to (no trailing slash). */
  prefix: string;
  headers: Record<string, string>;
}

/** Talks to one daemon. */
export class MachineClient {
  /** `socketPath` names the daemon in errors; with `tcp`, requests go there over TLS instead of to the socket. */
  constructor(
    readonly socketPath: string,
    readonly tcp?: MachineTlsEndpoint,
    readonly via?: MachineVia,
  ) {}

  /** A client of a daemon's TCP endpoint over mutual TLS. */
  static overTls(endpoint: MachineTlsEndpoint): MachineClient {
    return new MachineClient(`https://${endpoint.host}:${endpoint.port}`, endpoint);
  }

  /** A client of a machine API served under another server's path (a controller's project). */
  static through(via: MachineVia): MachineClient {
    return new MachineClient(via.name, undefined, via);
  }

  /** http(s).request with the transport options of this client. */
  private send(options: http.RequestOptions, onResponse?: (res: IncomingMessage) => void): http.ClientRequest {
    const v = this.via;
    if (v) {
      const opts: https.RequestOptions = {
        ...options,
        path: `${v.prefix}${options.path ?? ''}`,
        headers: { ...(options.headers as Record<string, string> | undefined), ...v.headers },
        ...(v.socketPath ? { socketPath: v.socketPath } : { host: v.host, port: v.port }),
        ...(v.tls ? { ca: v.tls.ca, cert: v.tls.cert, key: v.tls.key, minVersion: 'TLSv1.2' as const } : {}),
        agent: false,
      };
      return v.tls ? https.request(opts, onResponse) : http.request(opts, onResponse);
    }
    const t = this.tcp;
    if (!t) return http.request({ ...options, socketPath: this.socketPath }, onResponse);
    const req = https.request(
      {
        ...options,
        host: t.host,
        port: t.port,
        ca: t.ca,
        cert: t.cert,
        key: t.key,
        ...(t.identity === undefined
          ? {}
          : {
              checkServerIdentity: (_host: string, cert: { subject?: { CN?: string | string[] } }) =>
                cert.subject?.CN === t.identity
                  ? undefined
                  : new Error(`the machine's certificate is not ${t.identity}'s (CN=${String(cert.subject?.CN)})`),
            }),
        agent: false,
        // The whole exchange, connecting included (a socket timeout would start only once connected).
        ...(t.timeoutMs ? { signal: AbortSignal.timeout(t.timeoutMs) } : {}),
      },
      onResponse,
    );
    const connectMs = t.connectTimeoutMs;
    if (connectMs)
      req.on('socket', (socket) => {
        const timer = setTimeout(() => req.destroy(new Error(`could not connect within ${connectMs} ms`)), connectMs);
        socket.once('secureConnect', () => clearTimeout(timer));
        socket.once('close', () => clearTimeout(timer));
      });
    return req;
  }

  private unavailable(cause: unknown): BosonError {
    if (this.via)
      return new BosonError(
        'CONTROLLER_UNAVAILABLE',
        `cannot reach the Boson controller at ${this.via.name}: ${(cause as Error).message}`,
        {
          cause,
        },
      );
    return new BosonError('DAEMON_UNAVAILABLE', `cannot reach the Boson daemon at ${this.socketPath} (is \`boson up\` running?)`, {
      cause,
    });
  }

  /**
   * Sends a request; resolves with the raw response (status not checked). `body` is sent as JSON, or as it is with
   * `contentType` when it is a stream of bytes.
   */
  raw(method: string, urlPath: string, body?: unknown, contentType?: string): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const streamed = contentType !== undefined ? (body as AsyncIterable<Uint8Array>) : undefined;
      const payload = body === undefined || streamed ? undefined : Buffer.from(JSON.stringify(body));
      const headers = streamed
        ? { 'Content-Type': contentType! }
        : payload
          ? { 'Content-Type': 'application/json', 'Content-Length': payload.length }
          : {};
      const req = this.send({ method, path: urlPath, headers }, resolve);
      req.on('error', (err) => reject(this.unavailable(err)));
      if (!streamed) {
        req.end(payload);
        return;
      }
      void (async () => {
        try {
          for await (const chunk of streamed) if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
          req.end();
        } catch (err) {
          req.destroy(err as Error);
        }
      })();
    });
  }

  /** Sends a request and returns its JSON answer (undefined for 204); typed error for 4xx/5xx. */
  async request<T>(method: string, urlPath: string, body?: unknown, contentType?: string): Promise<T> {
    const res = await this.raw(method, urlPath, body, contentType);
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    if ((res.statusCode ?? 500) >= 400) throw errorFrom(res.statusCode ?? 500, text);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /**
   * Streams an NDJSON answer, calling `onItem` per line, until the server ends it or `signal` aborts; a GET, or a
   * POST of `post.body`.
   */
  async stream<T>(urlPath: string, onItem: (item: T) => void, signal?: AbortSignal, post?: { body: unknown }): Promise<void> {
    const res = await this.raw(post ? 'POST' : 'GET', urlPath, post?.body);
    if ((res.statusCode ?? 500) >= 400) {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      throw errorFrom(res.statusCode ?? 500, Buffer.concat(chunks).toString('utf8'));
    }
    // Aborted while the answer was on its way: an abort listener added now would never fire, and the stream stay open.
    if (signal?.aborted) {
      res.destroy();
      return;
    }
    signal?.addEventListener('abort', () => res.destroy(), { once: true });
    let buffered = '';
    try {
      for await (const chunk of res) {
        buffered += (chunk as Buffer).toString('utf8');
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (line) onItem(JSON.parse(line) as T);
        }
      }
    } catch (err) {
      if (signal?.aborted) return;
      // The answer broke off before its end: the daemon went away mid-stream.
      throw new BosonError('DAEMON_UNAVAILABLE', `lost the connection to the Boson daemon at ${this.socketPath}`, { cause: err });
    }
    if (!res.complete && !signal?.aborted)
      throw new BosonError('DAEMON_UNAVAILABLE', `lost the connection to the Boson daemon at ${this.socketPath}`);
  }

  /** Opens an upgraded raw stream (attach, exec start, a one-request exec with `body` as its JSON spec). */
  upgrade(urlPath: string, body?: unknown): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const headers: http.OutgoingHttpHeaders = { Connection: 'Upgrade', Upgrade: 'tcp' };
      if (payload) Object.assign(headers, { 'Content-Type': 'application/json', 'Content-Length': payload.length });
      const req = this.send({ method: 'POST', path: urlPath, headers });
      req.on('upgrade', (_res, socket, head) => {
        if (head.length > 0) socket.unshift(head);
        resolve(socket);
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => reject(errorFrom(res.statusCode ?? 500, Buffer.concat(chunks).toString('utf8'))));
      });
      req.on('error', (err) => reject(this.unavailable(err)));
      req.end(payload);
    });
  }
}

/** The error an ExecStatus without an exit code carries, typed as the daemon raised it. */
export function execStatusError(status: ExecStatus): BosonError {
  const detail = status.error?.detail ?? 'the exec ended without an exit status';
  return status.error && status.error.code in ERROR_CATALOGUE
    ? new BosonError(status.error.code as ErrorCode, detail)
    : new BosonError('INTERNAL', detail);
}

/**
 * Splits Docker-framed stream bytes into stdout/stderr chunks (and a one-request exec's or run's status frame,
 * given `onStatus`; a run's created frame, given `onCreated`, and its notices, given `onNotice`); feed it data as
 * it arrives.
 */
export class StreamDemuxer {
  private pending: Buffer = Buffer.alloc(0);

  constructor(
    private readonly onStdout: (d: Buffer) => void,
    private readonly onStderr: (d: Buffer) => void,
    private readonly onStatus?: (status: ExecStatus) => void,
    private readonly onCreated?: (payload: Buffer) => void,
    private readonly onNotice?: (text: string) => void,
  ) {}

  /** Consumes `chunk`, emitting every complete frame. */
  push(chunk: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    while (this.pending.length >= 8) {
      const size = this.pending.readUInt32BE(4);
      if (this.pending.length < 8 + size) break;
      const data = this.pending.subarray(8, 8 + size);
      if (this.pending[0] === 2) this.onStderr(data);
      else if (this.pending[0] === EXEC_STATUS_STREAM && this.onStatus) this.onStatus(JSON.parse(data.toString('utf8')) as ExecStatus);
      else if (this.pending[0] === RUN_CREATED_STREAM && this.onCreated) this.onCreated(data);
      else if (this.pending[0] === RUN_NOTICE_STREAM) this.onNotice?.(data.toString('utf8'));
      else this.onStdout(data);
      this.pending = this.pending.subarray(8 + size);
    }
  }
}
