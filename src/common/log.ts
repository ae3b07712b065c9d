/**
 * The logger every layer may be handed: structured (a bindings object, then a message), levelled, with children
 * that carry context (a request id, a container id). The composition root makes it (pino, JSON lines to stderr or
 * a file); code below takes it as a parameter and never writes diagnostics to the console itself.
 */

/** One level's writer: `log.info({ id }, 'started')` or `log.info('started')`. */
export interface LogFn {
  (bindings: Record<string, unknown>, message: string): void;
  (message: string): void;
}

/** A structured logger (pino's shape, so a pino instance is one). */
export interface Logger {
  error: LogFn;
  warn: LogFn;
  info: LogFn;
  debug: LogFn;
  /** A logger whose lines all carry `bindings`. */
  child(bindings: Record<string, unknown>): Logger;
}

/** A logger that drops everything (for tests and short-lived embedded runtimes). */
export const silentLogger: Logger = {
  error: () => undefined,
  warn: () => undefined,
  info: () => undefined,
  debug: () => undefined,
  child: () => silentLogger,
};
