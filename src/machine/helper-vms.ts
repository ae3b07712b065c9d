/**
 * Helper micro-VMs: the files of a container that is not running are reached by booting its own disks (image root,
 * writable layer, volumes, bind mounts) in a short-lived micro-VM with no network, whose main process only waits, and running
 * execs there (`docker cp` of a stopped container: busybox `stat` and `tar` in the guest, as for a running one).
 * The host never mounts or parses the guest-written filesystem (docs/security.md). A helper serves every exec of
 * its container until it has been idle for `idleMs`, so that a copy's stat and transfer share one boot; it is ended
 * the clean way (its main process's stdin closed: boson-init syncs the disks, reports the exit, powers off) before
 * the container starts or is removed, since two VMs must never write one ext4 disk.
 */
import { FrameType } from '../guest/index.ts';
import type { Vm } from '../vmm/index.ts';
import type { ControlChannel } from './control-channel.ts';

/** A booted helper, as the runtime runs execs in it (the shape of the runtime's live VMs). */
export interface HelperLive {
  vm: Vm;
  ctl: ControlChannel;
  execs: Map<number, { done: (code: number) => void }>;
  nextSession: number;
  finished: boolean;
}

interface Helper<L extends HelperLive> {
  live: L;
  users: number;
  idle: NodeJS.Timeout | undefined;
  /** Resolves when the helper has no exec running any more. */
  drained: Promise<void>;
  resolveDrained: () => void;
  /** Set once ending has begun. */
  ending: Promise<void> | undefined;
  /** Resolves once the VM is gone and what its boot claimed (volumes, the log file) is freed. */
  cleaned: Promise<void>;
}

/** The helper VMs of one runtime, by container id. */
export class HelperVms<L extends HelperLive> {
  private readonly helpers = new Map<string, Helper<L>>();

  constructor(
    private readonly options: {
      /** How long an idle helper waits for another exec before it is ended. */
      idleMs: number;
      /** Runs work in the background, logging a failure as `what`. */
      background: (work: Promise<unknown>, what: string) => void;
    },
  ) {}

  /** True while container `id` has a helper VM. */
  has(id: string): boolean {
    return this.helpers.has(id);
  }

  /**
   * The helper of container `id` (booted by `boot` when there is none), counted as used until `release` is called.
   * The caller holds the container's lock, so no start or removal runs meanwhile.
   */
  async acquire(id: string, boot: () => Promise<{ live: L; cleanup: () => Promise<void> }>): Promise<{ live: L; release: () => void }> {
    let h = this.helpers.get(id);
    if (h && (h.live.finished || h.ending)) {
      await this.end(id);
      h = undefined;
    }
    if (!h) {
      const booted = await boot();
      let resolveDrained!: () => void;
      const drained = new Promise<void>((r) => (resolveDrained = r));
      const helper: Helper<L> = {
        live: booted.live,
        users: 0,
        idle: undefined,
        drained,
        resolveDrained,
        ending: undefined,
        cleaned: Promise.resolve(),
      };
      helper.cleaned = helper.live.vm.exited.then(async () => {
        helper.live.finished = true;
        for (const [, e] of helper.live.execs) e.done(137);
        if (this.helpers.get(id) === helper) this.helpers.delete(id);
        clearTimeout(helper.idle);
        helper.resolveDrained();
        await booted.cleanup();
      });
      this.options.background(helper.cleaned, `following the helper micro-VM of container ${id.slice(0, 12)}`);
      this.helpers.set(id, helper);
      h = helper;
    }
    clearTimeout(h.idle);
    if (h.users === 0) h.drained = new Promise<void>((r) => (h!.resolveDrained = r));
    h.users++;
    const helper = h;
    let released = false;
    return {
      live: h.live,
      release: () => {
        if (released) return;
        released = true;
        if (--helper.users > 0) return;
        helper.resolveDrained();
        helper.idle = setTimeout(
          () => this.options.background(this.end(id, helper), 'ending an idle helper micro-VM'),
          this.options.idleMs,
        );
        helper.idle.unref();
      },
    };
  }

  /**
   * Ends container `id`'s helper, if it has one: waits up to `drainMs` for its execs to finish, then closes the main
   * process's stdin (boson-init syncs and powers off) and waits for the VM to go (killing it after 10 s).
   */
  async end(id: string, only?: Helper<L>, drainMs = 60_000): Promise<void> {
    const h = this.helpers.get(id);
    if (!h || (only !== undefined && h !== only)) return;
    if (only !== undefined && h.users > 0) return; // an idle timer that lost the race with a new exec
    clearTimeout(h.idle);
    h.ending ??= (async () => {
      if (h.users > 0) await Promise.race([h.drained, delay(drainMs)]);
      if (!h.live.finished) {
        // boson-init reports the main process's exit only once it has synced the disks: QEMU may go right after.
        const exitReported = new Promise<void>((resolve) => {
          h.live.ctl.onSession(0, (frame) => frame.type === FrameType.EXIT && resolve());
          h.live.ctl.onClose(() => resolve());
        });
        h.live.ctl.send(FrameType.STDIN_EOF, Buffer.alloc(0), 0);
        await Promise.race([exitReported, h.live.vm.exited, delay(10_000)]);
        await h.live.vm.shutdown(1000);
      }
      await h.cleaned;
    })();
    await h.ending;
    if (this.helpers.get(id) === h) this.helpers.delete(id);
  }

  /** Ends every helper (the runtime is closing). */
  async endAll(): Promise<void> {
    await Promise.all([...this.helpers.keys()].map((id) => this.end(id, undefined, 0)));
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
