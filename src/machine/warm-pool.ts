/**
 * Warm start: a pool of micro-VMs booted ahead of their containers, up to boson-init's HELLO, then paused (QMP stop)
 * until a start takes one and hands it its SPEC. See docs/design.md "Warm start".
 *
 * A warm VM is booted for a **shape**: the image's root disk, memory, vCPUs, whether its writable layer has a
 * journal (containers kept after they exit) and whether it has a network card. What depends on the container is
 * moved to it when a start claims the VM, without touching QEMU:
 *   - the writable layer and the log file are files of the pool's own directory, renamed over the container's
 *     (same filesystem: QEMU keeps its open descriptors);
 *   - the runtime directory (sockets, pid file, chroot) is renamed to the container's (MicroVm.relocate);
 *   - the tap is made on no network (NetworkManager.spareTap) and put on the container's network by connect();
 *   - identity travels in the SPEC as for any start: hostname, the container's MAC (boson-init gives it to the one
 *     interface that has another, and virtio-net tells QEMU), address, DNS, the clock, and 32 bytes of entropy
 *     (ENTROPY: credited and the generator reseeded).
 * A start that finds no VM of its shape boots one cold, as always. A warm VM that died, or fails to take its SPEC,
 * is discarded and the start boots cold instead, without an error.
 *
 * The pool keeps `perShape` VMs of each shape it is asked to keep, within a memory budget (the VMs' guest memory
 * sizes, which is what their cgroups allow). The shapes: every configured image with the default size of a
 * `run --rm` (no journal) and of a kept container (journal); a start that missed adds its own shape for an image the
 * pool keeps. VMs boot one at a time, so that refilling does not starve the host's CPUs.
 *
 * Nothing outlives the daemon: close() kills the pool's VMs; a daemon killed -9 leaves them, and the next one's
 * init() kills every VM of a pool directory (`<run dir>/vms/w-*`), releases its cgroup and removes its files; its
 * taps are deleted by the network manager's init (taps in no state).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pidAlive, toBosonError, type Logger } from '../common/index.ts';
import type { BootBundle } from '../guest/index.ts';
import { bootWithWatchdog, type MicroVmConfig, type Vm, type VmJail, type Vmm } from '../vmm/index.ts';
import { ControlChannel } from './control-channel.ts';
import { createScratchDisk, DEFAULT_SCRATCH_BYTES } from './scratch.ts';
import type { WarmPoolView } from './port/schemas.ts';
import { WakeableSleep } from './wakeable-sleep.ts';

/** What a warm VM is booted for; a start can take only a VM of its own shape. */
export interface WarmShape {
  /** The image reference the pool was configured with (for display). */
  image: string;
  imageId: string;
  rootDisk: { path: string; fstype: string };
  memoryMiB: number;
  cpus: number;
  /** The writable layer has a journal (a container kept after it exits). */
  journal: boolean;
  /** The VM has a network card (a tap); false for --network none. */
  nic: boolean;
}

/** The pool's settings (from the composition root). */
export interface WarmPoolOptions {
  /** Images to keep warm VMs for (references as the user wrote them). */
  images: string[];
  /** Warm VMs kept per shape. */
  perShape: number;
  /** The guest memory all warm VMs together may have, MiB. */
  memoryBudgetMiB: number;
  /** The memory and vCPUs of a container that asks for none. */
  defaultMemoryMiB: number;
  /** The boot watchdog for one warm boot, ms. */
  bootTimeoutMs: number;
  stateDir: string;
  runDir: string;
  debug?: boolean;
}

/** What the pool needs of the runtime around it. */
export interface WarmPoolParts {
  vmm: Vmm;
  bootBundle: () => Promise<BootBundle>;
  /** An image's id and root disk; null when it is not stored (yet). */
  image: (ref: string) => Promise<{ imageId: string; rootDisk: { path: string; fstype: string } } | null>;
  /** Taps on no network, for VMs with a card; null where there are none (rootless, no networks). */
  taps: { spare(): Promise<string>; drop(tap: string): Promise<void> } | null;
  /** The confinement of a VM named `name` of that size, living in `runtimeDir`. */
  jail: (name: string, memoryMiB: number, cpus: number, runtimeDir: string) => VmJail | undefined;
  log: Logger;
}

/** One warm VM. */
export interface WarmVm {
  readonly id: string;
  readonly shape: WarmShape;
  /** The kernel and initramfs it booted (a start with another bundle does not take it). */
  readonly bundle: string;
  readonly vm: Vm;
  readonly ctl: ControlChannel;
  /** Its tap, put on the container's network by connect({tap}). */
  readonly tap: string | undefined;
  /** Its runtime directory, writable layer and log file until a start claims it. */
  readonly dir: string;
  readonly scratch: string;
  readonly logFile: string;
}

