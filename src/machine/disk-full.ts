/**
 * Containers whose micro-VM QEMU paused because the host's disk filled up under one of its disks (a sparse
 * writable layer or volume that could not grow). Such a VM keeps the write it could not do and waits; this guard
 * records it, refuses what cannot work meanwhile, and resumes it once the disk holding the state directory has
 * room again, so that a full disk costs the container time but none of its data.
 */
import { statfs } from 'node:fs/promises';
import type { Vm } from '../vmm/index.ts';

/** Free space on the state directory's disk at which paused VMs are resumed. */
export const RESUME_FREE_BYTES = 64 * 1024 * 1024;
/** How often the free space is looked at while some VM is paused. */
export const RESUME_POLL_MS = 1000;

/** Tracks and resumes micro-VMs paused on a full host disk. */
export class DiskFullGuard {
  private readonly paused = new Map<string, { vm: Vm; since: string }>();
  private timer: NodeJS.Timeout | undefined;
  private checking = false;

  /**
   * `onChange(id, paused)` is called when a VM is paused (true) and when it has been resumed (false); it must not
   * throw.
   */
  constructor(
    private readonly stateDir: string,
    private readonly onChange: (id: string, paused: boolean) => void,
  ) {}

  /** Follows `vm` (container `id`): every pause on a full disk is recorded. */
  watch(id: string, vm: Vm): void {
    vm.onHostDiskFull(() => this.mark(id, vm));
  }

  /** Records that container `id`'s VM is paused on a full disk (also for a VM found paused after a daemon restart). */
  mark(id: string, vm: Vm): void {
    if (this.paused.has(id)) return;
    this.paused.set(id, { vm, since: new Date().toISOString() });
    this.onChange(id, true);
    this.timer ??= setInterval(() => void this.check(), RESUME_POLL_MS).unref();
  }

  /** Why container `id` is paused, or undefined when it is not. */
  reason(id: string): string | undefined {
    const p = this.paused.get(id);
    return p ? `the disk holding ${this.stateDir} is full (paused since ${p.since})` : undefined;
  }

  /** Forgets container `id` (its VM has ended). */
  forget(id: string): void {
    this.paused.delete(id);
    this.stopIfIdle();
  }

  /** Stops watching the disk (daemon shutdown; the VMs stay as they are). */
  close(): void {
    this.paused.clear();
    this.stopIfIdle();
  }

  private stopIfIdle(): void {
    if (this.paused.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** Resumes every paused VM if the disk has room again. */
  private async check(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      const fs = await statfs(this.stateDir).catch(() => undefined);
      if (!fs || fs.bavail * fs.bsize < RESUME_FREE_BYTES) return;
      for (const [id, { vm }] of [...this.paused]) {
        this.paused.delete(id);
        // A write that still does not fit pauses it again, and the event marks it again.
        await vm.resume().catch(() => undefined);
        if (!this.paused.has(id)) this.onChange(id, false);
      }
      this.stopIfIdle();
    } finally {
      this.checking = false;
    }
  }
}
