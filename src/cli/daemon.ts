/**
 * What the CLI's daemon commands share: the typed client of this host's daemon (RemoteMachine on its socket), the
 * request context of this user, running a command over several names, and pumping an upgraded stream to this
 * terminal.
 */
import type { Duplex } from 'node:stream';
import { RemoteMachine, StreamDemuxer, type ExecStatus } from '../machine/client/index.ts';
import { machineClient } from './target-machine.ts';
import { localContext, type RequestContext } from '../machine/port/index.ts';
import { printJson, reportError } from './output.ts';

/** This user on this host. */
export const ctx: RequestContext = localContext();

/** The daemon of this host, through its typed client. */
export function machine(): RemoteMachine {
  return new RemoteMachine(machineClient());
}

/**
 * Runs `fn` for each of `refs`; a failure is reported (as reportError words it) and the others still run. The exit
 * status is the failure's own (docs/api.md) when every failure has the same one, as with a single name; 1 when
 * failures of several names differ.
 */
export async function forEach(refs: string[], fn: (ref: string) => Promise<void>): Promise<void> {
  const statuses = new Set<number>();
  for (const ref of refs) {
    try {
      await fn(ref);
    } catch (err) {
      statuses.add(reportError(err, process.argv.includes('--json')));
    }
  }
  if (statuses.size > 0) process.exitCode = statuses.size === 1 ? [...statuses][0]! : 1;
}

/** Prints the JSON of each named resource (errors reported per name). */
export async function inspectEach(names: string[], get: (name: string) => Promise<unknown>): Promise<void> {
  const out: unknown[] = [];
  await forEach(names, async (n) => void out.push(await get(n)));
  printJson(out);
}

/** Removes each named resource, printing the names removed (errors reported per name). */
export async function removeEach(names: string[], remove: (name: string) => Promise<void>): Promise<void> {
  await forEach(names, async (n) => {
    await remove(n);
    process.stdout.write(`${n}\n`);
  });
}

/**
 * Pipes an upgraded stream to this terminal; resolves when the server closes it. Output is raw with a TTY unless
 * `framed` (a one-request exec, whose status frame goes to `onStatus`).
 */
export async function pump(
  stream: Duplex,
  tty: boolean,
  stdin: boolean,
  framed = false,
  onStatus?: (s: ExecStatus) => void,
): Promise<void> {
  // A terminal or pipe that does not keep up holds the stream back (and so the daemon, and the guest), instead of
  // this process queuing what it cannot write.
  const hold = (out: NodeJS.WriteStream, d: Buffer): void => {
    if (out.write(d) || stream.isPaused()) return;
    stream.pause();
    out.once('drain', () => stream.resume());
  };
  const demux = new StreamDemuxer(
    (d) => hold(process.stdout, d),
    (d) => hold(process.stderr, d),
    onStatus,
  );
  stream.on('data', (d: Buffer) => (tty && !framed ? hold(process.stdout, d) : demux.push(d)));
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
