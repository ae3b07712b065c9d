/**
 * The daemon's structured log: pino, JSON lines with a level, a time and the bindings of each line (request id,
 * container id), to stderr or to a file (BOSON_LOG_FILE), from BOSON_LOG_LEVEL up. Made here, in the composition
 * root, and handed down as the common Logger.
 */
import pino from 'pino';
import type { Logger } from '../common/index.ts';

/** Where and how much to log. */
export interface LogSettings {
  level: 'error' | 'warn' | 'info' | 'debug';
  /** A file to append to; stderr when absent. */
  file?: string;
}

/** The daemon's logger (a pino instance; also what fastify takes as its loggerInstance). */
export function makeLogger(settings: LogSettings): Logger & pino.Logger {
  const destination = settings.file
    ? pino.destination({ dest: settings.file, mkdir: true, sync: true })
    : pino.destination({ fd: 2, sync: true });
  return pino({ level: settings.level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

/** A plain-text logger for a CLI process (an embedded runtime): warnings and errors as "boson: …" lines on stderr. */
export function plainLogger(): Logger {
  const line =
    (level: string) =>
    (a: Record<string, unknown> | string, b?: string): void => {
      const message = typeof a === 'string' ? a : (b ?? '');
      process.stderr.write(`boson: ${level === 'error' ? 'error: ' : ''}${message}\n`);
    };
  const logger: Logger = { error: line('error'), warn: line('warn'), info: () => undefined, debug: () => undefined, child: () => logger };
  return logger;
}
