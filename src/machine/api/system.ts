/**
 * The system routes of the machine's REST API: /healthz, Prometheus /metrics (live VMs, boot and stop durations,
 * failures), the API's own OpenAPI 3 document at /openapi.json, and the event stream /v1/events (NDJSON, over the
 * port's MachineEvents: the logged events since `since` when given, then new ones until the client goes away; it
 * ends at once when `until` has passed).
 */
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import client from 'prom-client';
import type { MachineEvents } from '../port/machine.ts';
import { Event, WarmPoolView } from '../port/schemas.ts';
import { errors, nsFromTime, type ContextOf } from './routing.ts';

/** What /metrics reads of the runtime. */
export interface MetricsSource {
  metrics: { boots: number[]; stops: number[]; failures: number };
  liveIds(): Set<string>;
  /** The warm pool (null: this runtime has none). */
  warmStats(): WarmPoolView | null;
}

const EventsQuery = Type.Object({
  since: Type.Optional(Type.String({ description: 'RFC 3339 or unix seconds: logged events from then first' })),
  until: Type.Optional(Type.String({ description: 'RFC 3339 or unix seconds: no events after then' })),
});

/** The system routes; `context` makes a request's RequestContext. */
export function systemRoutes(source: MetricsSource, events: MachineEvents, context: ContextOf): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    const tags = ['system'];
    const registry = new client.Registry();
    const bootHist = new client.Histogram({
      name: 'boson_vm_boot_seconds',
      help: 'Time to start a container (boot to process start)',
      buckets: [0.25, 0.5, 1, 2, 3, 5, 10, 30],
      registers: [registry],
    });
    const stopHist = new client.Histogram({
      name: 'boson_vm_stop_seconds',
      help: 'Time to stop a container',
      buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
      registers: [registry],
    });
    const failures = new client.Counter({
      name: 'boson_vm_failures_total',
      help: 'Micro-VMs that failed to boot or start',
      registers: [registry],
    });
    let failuresSeen = 0;
    new client.Gauge({
      name: 'boson_vms_running',
      help: 'Running micro-VMs',
      registers: [registry],
      collect() {
        this.set(source.liveIds().size);
      },
    });

    const warmGauge = (name: string, help: string, value: (w: WarmPoolView) => number): void => {
      new client.Gauge({
        name,
        help,
        registers: [registry],
        collect() {
          const w = source.warmStats();
          this.set(w ? value(w) : 0);
        },
      });
    };
    warmGauge('boson_warm_vms_ready', 'Warm (pre-booted, paused) micro-VMs ready to take a container', (w) =>
      w.shapes.reduce((n, s) => n + s.ready, 0),
    );
    warmGauge('boson_warm_vms_booting', 'Warm micro-VMs booting', (w) => w.shapes.reduce((n, s) => n + s.booting, 0));
    warmGauge('boson_warm_memory_mib', 'Guest memory of the warm micro-VMs, MiB', (w) => w.memoryUsedMiB);
    warmGauge('boson_warm_memory_budget_mib', 'Guest memory the warm micro-VMs may have, MiB', (w) => w.memoryBudgetMiB);
    warmGauge('boson_warm_hits', 'Starts that took a warm micro-VM (since the daemon started)', (w) => w.hits);
    warmGauge('boson_warm_misses', 'Starts of a kept image that booted cold: no warm micro-VM of their shape', (w) => w.misses);
    warmGauge('boson_warm_fallbacks', 'Starts whose warm micro-VM was bad and that booted cold instead', (w) => w.fallbacks);
    warmGauge('boson_warm_boot_failures', 'Warm micro-VMs (or templates) that failed to boot', (w) => w.bootFailures);
    warmGauge('boson_warm_template_ram_mib', 'Host memory the templates hold (RAM and state files on /dev/shm), MiB', (w) =>
      w.shapes.reduce((n, s) => n + (s.ramMiB ?? 0), 0),
    );

    app.get(
      '/v1/warm',
      {
        schema: {
          tags,
          summary: "The daemon's pool of pre-booted micro-VMs (warm start)",
          response: { 200: WarmPoolView, ...errors },
        },
      },
      async () =>
        source.warmStats() ?? {
          enabled: false,
          images: [],
          perShape: 0,
          memoryBudgetMiB: 0,
          memoryUsedMiB: 0,
          shapes: [],
          hits: 0,
          misses: 0,
          fallbacks: 0,
          bootFailures: 0,
          discarded: 0,
        },
    );

    app.get(
      '/healthz',
      { schema: { tags, summary: 'Whether the daemon answers', response: { 200: Type.Object({ status: Type.Literal('ok') }) } } },
      async () => ({ status: 'ok' as const }),
    );

    app.get(
      '/metrics',
      {
        schema: {
          tags,
          summary: 'Prometheus metrics',
          response: { 200: { description: 'the Prometheus text format', content: { 'text/plain': { schema: Type.String() } } } },
        },
      },
      async (_req, reply) => {
        for (const v of source.metrics.boots.splice(0)) bootHist.observe(v / 1000);
        for (const v of source.metrics.stops.splice(0)) stopHist.observe(v / 1000);
        failures.inc(source.metrics.failures - failuresSeen);
        failuresSeen = source.metrics.failures;
        return reply.type(registry.contentType).send(await registry.metrics());
      },
    );

    app.get(
      '/openapi.json',
      {
        schema: {
          tags,
          summary: 'This document',
          response: {
            200: {
              description: 'the OpenAPI 3 document of this API',
              content: { 'application/json': { schema: Type.Object({}, { additionalProperties: true }) } },
            },
          },
        },
      },
      async (_req, reply) => reply.type('application/json').send(JSON.stringify(app.swagger())),
    );

    app.get<{ Querystring: Static<typeof EventsQuery> }>(
      '/v1/events',
      {
        schema: {
          tags,
          summary: 'Lifecycle events; a stream of NDJSON lines',
          querystring: EventsQuery,
          response: { 200: { description: 'one line per event', content: { 'application/x-ndjson': { schema: Event } } }, ...errors },
        },
      },
      async (req, reply) => {
        const query = { sinceNs: nsFromTime(req.query.since), untilNs: nsFromTime(req.query.until) };
        const abort = new AbortController();
        req.raw.on('close', () => abort.abort());
        reply.raw.writeHead(200, { 'Content-Type': 'application/x-ndjson' });
        await events.follow(context(req), query, (e) => void reply.raw.write(JSON.stringify(e) + '\n'), abort.signal);
        reply.raw.end();
        return reply;
      },
    );
  };
}
