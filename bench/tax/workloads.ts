/**
 * The workloads of bench/tax.ts, as argv that run unchanged in both runtimes (the bench image's dash, coreutils and
 * fio), and the parsers of what they print. Timed workloads also print their duration by the container's clock
 * (`date +%s%N` before and after); the bench times them by the host's and only compares the two (a TCG guest's clock
 * ran fast on a loaded host).
 */

/** Sizes of one run: the full bench, or --quick. */
export interface WorkloadSizes {
  cpuLoop: number;
  forkExec: number;
  smallFiles: number;
  fioMiB: number;
  iperfSeconds: number;
}

/** Full-run sizes (calibrated so that a TCG guest spends a few seconds on each). */
export const FULL_SIZES: WorkloadSizes = { cpuLoop: 300_000, forkExec: 400, smallFiles: 2000, fioMiB: 256, iperfSeconds: 5 };
/** --quick sizes. */
export const QUICK_SIZES: WorkloadSizes = { cpuLoop: 50_000, forkExec: 60, smallFiles: 300, fioMiB: 32, iperfSeconds: 2 };

/** `sh -c` around `body`, printing the microseconds the body took by the container's clock (last line). */
function timed(body: string): string[] {
  return ['sh', '-c', `t0=$(date +%s%N); ${body}; t1=$(date +%s%N); echo "elapsed_us=$(( (t1 - t0) / 1000 ))"`];
}

/** A CPU-bound loop: the shell's own arithmetic, n iterations, no system calls in the loop. */
export function cpuLoop(n: number): string[] {
  return timed(`i=0; while [ $i -lt ${n} ]; do i=$((i + 1)); done`);
}

/** fork and exec of /bin/true, n times. */
export function forkExecLoop(n: number): string[] {
  return timed(`i=0; while [ $i -lt ${n} ]; do /bin/true; i=$((i + 1)); done`);
}

/**
 * n small files created and written by the shell (open O_CREAT, write, close each), then all unlinked by one rm, on
 * the container's writable layer (/var/tmp, not a tmpfs in either runtime).
 */
export function smallFiles(n: number): string[] {
  return timed(`d=/var/tmp/tax-files; mkdir -p $d; i=0; while [ $i -lt ${n} ]; do echo data > $d/f$i; i=$((i + 1)); done; rm -r $d`);
}

/** The microseconds a timed workload reported (its last `elapsed_us=` line). */
export function parseElapsedUs(stdout: string): number {
  const m = [...stdout.matchAll(/^elapsed_us=(\d+)$/gm)].pop();
  if (!m) throw new Error(`no elapsed_us line in the workload's output: ${JSON.stringify(stdout.slice(-200))}`);
  return Number(m[1]);
}

/**
 * fio, sequential, 1 MiB blocks, one file of `mib` MiB in `dir`: `write` ends with an fsync (the data is on the disk
 * when it ends); `read` reads the same file back after fio dropped it from the page cache (fio's default invalidate).
 * The file is removed after the read.
 */
export function fio(dir: string, rw: 'write' | 'read', mib: number): string[] {
  const file = `${dir}/tax.fio`;
  const base = [
    'fio',
    '--name=tax',
    `--filename=${file}`,
    `--rw=${rw}`,
    '--bs=1M',
    `--size=${mib}M`,
    '--ioengine=psync',
    '--output-format=json',
  ];
  if (rw === 'write') return [...base, '--end_fsync=1'];
  return ['sh', '-c', `${base.map((a) => `'${a}'`).join(' ')} && rm -f ${file}`];
}

/** MiB/s of the one job in fio's JSON output (its `bw` is in KiB/s). */
export function parseFioMiBps(stdout: string, rw: 'write' | 'read'): number {
  const start = stdout.indexOf('{');
  if (start < 0) throw new Error(`no JSON in fio's output: ${JSON.stringify(stdout.slice(0, 200))}`);
  const json = JSON.parse(stdout.slice(start)) as { jobs: Array<Record<'read' | 'write', { bw: number; io_kbytes: number }>> };
  const job = json.jobs[0]?.[rw];
  if (!job || !(job.io_kbytes > 0)) throw new Error(`fio moved no data (${rw})`);
  return job.bw / 1024;
}

/** Mbit/s received in iperf3's JSON output (the client's end.sum_received). */
export function parseIperfMbps(stdout: string): number {
  const json = JSON.parse(stdout) as { end?: { sum_received?: { bits_per_second: number } }; error?: string };
  if (json.error) throw new Error(`iperf3: ${json.error}`);
  const bps = json.end?.sum_received?.bits_per_second;
  if (!(bps && bps > 0)) throw new Error('iperf3 reported no throughput');
  return bps / 1e6;
}

/** PSS and its shared-memory part (KiB) from /proc/PID/smaps_rollup. */
export function parseSmapsRollup(text: string): { pssKb: number; pssShmemKb: number } {
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  const pssKb = field('Pss');
  if (!Number.isFinite(pssKb)) throw new Error('no Pss line in smaps_rollup');
  const shmem = field('Pss_Shmem');
  return { pssKb, pssShmemKb: Number.isFinite(shmem) ? shmem : 0 };
}
