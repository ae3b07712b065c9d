/**
 * A template clone's TCG translation cache, 8 MiB (the default, BOSON_WARM_CLONE_TB_MIB) against 16 MiB (a boot's):
 * two template-mode daemons side by side, `boson run --rm busybox true` on each in turn (the order alternating), p50
 * of each. The memory side of the trade is bench/density.ts --mode template (docs/design.md "Warm start").
 *
 *   npx tsx bench/template-tb.ts [RUNS]
 */
import path from 'node:path';
import { spawn } from 'node:child_process';
import { MachineClient } from '../src/machine/client/index.ts';
import { PACKAGE_ROOT } from '../src/common/index.ts';
import { makeTestHost, testDaemon, waitFor } from '../test/helpers.ts';
const BOSON = path.join(PACKAGE_ROOT, 'bin', 'boson');
const hosts = [] as Array<{ tb: string; host: Awaited<ReturnType<typeof makeTestHost>>; t: number[] }>;
for (const tb of ['8', '16']) {
  const host = await makeTestHost();
  host.env = {
    ...host.env,
    BOSON_WARM_IMAGES: 'busybox',
    BOSON_WARM_MODE: 'template',
    BOSON_WARM_MEMORY_MIB: '1024',
    BOSON_WARM_CLONE_TB_MIB: tb,
  };
  hosts.push({ tb, host, t: [] });
}
const daemons = hosts.map((h) => testDaemon(() => h.host));
const once = (env: NodeJS.ProcessEnv): Promise<number> =>
  new Promise((res, rej) => {
    const t0 = performance.now();
    const c = spawn(BOSON, ['run', '--rm', 'busybox', 'true'], { env, stdio: 'ignore' });
    c.on('close', (code) => (code === 0 ? res(performance.now() - t0) : rej(new Error(String(code)))));
  });
try {
  for (const d of daemons) await d.start();
  for (const h of hosts)
    await waitFor(
      async () =>
        (await new MachineClient(path.join(h.host.env.BOSON_RUN_DIR!, 'boson.sock')).request<any>('GET', '/v1/warm')).shapes.some(
          (s: any) => s.ready,
        ),
      180_000,
      'tmpl',
    );
  const n = Number(process.argv[2] ?? 12);
  for (let i = 0; i < n; i++) for (const h of i % 2 ? [...hosts].reverse() : hosts) h.t.push(await once(h.host.env));
  for (const h of hosts) {
    const s = [...h.t].sort((a, b) => a - b);
    console.log(
      `clone tb ${h.tb} MiB: p50 ${Math.round(s[Math.floor(s.length / 2)]!)} ms, min ${Math.round(s[0]!)}, max ${Math.round(s.at(-1)!)} (${n} runs)`,
    );
  }
  console.log((await import('node:fs')).readFileSync('/proc/loadavg', 'utf8'));
} finally {
  for (const d of daemons) await d.stop();
  for (const h of hosts) await h.host.cleanup();
}