/** Where a claimed VM's files go: the container's. */
export interface WarmTarget {
  runtimeDir: string;
  scratch: string;
  logFile: string;
  /** The container's cgroup name (the VM's is renamed to it). */
  cgroupName?: string;
}

/** A claimed warm VM, running, its files the container's. */
export interface ClaimedVm {
  vm: Vm;
  ctl: ControlChannel;
  /** The container started: forget what undo() would need. */
  commit(): Promise<void>;
  /** It turned out bad (died, did not take its SPEC): kills it and puts the container's files back as they were. */
  undo(): Promise<void>;
}

/** What `boson info` and /metrics show of the pool: the port's WarmPoolView. */
export type WarmPoolStats = WarmPoolView;

/** The key of a shape (and of a bundle): equal keys, interchangeable VMs. */
export function shapeKey(s: WarmShape): string {
  return [
    s.imageId,
    s.rootDisk.path,
    s.rootDisk.fstype,
    s.memoryMiB,
    s.cpus,
    s.journal ? 'journal' : 'nojournal',
    s.nic ? 'nic' : 'none',
  ].join('|');
}

/** Prefix of a pool VM's directory under `<run dir>/vms` (a container's is 16 hex digits, never this). */
export const WARM_DIR_PREFIX = 'w-';

/** How long after a start took a VM the pool waits before it boots a replacement (leaving the CPUs to the start). */
const REFILL_DELAY_MS = 1500;

/** How long a warm VM may take to resume (QMP cont) before it counts as bad. */
const RESUME_TIMEOUT_MS = 3000;

/** Shapes a start that missed may add per configured image, beyond the defaults. */
const MAX_LEARNED_SHAPES = 4;

/** The pool of warm micro-VMs (see the module comment). */
export class WarmPool {
  private readonly ready = new Map<string, WarmVm[]>();
  private readonly booting = new Map<string, number>();
  /** Shapes to keep, by key. */
  private readonly wanted = new Map<string, WarmShape>();
  private closed = false;
  private readonly nap = new WakeableSleep();
  private loop: Promise<void> | undefined;
  private readonly counters = { hits: 0, misses: 0, fallbacks: 0, bootFailures: 0, discarded: 0 };
  private readonly imageIds = new Set<string>();
  private lastTake = 0;
  /** The VM booting now (killed by close()). */
  private inflight: Vm | undefined;

  constructor(
    private readonly options: WarmPoolOptions,
    private readonly parts: WarmPoolParts,
  ) {}

  /** True when the pool keeps anything at all. */
  get enabled(): boolean {
    return this.options.images.length > 0 && this.options.perShape > 0 && this.options.memoryBudgetMiB > 0;
  }

