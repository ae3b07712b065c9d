/**
 * TCP endpoints of the daemon's APIs (REST and Docker), Docker's way: TLS with client certificate verification
 * (dockerd's --tlsverify --tlscacert --tlscert --tlskey), or plain only on loopback and only when asked for with
 * --insecure-tcp. Every request on TCP is checked before the API sees it: a browser's request (an Origin header)
 * is refused, the Host must name this endpoint (no DNS rebinding), a body must not have a type a web page can send
 * without a CORS preflight (text/plain, form encodings), and the principal is the client certificate's subject,
 * passed on in the x-boson-principal header (any such header from the client is dropped first). Timeouts and a
 * connection limit bound what one client can hold.
 */
import { readFile } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { BosonError } from './errors.ts';
import { silentLogger, type Logger } from './log.ts';

/** The header that carries the authenticated principal from a TCP endpoint to the API behind it. */
export const PRINCIPAL_HEADER = 'x-boson-principal';

/** How a TCP endpoint is asked for (flags of `boson up`). */
export interface TcpEndpointRequest {
  /** host:port. */
  address: string;
  /** --tlsverify: TLS, and a client certificate signed by the CA is required. */
  tlsVerify: boolean;
  tlsCaCert?: string;
  tlsCert?: string;
  tlsKey?: string;
  /** --insecure-tcp: plain HTTP, allowed on loopback only. */
  insecure: boolean;
}

/** A checked TCP endpoint: where to listen, and the TLS material (null for plain, loopback only). */
export interface ResolvedTcpEndpoint {
  host: string;
  port: number;
  tls: { ca: Buffer; cert: Buffer; key: Buffer } | null;
}

/** Content types a web page may send cross-origin without a preflight: never accepted on TCP. */
const SIMPLE_BODY_TYPES = ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data'];

/** Limits of a TCP endpoint. */
const LIMITS = { maxConnections: 256, headersTimeoutMs: 10_000, requestTimeoutMs: 300_000, keepAliveTimeoutMs: 5_000 };

