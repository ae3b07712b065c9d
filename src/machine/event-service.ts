/**
 * The event half of the machine port (MachineEvents): the log of lifecycle events (kept in the state store by the
 * container registry) and the live bus they are published on. The composition root builds it; the runtime owns it
 * and publishes each event it logs. `bus` is the EventEmitter the runtime's `events` member is (the runtime's own
 * waiters listen to it; the edges follow events through the port).
 */
import { EventEmitter } from 'node:events';
import type { EventQuery, MachineEvents } from './port/machine.ts';
import type { Event, RequestContext } from './port/schemas.ts';
import type { MachineEvent } from './containers.ts';

/** Where logged events are read. */
export interface EventLog {
  events(afterSeq: number, sinceNs?: bigint, untilNs?: bigint): MachineEvent[];
}

/** The port's view of a logged event. */
export function eventView(e: MachineEvent): Event {
  return { seq: e.seq, timeNano: e.timeNano.toString(), type: e.type, action: e.action, actorId: e.actorId, attributes: e.attributes };
}

/** MachineEvents on this host (see the module comment). */
export class EventService implements MachineEvents {
  /** Emits 'event' with each MachineEvent as it is logged. */
  readonly bus = new EventEmitter();

  constructor(private readonly log: EventLog) {
    this.bus.setMaxListeners(0);
  }

  /** Tells the live subscribers of an event just logged. */
  publish(event: MachineEvent): void {
    this.bus.emit('event', event);
  }

  async past(_ctx: RequestContext, query: EventQuery = {}): Promise<Event[]> {
    return this.log.events(query.afterSeq ?? 0, query.sinceNs, query.untilNs).map(eventView);
  }

  async follow(_ctx: RequestContext, query: EventQuery, onEvent: (event: Event) => void, signal: AbortSignal): Promise<void> {
    const { sinceNs, untilNs } = query;
    let last = query.afterSeq ?? 0;
    // Subscribed before the log is read, so that nothing logged in between is lost (nor told twice).
    let queued: MachineEvent[] | null = [];
    const tell = (e: MachineEvent): void => {
      if (e.seq <= last || (untilNs !== undefined && e.timeNano > untilNs)) return;
      last = e.seq;
      onEvent(eventView(e));
    };
    const listener = (e: MachineEvent): void => void (queued ? queued.push(e) : tell(e));
    this.bus.on('event', listener);
    try {
      if (sinceNs !== undefined || query.afterSeq !== undefined) for (const e of this.log.events(last, sinceNs, untilNs)) tell(e);
      for (const e of queued) tell(e);
      queued = null;
      const now = BigInt(Date.now()) * 1_000_000n;
      if (signal.aborted || (untilNs !== undefined && untilNs <= now)) return;
      await new Promise<void>((resolve) => {
        signal.addEventListener('abort', () => resolve(), { once: true });
        if (untilNs !== undefined) setTimeout(resolve, Number((untilNs - now) / 1_000_000n) + 1).unref();
      });
    } finally {
      this.bus.off('event', listener);
    }
  }
}
