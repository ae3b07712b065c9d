/**
 * HTTP plumbing of the Docker Engine API on node:http: API versions in the path, request bodies with a size
 * limit, JSON answers with Docker's exact headers, and connection hijacking (HTTP 101 UPGRADED, `Upgrade: tcp`)
 * for attach and exec start, whose request body may arrive with the head or in the first socket data.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { isBosonError, readUpgradeBody as readUpgradeBodyOf } from '../common/index.ts';
import { badRequest, DockerError, dockerErrorOf } from './errors.ts';

/** The API version Boson speaks (what /_ping and /version advertise). */
export const API_VERSION = '1.47';
/** The oldest API version accepted (Docker 28's own minimum). */
export const MIN_API_VERSION = '1.24';
/** Largest JSON body accepted. */
export const MAX_JSON_BODY = 4 * 1024 * 1024;

/** Compares dotted versions numerically. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Splits "/v1.47/containers/json" into the version and the bare path; refuses versions out of range with Docker's text. */
export function splitVersion(pathname: string): { version: string; path: string } {
  const m = /^\/v([0-9]+(?:\.[0-9]+)*)(\/.*)$/.exec(pathname);
  if (!m) return { version: API_VERSION, path: pathname };
  const version = m[1]!;
  if (compareVersions(version, API_VERSION) > 0)
    throw badRequest(`client version ${version} is too new. Maximum supported API version is ${API_VERSION}`);
  if (compareVersions(version, MIN_API_VERSION) < 0)
    throw badRequest(
      `client version ${version} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`,
    );
  return { version, path: m[2]! };
}

/** One request, as the handlers see it. */
export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  /** Path parameters matched by the route. */
  params: string[];
  query: URLSearchParams;
  version: string;
}

/** Reads a request body (at most `limit` bytes: 413 beyond). */
export async function readBody(req: IncomingMessage, limit = MAX_JSON_BODY): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      req.resume();
      throw new DockerError(413, `request body is larger than ${limit} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Parses a JSON object body; an empty body is `{}`. Malformed JSON is 400, as Docker's decoder reports it. */
export function parseJsonObject(raw: Buffer): Record<string, unknown> {
  const text = raw.toString('utf8').trim();
  if (text === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw badRequest(`invalid JSON: ${(err as Error).message}`);
  }
  if (value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw badRequest('invalid JSON: the body must be a JSON object');
  return value as Record<string, unknown>;
}

/** Reads and parses a JSON object body. */
export async function jsonBody(ctx: Ctx): Promise<Record<string, unknown>> {
  return parseJsonObject(await readBody(ctx.req));
}

/** Sends a JSON answer. */
export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/** Sends an empty answer (204, 304, 201). */
export function sendEmpty(res: ServerResponse, status: number): void {
  res.writeHead(status, { 'Content-Length': 0 });
  res.end();
}

/** Sends Docker's error body for `err` (nothing more if the headers are gone already). */
export function sendError(res: ServerResponse, err: unknown): void {
  const { status, message } = dockerErrorOf(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (status === 413) discardBounded(res.req);
  sendJson(res, status, { message });
}

/** How much of a refused body is read and thrown away so that the client, still sending it, gets the answer. */
const DISCARD_LIMIT = 16 * 1024 * 1024;

/**
 * Reads the rest of a refused (413) body and throws it away, as node does to keep a connection alive, but only up
 * to DISCARD_LIMIT more: past that the connection is ended (a client sending more gets an error, not the answer).
 */
function discardBounded(req: IncomingMessage): void {
  let seen = 0;
  req.on('data', (d: Buffer) => {
    seen += d.length;
    if (seen > DISCARD_LIMIT) req.socket.destroy();
  });
  req.resume();
}

/** Writes an HTTP error answer onto a raw socket (an upgrade request that fails before it is upgraded). */
export function socketError(socket: Duplex, err: unknown): void {
  const { status, message } = dockerErrorOf(err);
  const text = JSON.stringify({ message });
  if (!socket.writable) return;
  socket.end(
    `HTTP/1.1 ${status} ${status === 404 ? 'Not Found' : status === 409 ? 'Conflict' : status === 400 ? 'Bad Request' : 'Error'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
}

/** Answers an upgrade with 101 UPGRADED and Docker's stream content type. */
export function writeUpgraded(socket: Duplex, multiplexed: boolean): void {
  socket.write(
    `HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.${multiplexed ? 'multiplexed' : 'raw'}-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`,
  );
}

/**
 * Reads the request body of an upgrade request (see common's readUpgradeBody), with Docker's statuses: 413 above
 * MAX_JSON_BODY, 400 for a malformed Content-Length or a body cut short.
 */
export async function readUpgradeBody(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<{ body: Buffer; rest: Buffer }> {
  try {
    return await readUpgradeBodyOf(req, socket, head, MAX_JSON_BODY);
  } catch (err) {
    if (!isBosonError(err, 'INVALID_ARGUMENT')) throw err;
    throw err.details.tooLarge === true ? new DockerError(413, err.message) : badRequest(err.message);
  }
}

/** A query flag as Docker reads them ("1", "true", "True"). */
export function flag(q: URLSearchParams, name: string, dflt = false): boolean {
  const v = q.get(name);
  if (v === null || v === '') return dflt;
  return v === '1' || v.toLowerCase() === 'true';
}

/** Parses Docker's `filters` query parameter: {"key": ["v"]} or {"key": {"v": true}}. */
export function parseFilters(q: URLSearchParams, allowed: string[]): Map<string, string[]> {
  const raw = q.get('filters');
  const out = new Map<string, string[]>();
  if (!raw) return out;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw badRequest(`invalid filter: ${raw}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badRequest(`invalid filter: ${raw}`);
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (!allowed.includes(k)) throw badRequest(`invalid filter '${k}'`);
    const values = Array.isArray(v)
      ? v.map(String)
      : typeof v === 'object' && v !== null
        ? Object.keys(v).filter((x) => (v as Record<string, unknown>)[x])
        : [String(v)];
    out.set(k, values);
  }
  return out;
}

/**
 * The cutoff of a prune's `until` filter, in unix milliseconds: a Go duration before now ("10m", "1h30m"), unix
 * seconds (with a fraction), or an RFC 3339 time.
 */
export function untilCutoff(v: string, now = Date.now()): number {
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  if (/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(v)) {
    let ms = 0;
    for (const m of v.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(m[1]) * unit[m[2]!]!;
    return now - ms;
  }
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw badRequest(`invalid filter 'until=${v}': a duration (10m), unix seconds or an RFC 3339 time`);
  return t;
}

/** Docker's prune filters on labels and creation time: `label` (every one must match), `label!` (none may), `until`. */
export function pruneMatcher(
  q: URLSearchParams,
  extra: string[] = [],
): { filters: Map<string, string[]>; matches: (labels: Record<string, string>, created: string) => boolean } {
  const filters = parseFilters(q, ['label', 'label!', 'until', ...extra]);
  const has = (labels: Record<string, string>, f: string): boolean => {
    const eq = f.indexOf('=');
    return eq < 0 ? f in labels : labels[f.slice(0, eq)] === f.slice(eq + 1);
  };
  const untils = (filters.get('until') ?? []).map((v) => untilCutoff(v));
  return {
    filters,
    matches: (labels, created) =>
      (filters.get('label') ?? []).every((f) => has(labels, f)) &&
      !(filters.get('label!') ?? []).some((f) => has(labels, f)) &&
      untils.every((cut) => Date.parse(created) < cut),
  };
}
