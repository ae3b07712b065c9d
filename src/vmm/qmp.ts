/**
 * A small QMP client over an already-connected stream: greeting, capability negotiation, commands with ids,
 * events. Private to src/vmm.
 */
import type { Duplex } from 'node:stream';
import { BosonError } from '../common/index.ts';

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/** A QMP session. `ready` resolves after qmp_capabilities succeeded. */
export class QmpClient {
  private buffer = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private readonly eventHandlers: Array<(event: string, data: unknown) => void> = [];
  readonly ready: Promise<void>;
  private closed = false;

  constructor(private readonly stream: Duplex) {
    let greeted: () => void;
    const greeting = new Promise<void>((resolve) => (greeted = resolve));
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      this.buffer += chunk;
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl).trim();
        this.buffer = this.buffer.slice(nl + 1);
        if (!line) continue;
        let msg: Record<string, unknown>;
        try {
          msg = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        if ('QMP' in msg) greeted!();
        else if ('event' in msg) for (const h of this.eventHandlers) h(String(msg.event), msg.data);
        else if (typeof msg.id === 'string' && this.pending.has(msg.id)) {
          const p = this.pending.get(msg.id)!;
          this.pending.delete(msg.id);
          if ('error' in msg) p.reject(new BosonError('INTERNAL', `QMP error: ${JSON.stringify(msg.error)}`));
          else p.resolve(msg.return);
        }
      }
    });
    const fail = (): void => {
      this.closed = true;
      for (const p of this.pending.values()) p.reject(new BosonError('GUEST_CRASHED', 'QMP connection closed'));
      this.pending.clear();
    };
    stream.on('close', fail);
    stream.on('error', fail);
    this.ready = greeting.then(() => this.execute('qmp_capabilities')).then(() => undefined);
    this.ready.catch(() => undefined);
  }

  /** Runs one QMP command and resolves with its `return` value. */
  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (this.closed) return Promise.reject(new BosonError('GUEST_CRASHED', 'QMP connection closed'));
    const id = `b${this.nextId++}`;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.stream.write(JSON.stringify({ execute: command, id, ...(args ? { arguments: args } : {}) }) + '\n');
    });
  }

  /** Closes the QMP connection (the VM keeps running). */
  close(): void {
    this.stream.destroy();
  }

  /** Calls `handler` for every asynchronous QMP event. */
  onEvent(handler: (event: string, data: unknown) => void): void {
    this.eventHandlers.push(handler);
  }
}