/** Parses host:port ([v6]:port too); INVALID_ARGUMENT otherwise. */
export function parseHostPort(address: string, flag: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(address);
  const port = Number(m?.[2]);
  if (!m || port < 1 || port > 65535) throw new BosonError('INVALID_ARGUMENT', `invalid ${flag} address: ${address} (use host:port)`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

/** True for an address only this host can reach. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Checks a TCP endpoint request against the rules above; resolves the TLS material to use (null for plain).
 * INVALID_ARGUMENT says what to do instead of an unsafe listener.
 */
export async function resolveTcpEndpoint(req: TcpEndpointRequest, flag: string): Promise<ResolvedTcpEndpoint> {
  const { host, port } = parseHostPort(req.address, flag);
  if (req.tlsVerify) {
    const files = { ca: req.tlsCaCert, cert: req.tlsCert, key: req.tlsKey };
    const missing = Object.entries(files)
      .filter(([, f]) => !f)
      .map(([k]) => `--tls${k === 'ca' ? 'cacert' : k}`);
    if (missing.length > 0) throw new BosonError('INVALID_ARGUMENT', `--tlsverify needs ${missing.join(', ')} (boson tls init makes them)`);
    const read = async (f: string): Promise<Buffer> =>
      readFile(f).catch((cause: unknown) => {
        throw new BosonError('INVALID_ARGUMENT', `cannot read ${f}: ${(cause as Error).message}`, { cause });
      });
    return { host, port, tls: { ca: await read(files.ca!), cert: await read(files.cert!), key: await read(files.key!) } };
  }
  if (!isLoopback(host)) {
    throw new BosonError(
      'INVALID_ARGUMENT',
      `${flag} ${req.address} without TLS would let anyone who reaches it own this host: add --tlsverify (boson tls init makes the certificates), or listen on 127.0.0.1 with --insecure-tcp`,
    );
  }
  if (!req.insecure) {
    throw new BosonError(
      'INVALID_ARGUMENT',
      `${flag} ${req.address} without TLS: every local user could then use it as root; add --tlsverify, or --insecure-tcp to accept that`,
    );
  }
  return { host, port, tls: null };
}

/** The names a request's Host may give for an endpoint on `host`. */
function allowedHosts(host: string, extra: string[]): Set<string> {
  return new Set([host, 'localhost', '127.0.0.1', '::1', os.hostname(), ...extra].map((h) => h.toLowerCase()));
}

/** Why a request on a TCP endpoint is refused, or null. */
export function refusal(req: IncomingMessage, allowed: Set<string>): { status: number; message: string } | null {
  if (req.headers.origin !== undefined) return { status: 403, message: 'requests from web browsers (with an Origin header) are refused' };
  const hostHeader = (req.headers.host ?? '').toLowerCase();
  const name = hostHeader.startsWith('[') ? hostHeader.slice(1, hostHeader.indexOf(']')) : hostHeader.replace(/:\d+$/, '');
  if (!allowed.has(name)) return { status: 421, message: `this endpoint does not answer for host ${JSON.stringify(hostHeader)}` };
  const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (hasBody && (type === '' || SIMPLE_BODY_TYPES.includes(type))) {
    return {
      status: 415,
      message: `a request body must be application/json (or a tar archive where the API takes one), not ${type || 'untyped'}`,
    };
  }
  return null;
}

/** The subject of a verified client certificate, as "CN=…,O=…", or undefined. */
function principalOf(socket: net.Socket): string | undefined {
  const tls = socket as TLSSocket;
  if (typeof tls.getPeerCertificate !== 'function' || !tls.authorized) return undefined;
  const subject = tls.getPeerCertificate().subject as Record<string, string | string[]> | undefined;
  if (!subject) return undefined;
  return Object.entries(subject)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`)
    .join(',');
}

/**
 * Listens on a checked TCP endpoint and hands every accepted request and upgrade to `target` (the API's own
 * server, which also serves its UNIX socket). Resolves with the listening server.
 */
export async function serveTcpEndpoint(
  endpoint: ResolvedTcpEndpoint,
  target: http.Server,
  log: Logger = silentLogger,
  extraHosts: string[] = [],
  /** 'optional': TLS, a client certificate is asked for but not required (the API behind authenticates otherwise, as
   * the controller does with bearer tokens and join tokens); the principal header is set only for a verified one. */
  clientCert: 'required' | 'optional' = 'required',
): Promise<net.Server> {
  const allowed = allowedHosts(endpoint.host, extraHosts);
  const server = endpoint.tls
    ? https.createServer({
        ca: endpoint.tls.ca,
        cert: endpoint.tls.cert,
        key: endpoint.tls.key,
        requestCert: true,
        rejectUnauthorized: clientCert === 'required',
        minVersion: 'TLSv1.2',
        allowHalfOpen: true,
      })
    : http.createServer();
  server.maxConnections = LIMITS.maxConnections;
  server.headersTimeout = LIMITS.headersTimeoutMs;
  server.requestTimeout = LIMITS.requestTimeoutMs;
  server.keepAliveTimeout = LIMITS.keepAliveTimeoutMs;
  const admit = (req: IncomingMessage): { status: number; message: string } | null => {
    delete req.headers[PRINCIPAL_HEADER];
    const principal = principalOf(req.socket);
    if (principal !== undefined) req.headers[PRINCIPAL_HEADER] = principal;
    const refused = refusal(req, allowed);
    if (refused)
      log.warn(
        { method: req.method, url: req.url, host: req.headers.host, principal: principal ?? null, status: refused.status },
        `refused a TCP request: ${refused.message}`,
      );
    return refused;
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const refused = admit(req);
    if (refused) {
      res.writeHead(refused.status, { 'Content-Type': 'application/json' }).end(JSON.stringify({ message: refused.message }));
      return;
    }
    target.emit('request', req, res);
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const refused = admit(req);
    if (refused) {
      const body = JSON.stringify({ message: refused.message });
      socket.end(
        `HTTP/1.1 ${refused.status} Refused\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
      return;
    }
    target.emit('upgrade', req, socket, head);
  });
  server.on('tlsClientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(new BosonError('INVALID_ARGUMENT', `cannot listen on tcp://${endpoint.host}:${endpoint.port}: ${err.message}`)),
    );
    server.listen(endpoint.port, endpoint.host, resolve);
  });
  return server;
}
