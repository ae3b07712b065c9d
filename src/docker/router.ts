/**
 * The Docker API's route table: plain routes (a request, an answer) and upgrade routes (attach and exec start,
 * whose connection is hijacked). Patterns match the path without its `/vX.Y` prefix; `([^/]+)` groups become the
 * handler's params, URL-decoded. Each resource registers its routes here (src/docker/routes/*.ts).
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { BosonPaths } from '../common/index.ts';
import type { RegistryClientOptions } from '../image/index.ts';
import type { Ctx } from './http.ts';
import type { Machine } from '../machine/port/index.ts';

/** A plain route's handler. */
export type Handler = (ctx: Ctx) => Promise<void> | void;

/** One upgrade request, as its handler sees it. */
export interface UpgradeCtx {
  req: IncomingMessage;
  socket: Duplex;
  /** Bytes read past the request head. */
  head: Buffer;
  params: string[];
  query: URLSearchParams;
  version: string;
  /** Answers 101 UPGRADED (a multiplexed stream type unless `tty`, for clients of API 1.42 and later); from here on an error ends the socket. */
  accept(tty: boolean): void;
}

/** An upgrade route's handler. */
export type UpgradeHandler = (ctx: UpgradeCtx) => Promise<void>;

/** The path of a route's parameter (one path segment). */
export const ID = '([^/]+)';

interface Route<H> {
  method: string;
  re: RegExp;
  handler: H;
}

/**
 * What every route registrar gets: the machine (the port), the daemon's paths, the exec sessions and event streams
 * the API follows, and how registries are reached (for the login check).
 */
export interface RouteDeps {
  machine: Machine;
  paths: BosonPaths;
  /** How many `GET /events` streams are open now (docker info's NEventsListener). */
  eventStreams: { open: number };
  execs: ExecResizers;
  registry: RegistryClientOptions;
}

/** Resize functions of running execs, by exec id (the port has no exec resize by id). */
export class ExecResizers {
  private readonly resizers = new Map<string, (rows: number, cols: number) => void>();

  /** Follows an exec's session until it exits. */
  track(id: string, resize: (rows: number, cols: number) => void, exit: Promise<number>): void {
    this.resizers.set(id, resize);
    void exit.finally(() => this.resizers.delete(id));
  }

  resize(id: string, rows: number, cols: number): void {
    this.resizers.get(id)?.(rows, cols);
  }
}

/** The route table. */
export class Router {
  private readonly routes: Array<Route<Handler>> = [];
  private readonly upgrades: Array<Route<UpgradeHandler>> = [];

  on(method: string, pattern: string, handler: Handler): void {
    this.routes.push({ method, re: new RegExp(`^${pattern}$`), handler });
  }

  upgrade(method: string, pattern: string, handler: UpgradeHandler): void {
    this.upgrades.push({ method, re: new RegExp(`^${pattern}$`), handler });
  }

  /** The plain route for `method` (GET routes answer HEAD too) and `path`, with its params. */
  match(method: string, path: string): { handler: Handler; params: string[] } | null {
    for (const route of this.routes) {
      if (route.method !== method && !(route.method === 'GET' && method === 'HEAD')) continue;
      const params = paramsOf(route.re, path);
      if (params) return { handler: route.handler, params };
    }
    return null;
  }

  /** The upgrade route for `method` and `path`, with its params. */
  matchUpgrade(method: string, path: string): { handler: UpgradeHandler; params: string[] } | null {
    for (const route of this.upgrades) {
      if (route.method !== method) continue;
      const params = paramsOf(route.re, path);
      if (params) return { handler: route.handler, params };
    }
    return null;
  }

  /** True when some plain route has this path (under another method: 405). */
  knowsPath(path: string): boolean {
    return this.routes.some((r) => r.re.test(path));
  }
}

function paramsOf(re: RegExp, path: string): string[] | null {
  const m = re.exec(path);
  return m ? m.slice(1).map((p) => decodeURIComponent(p)) : null;
}
