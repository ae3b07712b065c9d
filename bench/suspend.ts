/**
 * Suspend and resume times and state file sizes (`npx tsx bench/suspend.ts [rounds]`): a private daemon, one idle
 * busybox container and one that holds 64 MiB of random data in its memory (/dev/shm), each suspended and resumed
 * `rounds` times. Prints the daemon's own time for each call (the `ms` of the answer), the CLI's wall clock, and
 * the size of the saved state, with the accelerator and the load average, as a markdown table.
 */
import os from 'node:os';
import { probeAccelerator } from '../src/vmm/index.ts';
import { makeTestHost, runBoson, testDaemon, type TestHost } from '../test/helpers.ts';

const rounds = Number(process.argv[2] ?? 5);

interface Sample {
  suspendMs: number;
  resumeMs: number;
  suspendWallMs: number;
  resumeWallMs: number;
  bytes: number;
}

async function boson(host: TestHost, ...args: string[]): Promise<string> {
  const r = await runBoson(host, args, { timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`boson ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.toString();
}

const p50 = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function series(host: TestHost, name: string): Promise<Sample[]> {
  const samples: Sample[] = [];
  for (let i = 0; i < rounds; i++) {
    let t = performance.now();
    const s = JSON.parse(await boson(host, 'suspend', '--json', name)) as { ms: number; stateBytes: number };
    const suspendWallMs = performance.now() - t;
    t = performance.now();
    const r = JSON.parse(await boson(host, 'resume', '--json', name)) as { ms: number };
    const resumeWallMs = performance.now() - t;
    samples.push({ suspendMs: s.ms, resumeMs: r.ms, suspendWallMs, resumeWallMs, bytes: s.stateBytes });
    // The guest runs a moment between rounds, as a container would.
    await new Promise((res) => setTimeout(res, 1000));
  }
  return samples;
}

const host = await makeTestHost();
const daemon = testDaemon(() => host);
try {
  await daemon.start();
  const accel = (await probeAccelerator()).accel;
  await boson(host, 'run', '-d', '--name', 'idle', 'busybox', 'sleep', '100000');
  await boson(host, 'run', '-d', '--name', 'shm64', 'busybox', 'sh', '-c', 'head -c 67108864 /dev/urandom > /dev/shm/fill; sleep 100000');
  // Wait until the 64 MiB are written (urandom under TCG takes a while).
  for (;;) {
    const r = await runBoson(host, ['exec', 'shm64', 'sh', '-c', 'stat -c %s /dev/shm/fill'], { timeoutMs: 60_000 });
    if (r.stdout.toString().trim() === '67108864') break;
    await new Promise((res) => setTimeout(res, 1000));
  }
  const results: Array<[string, Sample[]]> = [];
  for (const name of ['idle', 'shm64']) results.push([name, await series(host, name)]);
  const load = os.loadavg()[0]!.toFixed(1);
  console.log(`accelerator ${accel}, ${os.cpus().length} CPUs, load average ${load} at the end, ${rounds} rounds, 256 MiB guests`);
  console.log('| container | state file, p50 | suspend: daemon / CLI, p50 (min-max daemon) | resume: daemon / CLI, p50 (min-max daemon) |');
  console.log('|---|---|---|---|');
  for (const [name, s] of results) {
    const mib = (p50(s.map((x) => x.bytes)) / 1048576).toFixed(1);
    const span = (xs: number[]): string => `${Math.min(...xs)}-${Math.max(...xs)}`;
    console.log(
      `| ${name} | ${mib} MiB | ${p50(s.map((x) => x.suspendMs))} / ${Math.round(p50(s.map((x) => x.suspendWallMs)))} ms (${span(s.map((x) => x.suspendMs))}) | ${p50(s.map((x) => x.resumeMs))} / ${Math.round(p50(s.map((x) => x.resumeWallMs)))} ms (${span(s.map((x) => x.resumeMs))}) |`,
    );
  }
  await boson(host, 'rm', '-f', 'idle', 'shm64');
} finally {
  await daemon.stop();
  await host.cleanup();
}
