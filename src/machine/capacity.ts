/**
 * Admission control: the host refuses a micro-VM it cannot hold, with a clear error, instead of starting it and
 * swapping itself to death or filling its disk.
 */
import { readFile, statfs } from 'node:fs/promises';
import os from 'node:os';
import { BosonError } from '../common/index.ts';

/** Memory kept free for the host itself, in MiB. */
export const HOST_RESERVE_MIB = 256;
/** Free space the state directory must keep, in bytes. */
export const MIN_FREE_DISK_BYTES = 512 * 1024 * 1024;

/** The host's available memory in MiB (MemAvailable), or undefined if unknown. */
export async function availableMemoryMiB(): Promise<number | undefined> {
  const text = await readFile('/proc/meminfo', 'utf8').catch(() => '');
  const kb = Number(/^MemAvailable:\s+(\d+)/m.exec(text)?.[1]);
  return Number.isFinite(kb) && kb > 0 ? Math.floor(kb / 1024) : undefined;
}

/** Throws HOST_CAPACITY_EXCEEDED when `memoryMiB` more or the disk under `stateDir` cannot be had. */
export async function checkHostCapacity(memoryMiB: number, stateDir: string): Promise<void> {
  const available = await availableMemoryMiB();
  if (available !== undefined && memoryMiB > available - HOST_RESERVE_MIB) {
    throw new BosonError(
      'HOST_CAPACITY_EXCEEDED',
      `not enough memory on this host for a ${memoryMiB} MiB micro-VM (${available} MiB available, ${HOST_RESERVE_MIB} MiB kept for the host)`,
      { details: { availableMiB: available, requestedMiB: memoryMiB } },
    );
  }
  const fs = await statfs(stateDir).catch(() => undefined);
  if (fs && fs.bavail * fs.bsize < MIN_FREE_DISK_BYTES) {
    throw new BosonError(
      'HOST_CAPACITY_EXCEEDED',
      `the disk holding ${stateDir} is full (${Math.floor((fs.bavail * fs.bsize) / 1048576)} MiB free; at least ${MIN_FREE_DISK_BYTES / 1048576} MiB needed)`,
    );
  }
}

/** Number of CPUs on this host (the upper bound for --cpus). */
export function hostCpuCount(): number {
  return os.availableParallelism();
}
