/**
 * /openapi.json documents every route of the REST API: each operation has a success answer with a schema (or an
 * explicit empty 204), and every route the app serves is in the document.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FakeVmm } from '../fake-vmm.ts';
import { fakeRuntime } from '../fake-runtime.ts';
import { buildApi } from './server.ts';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

type Operation = { responses?: Record<string, { content?: Record<string, { schema?: unknown }> }> };

test('/openapi.json gives every route a response schema, and leaves no route out', async () => {
  const stateDir = await mkdtemp(path.join(os.tmpdir(), 'boson-openapi-'));
  dirs.push(stateDir);
  const runtime = fakeRuntime({ stateDir, vmm: new FakeVmm(), detached: false });
  const served: string[] = [];
  const app = await buildApi(runtime);
  try {
    // Every route fastify serves, from its route tree (a child's path continues its parent's; HEAD routes are
    // fastify's own copies of the GETs).
    await app.ready();
    const stack: string[] = [];
    for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
      const m = /^(.*?)── (\S+) \(([A-Z, ]+)\)$/.exec(line);
      if (!m) continue;
      const depth = (m[1]!.length - 1) / 4;
      stack.length = depth;
      const full = (stack[depth - 1] ?? '') + m[2]!;
      stack.push(full);
      for (const method of m[3]!.split(', '))
        if (method !== 'HEAD') served.push(`${method.toLowerCase()} ${full.replace(/:(\w+)/g, '{$1}')}`);
    }
    assert.ok(served.length > 30, `read the routes (${served.length})`);
    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json() as { paths: Record<string, Record<string, Operation>> };
    const missing: string[] = [];
    for (const route of served) {
      const [method, url] = route.split(' ') as [string, string];
      const op = doc.paths[url]?.[method];
      if (!op) {
        missing.push(`${route}: not in /openapi.json`);
        continue;
      }
      const ok = Object.entries(op.responses ?? {}).filter(([code]) => /^[12]/.test(code));
      if (ok.length === 0) missing.push(`${route}: no success response`);
      for (const [code, answer] of ok) {
        const schema = answer.content ? Object.values(answer.content)[0]?.schema : undefined;
        if (!schema && code !== '204') missing.push(`${route}: ${code} has no schema`);
      }
      if (!op.responses?.['4XX'] && !op.responses?.['4xx'] && !['/healthz', '/metrics', '/openapi.json'].includes(url))
        missing.push(`${route}: no problem answer documented`);
    }
    assert.deepEqual(missing, []);
  } finally {
    await app.close();
    await runtime.close();
  }
});