  /**
   * Removes what a pool of an earlier daemon left: its VMs killed, cgroups released, files deleted (start() then
   * fills it).
   */
  async init(): Promise<void> {
    const vms = path.join(this.options.runDir, 'vms');
    for (const name of await readdir(vms).catch(() => [] as string[])) {
      if (!name.startsWith(WARM_DIR_PREFIX)) continue;
      const dir = path.join(vms, name);
      const pid = await qemuOf(dir);
      if (pid !== null) {
        process.kill(pid, 'SIGKILL');
        // Until it is gone for good (its cgroup is busy until then), polled with a timer that keeps the process
        // alive: a daemon starting up has nothing else to wait on yet.
        for (let i = 0; i < 500 && pidAlive(pid); i++) await new Promise((r) => setTimeout(r, 20));
        this.parts.log.info({ vmDir: name, qemuPid: pid }, 'killed a warm micro-VM left by an earlier daemon');
      }
      await this.parts.vmm.cleanup(dir).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
    await rm(path.join(this.options.stateDir, 'warm'), { recursive: true, force: true });
  }

  /**
   * Starts filling in the background (after the daemon's sweep of orphaned VMs, which would take a VM booting
   * meanwhile for an orphan). Does nothing when the pool keeps nothing, or once started.
   */
  start(): void {
    if (!this.enabled || this.loop || this.closed) return;
    this.loop = this.fill().catch((err: unknown) =>
      this.parts.log.warn({ error: toBosonError(err).message }, 'the warm pool stopped filling'),
    );
  }

  /**
   * Takes a ready warm VM of `shape` booted with `bundle` (its kernel path + initramfs path), or undefined. A miss for
   * an image the pool keeps makes the pool keep that shape too.
   */
  take(shape: WarmShape, bundle: BootBundle): WarmVm | undefined {
    if (!this.enabled || !this.imageIds.has(shape.imageId) || (shape.nic && this.parts.taps === null)) return undefined;
    const key = shapeKey(shape);
    const list = this.ready.get(key) ?? [];
    const bkey = bundleKeyOf(bundle);
    let vm: WarmVm | undefined;
    while ((vm = list.shift())) {
      if (!vm.vm.hasExited && vm.bundle === bkey) break;
      this.dropped(vm, 'dead, or booted with another kernel');
    }
    this.lastTake = Date.now();
    if (vm) this.counters.hits++;
    else {
      this.counters.misses++;
      const learned = [...this.wanted.values()].filter((w) => w.imageId === shape.imageId).length;
      if (!this.wanted.has(key) && learned < 2 + MAX_LEARNED_SHAPES)
        this.wanted.set(key, { ...shape, image: this.imageName(shape.imageId) });
    }
    this.nap.wake();
    return vm;
  }

  /**
   * Whether a container's files can take a warm VM: a first start (no log yet: QEMU appends to the pool's file, which
   * replaces it) with a writable layer of the default size.
   */
  async fits(target: { logFile: string; scratchBytes: number | undefined }): Promise<boolean> {
    if (!this.enabled || (await exists(target.logFile))) return false;
    return target.scratchBytes === DEFAULT_SCRATCH_BYTES;
  }

  /**
   * Gives a taken warm VM the container's files and resumes it; null (the VM discarded, nothing changed) when it
   * turns out dead or will not resume. The caller then sends the SPEC, and commits or undoes.
   */
  async claim(warm: WarmVm, target: WarmTarget): Promise<ClaimedVm | null> {
    const aside = `${target.scratch}.cold`;
    let moved = false;
    try {
      if (warm.vm.hasExited) throw new Error('it has exited');
      // The container's own log must be new: QEMU appends to the pool's file, which replaces it.
      if (await exists(target.logFile)) throw new Error('the container has a log already');
      if ((await stat(target.scratch)).size !== (await stat(warm.scratch)).size) throw new Error('another writable layer size');
      // A QEMU that does not answer in time is a bad one (QMP waits forever on a stopped process).
      await withTimeout(warm.vm.resume(), RESUME_TIMEOUT_MS, 'it did not resume');
      await rename(target.scratch, aside);
      moved = true;
      await rename(warm.scratch, target.scratch);
      await rename(warm.logFile, target.logFile);
      if (!warm.vm.relocate) throw new Error('this VMM cannot move a VM');
      await warm.vm.relocate(target.runtimeDir, target.cgroupName);
    } catch (err) {
      this.counters.fallbacks++;
      this.parts.log.info({ warmVm: warm.id, error: (err as Error).message }, 'a warm micro-VM could not be claimed; booting cold');
      if (moved) {
        await warm.vm.kill();
        await rm(target.logFile, { force: true });
        await rename(aside, target.scratch).catch(() => undefined);
      }
      // Its tap is the container's endpoint's now (connect took it): the cold boot opens it.
      await this.release(warm, false);
      return null;
    }
    await rm(path.dirname(warm.scratch), { recursive: true, force: true });
    return {
      vm: warm.vm,
      ctl: warm.ctl,
      commit: () => rm(aside, { force: true }),
      undo: async () => {
        this.counters.fallbacks++;
        await warm.vm.kill();
        await rm(target.logFile, { force: true });
        await rename(aside, target.scratch);
        await rm(target.runtimeDir, { recursive: true, force: true });
        await mkdir(target.runtimeDir, { recursive: true });
        this.counters.discarded++;
      },
    };
  }

  /** Counts and shapes, for `boson info` and /metrics. */
  stats(): WarmPoolStats {
    const shapes = [...this.wanted.entries()].map(([key, s]) => ({
      image: s.image,
      memoryMiB: s.memoryMiB,
      cpus: s.cpus,
      journal: s.journal,
      nic: s.nic,
      ready: this.ready.get(key)?.length ?? 0,
      booting: this.booting.get(key) ?? 0,
    }));
    return {
      enabled: this.enabled,
      mode: 'pool',
      images: [...this.options.images],
      perShape: this.options.perShape,
      memoryBudgetMiB: this.options.memoryBudgetMiB,
      memoryUsedMiB: this.memoryUsed(),
      shapes,
      ...this.counters,
    };
  }

  /** Stops filling and kills every warm VM (daemon shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    // A closing daemon may have no other handle open: this keeps it alive until its VMs are gone.
    const keepAlive = setInterval(() => undefined, 1000);
    try {
      this.nap.wake();
      // A boot in progress is not waited for: killed, it fails and removes what it made.
      await this.inflight?.kill();
      await this.loop;
      const all = [...this.ready.values()].flat();
      this.ready.clear();
      await Promise.all(all.map((w) => this.remove(w, true)));
    } finally {
      clearInterval(keepAlive);
    }
  }

  private imageName(imageId: string): string {
    return [...this.wanted.values()].find((w) => w.imageId === imageId)?.image ?? imageId.slice(0, 12);
  }

  private memoryUsed(): number {
    let used = 0;
    for (const list of this.ready.values()) for (const w of list) used += w.shape.memoryMiB;
    for (const [key, n] of this.booting) used += n * (this.wanted.get(key)?.memoryMiB ?? 0);
    return used;
  }

  /** The default shapes of the configured images that are stored now. */
  private async refreshShapes(): Promise<void> {
    for (const ref of this.options.images) {
      const image = await this.parts.image(ref).catch(() => null);
      if (!image) continue;
      this.imageIds.add(image.imageId);
      for (const journal of [false, true]) {
        const shape: WarmShape = {
          image: ref,
          ...image,
          memoryMiB: this.options.defaultMemoryMiB,
          cpus: 1,
          journal,
          nic: this.parts.taps !== null,
        };
        if (!this.wanted.has(shapeKey(shape))) this.wanted.set(shapeKey(shape), shape);
      }
    }
  }

  /** The next shape short of VMs that fits the budget, or undefined. */
  private nextShape(): [string, WarmShape] | undefined {
    const used = this.memoryUsed();
    // The `run --rm` shapes first: they are what a quick start asks for.
    const order = [...this.wanted.entries()].sort((a, b) => Number(a[1].journal) - Number(b[1].journal));
    for (let level = 1; level <= this.options.perShape; level++) {
      for (const [key, shape] of order) {
        const have = (this.ready.get(key)?.length ?? 0) + (this.booting.get(key) ?? 0);
        if (have < level && used + shape.memoryMiB <= this.options.memoryBudgetMiB) return [key, shape];
      }
    }
    return undefined;
  }

  /** Boots warm VMs one at a time while shapes are short, then waits to be woken (a take, a death) or 5 s. */
  private async fill(): Promise<void> {
    let failuresInRow = 0;
    while (!this.closed) {
      // A start that just took a VM runs its container now: the replacement boots once that has had the CPUs.
      const quiet = this.lastTake + REFILL_DELAY_MS - Date.now();
      if (quiet > 0) {
        await this.nap.sleep(quiet);
        continue;
      }
      await this.refreshShapes().catch(() => undefined);
      const next = this.closed ? undefined : this.nextShape();
      if (next) {
        const [key, shape] = next;
        this.booting.set(key, (this.booting.get(key) ?? 0) + 1);
        try {
          const warm = await this.boot(shape);
          if (this.closed) await this.remove(warm, true);
          else {
            const list = this.ready.get(key) ?? [];
            list.push(warm);
            this.ready.set(key, list);
            void warm.vm.exited.then(() => this.discard(warm, 'it exited'));
          }
          failuresInRow = 0;
        } catch (err) {
          if (this.closed) break;
          this.counters.bootFailures++;
          failuresInRow++;
          this.parts.log.warn({ image: shape.image, error: toBosonError(err).message }, 'a warm micro-VM failed to boot');
        } finally {
          this.inflight = undefined;
          this.booting.set(key, (this.booting.get(key) ?? 1) - 1);
        }
        // A pool that cannot boot does not spin: back off after failures.
        if (failuresInRow > 0) await this.nap.sleep(Math.min(1000 * 2 ** failuresInRow, 30_000));
        continue;
      }
      await this.nap.sleep(5000);
    }
  }

  /** Boots one warm VM of `shape` to HELLO and pauses it. */
  private async boot(shape: WarmShape): Promise<WarmVm> {
    const id = randomBytes(6).toString('hex');
    const dir = path.join(this.options.runDir, 'vms', `${WARM_DIR_PREFIX}${id}`);
    const files = path.join(this.options.stateDir, 'warm', id);
    const scratch = path.join(files, 'scratch.ext4');
    const logFile = path.join(files, 'container.log');
    let tap: string | undefined;
    try {
      await Promise.all([mkdir(dir, { recursive: true }), mkdir(files, { recursive: true })]);
      const [bundle] = await Promise.all([this.parts.bootBundle(), createScratchDisk(scratch, DEFAULT_SCRATCH_BYTES, shape.journal)]);
      if (shape.nic) tap = await this.parts.taps!.spare();
      const config: MicroVmConfig = {
        kernel: bundle.kernelPath,
        initramfs: bundle.initramfsPath,
        acpi: bundle.acpi,
        memoryMiB: shape.memoryMiB,
        cpus: shape.cpus,
        disks: [
          { serial: 'boson-root', path: shape.rootDisk.path, readOnly: true },
          { serial: 'boson-scratch', path: scratch, readOnly: false },
        ],
        runtimeDir: dir,
        logFile,
        // A locally administered MAC of the pool's; the container's comes in its SPEC.
        nics: tap ? [{ kind: 'tap', ifname: tap, mac: poolMac() }] : [],
        debug: this.options.debug,
        // boson-init runs a container start's code paths once before HELLO (see guest/init/root.h warm_up).
        extraKernelArgs: [`boson.warmup=${shape.rootDisk.fstype}`],
        jail: this.parts.jail(`${WARM_DIR_PREFIX}${id}`, shape.memoryMiB, shape.cpus, dir),
      };
      let ctl!: ControlChannel;
      const { vm } = await bootWithWatchdog(
        config,
        (booting: Vm) => {
          ctl = new ControlChannel(booting.channel);
          return ctl.waitForHello();
        },
        { timeoutMs: this.options.bootTimeoutMs, attempts: 1 },
        async (c) => (this.inflight = await this.parts.vmm.launch(c)),
      );
      if (this.closed) throw new Error('the pool is closing');
      try {
        await vm.pause?.();
      } catch (err) {
        await vm.kill();
        throw err;
      }
      return { id, shape, bundle: bundleKeyOf(bundle), vm, ctl, tap, dir, scratch, logFile };
    } catch (err) {
      await this.inflight?.kill();
      if (tap) await this.parts.taps?.drop(tap);
      await this.parts.vmm.cleanup(dir).catch(() => undefined);
      await Promise.all([rm(dir, { recursive: true, force: true }), rm(files, { recursive: true, force: true })]);
      throw err;
    }
  }

  /** Drops a ready VM from the pool (it died) and removes it; wakes the filler. A VM taken meanwhile is its start's. */
  private discard(warm: WarmVm, why: string): void {
    const list = this.ready.get(shapeKey(warm.shape));
    const at = list?.indexOf(warm) ?? -1;
    if (at < 0) return;
    list!.splice(at, 1);
    this.dropped(warm, why);
  }

  private dropped(warm: WarmVm, why: string): void {
    this.counters.discarded++;
    this.parts.log.info({ warmVm: warm.id, why }, 'discarded a warm micro-VM');
    void this.remove(warm, true);
    this.nap.wake();
  }

  /**
   * Releases a taken VM that will not be claimed (its start failed before): killed, files removed. `tap`: whether
   * its tap is still the pool's to delete (not when connect() took it).
   */
  async release(warm: WarmVm, tap: boolean): Promise<void> {
    this.counters.discarded++;
    await this.remove(warm, tap);
  }

  /** Kills a warm VM and removes its files, and its tap when `tap`. */
  private async remove(warm: WarmVm, tap: boolean): Promise<void> {
    await warm.vm.kill();
    if (tap && warm.tap) await this.parts.taps?.drop(warm.tap);
    await this.parts.vmm.cleanup(warm.dir).catch(() => undefined);
    await rm(path.dirname(warm.scratch), { recursive: true, force: true });
    await rm(warm.dir, { recursive: true, force: true });
  }
}

/** A random locally administered unicast MAC. */
export function poolMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfc) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** The key of a boot bundle: a warm VM or template booted with another kernel or initramfs is not used. */
export function bundleKeyOf(bundle: BootBundle): string {
  return `${bundle.kernelPath}|${bundle.initramfsPath}`;
}

/** The pid of the QEMU of runtime directory `dir` (its pid file, checked against its command line), or null. */
export async function qemuOf(dir: string): Promise<number | null> {
  const pid = Number((await readFile(path.join(dir, 'qemu.pid'), 'utf8').catch(() => '')).trim());
  if (!Number.isInteger(pid) || pid <= 0) return null;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return cmdline.includes(dir) ? pid : null;
}

/** `work`, or an Error with `message` after `ms`. */
export async function withTimeout<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([work, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}
