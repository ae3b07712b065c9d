/**
 * Pull benchmark: a generated multi-layer image (random data, so it does not compress away; ~64 MB by default) is
 * pushed to a loopback docker-registry, then pulled and unpacked into a bootable root disk by Boson (library,
 * cold store) and, in the same process, by the baseline `skopeo copy docker://… oci:DIR` + `umoci unpack`.
 * Runs alternate. Then a second pull of the same image (everything cached), through the library and the CLI (each CLI
 * run next to a bare `node -e 0`, the floor). Prints p50 with the range, and for Boson when its phases ended (from
 * its progress events): downloads verified, last layer flattened, mkfs done.
 *
 *   npx tsx bench/pull.ts [--runs 5] [--mb 64]
 */
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../src/common/index.ts';
import { openImageStore } from '../src/main/index.ts';
import { makeTar, writeOciLayout } from '../src/image/oci-writer.ts';
import { busyboxLayerTar, pushLayout, startRegistry, testConfig } from '../test/registry-fixture.ts';

const run = promisify(execFile);
const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const runs = arg('runs', 5);
const mb = arg('mb', 64);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const spread = (xs: number[], digits = 0): string =>
  `p50 ${median(xs).toFixed(digits)} ms (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;

const work = await fs.realpath(await fs.mkdtemp(path.join('/var/tmp', 'boson-bench-pull-')));
const registry = await startRegistry();
try {
  // Layers: busybox, then 4 layers of random files (gzip), one of many small files.
  const layers = [{ tar: await busyboxLayerTar() }];
  const per = Math.ceil((mb * 1e6) / 4);
  for (let l = 0; l < 4; l++) {
    const files = Array.from({ length: 8 }, (_, i) => ({ name: `data/l${l}/f${i}.bin`, content: randomBytes(Math.floor(per / 8)) }));
    layers.push({ tar: await makeTar(files) });
  }
  layers.push({
    tar: await makeTar(Array.from({ length: 2000 }, (_, i) => ({ name: `small/d${i % 50}/f${i}.txt`, content: `file ${i}\n`.repeat(20) }))),
  });
  const layout = path.join(work, 'layout');
  await writeOciLayout(layout, [{ config: testConfig(), refName: 'v1', layers }]);
  const ref = `${registry.host}/bench/big:v1`;
  await pushLayout(layout, 'v1', ref);
  const blobBytes = (
    await Promise.all((await fs.readdir(path.join(layout, 'blobs', 'sha256'))).map((f) => fs.stat(path.join(layout, 'blobs', 'sha256', f))))
  ).reduce((s, st) => s + st.size, 0);
  console.log(`image: ${layers.length} layers, ${(blobBytes / 1e6).toFixed(1)} MB of blobs, at ${ref}`);

  const boson: number[] = [];
  const baseline: number[] = [];
  for (let i = 0; i < runs; i++) {
    const state = path.join(work, `state-${i}`);
    let t = performance.now();
    const phases: Record<string, number> = {};
    const store = openImageStore(state);
    const r = await store.pull(ref, {
      onProgress: (e) => {
        if (e.phase === 'downloaded' || e.phase === 'mkfs' || e.phase === 'done') phases[e.phase] = performance.now() - t;
      },
    });
    await store.rootDisk(r.image);
    boson.push(performance.now() - t);
    const phase = (k: string): string => (phases[k] === undefined ? '?' : phases[k]!.toFixed(0));

    const oci = path.join(work, `oci-${i}`);
    const bundle = path.join(work, `bundle-${i}`);
    t = performance.now();
    await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `oci:${oci}:v1`]);
    await run('umoci', ['unpack', '--image', `${oci}:v1`, bundle]);
    baseline.push(performance.now() - t);
    await fs.rm(state, { recursive: true, force: true });
    await fs.rm(oci, { recursive: true, force: true });
    await fs.rm(bundle, { recursive: true, force: true });
    console.log(
      `run ${i + 1}: boson ${boson[i]!.toFixed(0)} ms (downloads verified ${phase('downloaded')}, flattened ${phase('mkfs')}, mkfs done ${phase('done')}), skopeo+umoci ${baseline[i]!.toFixed(0)} ms`,
    );
  }
  console.log(
    `cold pull + root disk (${runs} runs): boson ${spread(boson)}; skopeo copy + umoci unpack ${spread(baseline)}; ratio of p50s ${(median(boson) / median(baseline)).toFixed(2)}x (goal <= 1.0x)`,
  );

  // Cached: pull again into a warm store.
  const state = path.join(work, 'state-warm');
  const store = openImageStore(state);
  await store.pull(ref);
  const lib: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t = performance.now();
    const r = await openImageStore(state).pull(ref);
    lib.push(performance.now() - t);
    if (!r.upToDate) throw new Error('second pull was not up to date');
  }
  const cli: number[] = [];
  const bin = path.join(PACKAGE_ROOT, 'bin', 'boson');
  spawnSync(bin, ['--version']); // builds the CLI bundle if needed
  spawnSync('node', ['-e', '0']);
  const nodeStart: number[] = [];
  for (let i = 0; i < 20; i++) {
    let t = performance.now();
    const p = spawnSync(bin, ['pull', '-q', ref], { env: { ...process.env, BOSON_STATE_DIR: state } });
    cli.push(performance.now() - t);
    if (p.status !== 0) throw new Error(`boson pull failed: ${p.stderr.toString()}`);
    t = performance.now();
    spawnSync('node', ['-e', '0']);
    nodeStart.push(performance.now() - t);
  }
  console.log(
    `cached pull: library ${spread(lib, 1)}; CLI (bin/boson pull -q, 20 runs) ${spread(cli)}, bare \`node -e 0\` ${spread(nodeStart)}; goal < 100 ms`,
  );
  console.log(`host: ${os.cpus().length} vCPU, ${os.release()}`);
} finally {
  await registry.stop();
  await fs.rm(work, { recursive: true, force: true });
}
