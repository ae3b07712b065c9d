/**
 * Pods through CRI against Boson's own `run`, in one process on one daemon, interleaved so that machine noise hits
 * them alike:
 *   - pod: RunPodSandbox until ready, then CreateContainer + StartContainer of the first container (its image
 *     unpacked into the pod's shared directory, its process an exec session of the pod VM) until it runs;
 *   - further: CreateContainer + StartContainer of each further container of the same running pod;
 *   - run: `boson run -d busybox sleep` through the same daemon (a micro-VM of its own per container).
 * Prints p50/p95 of each and the ratios.
 *   npx tsx bench/cri-pod.ts [--runs N] [--further N] [--json]
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { makeTestHost, runBoson, testDaemon, type TestHost } from '../test/helpers.ts';
import { criClient } from '../test/cri-client.ts';

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const RUNS = arg('--runs', 5);
const FURTHER = arg('--further', 3);
const IMAGE = 'localhost/busybox:latest';

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

async function main(): Promise<void> {
  let host: TestHost | undefined;
  host = await makeTestHost();
  const daemon = testDaemon(() => host!);
  await daemon.start();
  const cri = criClient(path.join(host.stateDir, 'run', 'cri.sock'));
  const pod: number[] = [];
  const podBoot: number[] = [];
  const further: number[] = [];
  const run: number[] = [];
  try {
    for (let i = 0; i < RUNS; i++) {
      // A VM per container, through the same daemon.
      let t0 = performance.now();
      const r = await runBoson(host, ['run', '-d', '--network', 'bridge', IMAGE, 'sleep', '1000']);
      run.push(performance.now() - t0);
      if (r.code !== 0) throw new Error(`boson run: ${r.stderr}`);
      const id = r.stdout.toString().trim();
      await runBoson(host, ['rm', '-f', id]);

      t0 = performance.now();
      const { podSandboxId } = await cri.runtime.RunPodSandbox!({
        config: { metadata: { name: `bench-${i}`, uid: `u${i}`, namespace: 'bench', attempt: 0 } },
      });
      podBoot.push(performance.now() - t0);
      const start = async (name: string): Promise<void> => {
        const { containerId } = await cri.runtime.CreateContainer!({
          podSandboxId,
          config: { metadata: { name, attempt: 0 }, image: { image: IMAGE }, args: ['sleep', '1000'] },
        });
        await cri.runtime.StartContainer!({ containerId });
      };
      await start('first');
      pod.push(performance.now() - t0);
      for (let j = 0; j < FURTHER; j++) {
        const t1 = performance.now();
        await start(`more-${j}`);
        further.push(performance.now() - t1);
      }
      await cri.runtime.RemovePodSandbox!({ podSandboxId });
    }
  } finally {
    cri.close();
    await daemon.stop();
    await host.cleanup();
  }
  const row = (name: string, xs: number[]): string =>
    `${name.padEnd(46)} p50 ${pct(xs, 50).toFixed(0).padStart(6)} ms   p95 ${pct(xs, 95).toFixed(0).padStart(6)} ms   (n=${xs.length})`;
  const result = {
    runs: RUNS,
    accel: spawnSync('sh', ['-c', 'test -w /dev/kvm && echo kvm || echo tcg']).stdout.toString().trim(),
    runP50: pct(run, 50),
    podBootP50: pct(podBoot, 50),
    podFirstContainerP50: pct(pod, 50),
    furtherContainerP50: pct(further, 50),
  };
  if (process.argv.includes('--json')) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  process.stdout.write(
    [
      row('boson run -d (a VM per container)', run),
      row('RunPodSandbox (pod VM ready)', podBoot),
      row('RunPodSandbox -> first container running', pod),
      row('each further container of the pod', further),
      `first container / run: ${(result.podFirstContainerP50 / result.runP50).toFixed(2)}x   further / run: ${(result.furtherContainerP50 / result.runP50).toFixed(2)}x`,
      '',
    ].join('\n'),
  );
}

await main();
