/**
 * Warm start from template snapshots (Kata's VM templating; `BOSON_WARM_MODE=template`). See docs/design.md "Warm
 * start".
 *
 * A **template** is kept per shape (image and root disk, memory, vCPUs, network card) and boot bundle: a micro-VM
 * booted to boson-init's HELLO with its guest RAM in a file on a tmpfs (shared), `boson.warmup=<fstype>
 * boson.template` (only the image's disk mounted: each clone's writable layer is another file), paused, its device
 * state saved (x-ignore-shared: the RAM stays in the file), then ended. What is kept: the RAM file and the state file,
 * in this daemon's directory on /dev/shm.
 *
 * A **clone** is launched at start time as a cold boot would be, with the container's own files (writable layer, log,
 * runtime directory, tap, cgroup), plus the template's RAM file mapped privately (copy-on-write) and `-incoming
 * defer`; the template's device state is loaded and the VM continued, and the SPEC gives it its identity as for any
 * start (hostname, MAC, address, DNS, clock, entropy). Its devices are the template's, so a start with volumes,
 * shares or another writable layer size boots cold. A template is never used up: every start of its shape clones
 * it, so a streak of starts never finds it empty.
 *
 * A template that fails to clone (QEMU refuses its state, the clone does not take its SPEC) is discarded and built
 * again; the start boots cold, without an error. Nothing outlives the daemon: close() kills a build in progress and
 * removes the files; after a kill -9 the next daemon's init() removes this daemon's /dev/shm directory (clones that
 * still run keep their mapping of an unlinked file) and the warm pool's init() kills a template VM that was booting
 * (its runtime directory is `<run dir>/vms/w-*`, as the pool's are).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { toBosonError } from '../common/index.ts';
import type { BootBundle } from '../guest/index.ts';
import { bootWithWatchdog, type MicroVmConfig, type Vm } from '../vmm/index.ts';
import { ControlChannel } from './control-channel.ts';
import { DEFAULT_SCRATCH_BYTES } from './scratch.ts';
import { bundleKeyOf, poolMac, shapeKey, withTimeout, WARM_DIR_PREFIX, type WarmPoolParts, type WarmShape } from './warm-pool.ts';
import type { WarmPoolView } from './port/schemas.ts';
import { WakeableSleep } from './wakeable-sleep.ts';

/** The templates' settings (from the composition root). */
export interface WarmTemplatesOptions {
  /** Images to keep templates for (references as the user wrote them). */
  images: string[];
  /** The memory all templates together may hold (their RAM files; a template being built counts its guest size). */
  memoryBudgetMiB: number;
  /** The memory of a container that asks for none. */
  defaultMemoryMiB: number;
  /** The boot watchdog of a template's boot, ms. */
  bootTimeoutMs: number;
  stateDir: string;
  runDir: string;
  /** The tmpfs the RAM files live on (default /dev/shm). */
  shmDir?: string;
  /** A clone's TCG translation cache, MiB (default CLONE_TB_MIB). */
  cloneTbMiB?: number;
  debug?: boolean;
}

/** One template: its RAM file and saved device state. */
export interface Template {
  readonly id: string;
  readonly shape: WarmShape;
  readonly bundle: string;
  readonly ramFile: string;
  readonly stateFile: string;
  /** The kernel arguments it booted with (a clone's command line says the same). */
  readonly kernelArgs: string[];
  /** Host memory its files hold, MiB (measured when it was saved). */
  ramMiB: number;
  clones: number;
}

/** How long a clone may take from launch to running before its template counts as bad. */
const CLONE_TIMEOUT_MS = 10_000;

/**
 * A clone's TCG translation cache by default, MiB. A clone never boots: it translates its start's paths and what its
 * container runs, for which half the boot-sized cache (16 MiB, all resident: QEMU asks for transparent huge pages) is
 * enough; it saves 8 MiB per clone (docs/design.md "Warm start").
 */
const CLONE_TB_MIB = 8;

/** Shapes a start that missed may add per configured image, beyond the defaults. */
const MAX_LEARNED_SHAPES = 4;

/** A template's shape key: the writable layer is not part of a template (none is mounted), so journal does not count. */
function templateKey(shape: WarmShape): string {
  return shapeKey({ ...shape, journal: false });
}

/** This daemon's directory on the tmpfs: one per run directory, so that daemons of other hosts keep theirs. */
export function templateDirOf(runDir: string, shmDir = '/dev/shm'): string {
  return path.join(shmDir, `boson-templates-${createHash('sha256').update(path.resolve(runDir)).digest('hex').slice(0, 16)}`);
}

/** The templates of a daemon (see the module comment). */
export class WarmTemplates {
  private readonly ready = new Map<string, Template>();
  private readonly building = new Set<string>();
  private readonly wanted = new Map<string, WarmShape>();
  private readonly imageIds = new Set<string>();
  private readonly counters = { hits: 0, misses: 0, fallbacks: 0, bootFailures: 0, discarded: 0 };
  private closed = false;
  private readonly nap = new WakeableSleep();
  private loop: Promise<void> | undefined;
  private inflight: Vm | undefined;
  readonly dir: string;

  constructor(
    private readonly options: WarmTemplatesOptions,
    private readonly parts: WarmPoolParts,
  ) {
    this.dir = templateDirOf(options.runDir, options.shmDir);
  }

  /** True when templates are kept at all. */
  get enabled(): boolean {
    return this.options.images.length > 0 && this.options.memoryBudgetMiB > 0;
  }

  /** Removes what an earlier daemon of this run directory left on the tmpfs (its VMs: see the module comment). */
  async init(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }

  /** Starts building templates in the background (after the daemon's orphan sweep). */
  start(): void {
    if (!this.enabled || this.loop || this.closed) return;
    this.loop = this.fill().catch((err: unknown) =>
      this.parts.log.warn({ error: toBosonError(err).message }, 'the warm templates stopped building'),
    );
  }

  /**
   * The ready template a start of `shape` with `bundle` can clone, or undefined (a miss for a kept image makes its
   * shape kept too). A template of another bundle is discarded.
   */
  take(shape: WarmShape, bundle: BootBundle): Template | undefined {
    if (!this.enabled || !this.imageIds.has(shape.imageId) || (shape.nic && this.parts.taps === null)) return undefined;
    const key = templateKey(shape);
    const t = this.ready.get(key);
    if (t && t.bundle !== bundleKeyOf(bundle)) this.discard(t, 'booted with another kernel');
    else if (t) {
      this.counters.hits++;
      t.clones++;
      return t;
    }
    this.counters.misses++;
    const learned = [...this.wanted.values()].filter((w) => w.imageId === shape.imageId).length;
    if (!this.wanted.has(key) && learned < 1 + MAX_LEARNED_SHAPES)
      this.wanted.set(key, { ...shape, journal: false, image: this.imageName(shape.imageId) });
    this.nap.wake();
    return undefined;
  }

  /** Whether a container's writable layer fits a clone: the template's devices have the default size. */
  fits(scratchBytes: number | undefined): boolean {
    return this.enabled && scratchBytes === DEFAULT_SCRATCH_BYTES;
  }

  /**
   * Launches a clone of `t` for the container whose cold boot would be `base` (its files, tap, jail), loads the
   * template's state and continues it: the VM and a control channel on which the SPEC can be sent. A clone that fails
   * is killed, its template discarded (built again), and the error thrown: the caller boots cold.
   */
  async clone(t: Template, base: MicroVmConfig): Promise<{ vm: Vm; ctl: ControlChannel; launchMs: number; restoreMs: number }> {
    let vm: Vm | undefined;
    const t0 = performance.now();
    try {
      const config: MicroVmConfig = {
        ...base,
        ram: { path: t.ramFile, shared: false },
        incoming: true,
        extraKernelArgs: t.kernelArgs,
        tcgTbMiB: this.options.cloneTbMiB ?? CLONE_TB_MIB,
      };
      vm = await this.parts.vmm.launch(config);
      const launched = vm;
      const t1 = performance.now();
      if (!launched.restoreClone) throw new Error('this VMM cannot clone a template');
      await withTimeout(launched.restoreClone(t.stateFile), CLONE_TIMEOUT_MS, 'the clone did not restore in time');
      return { vm: launched, ctl: new ControlChannel(launched.channel), launchMs: t1 - t0, restoreMs: performance.now() - t1 };
    } catch (err) {
      await vm?.kill();
      this.failed(t, (err as Error).message);
      throw err;
    }
  }

  /** A clone of `t` did not take its container (or did not restore): `t` is discarded and built again. */
  failed(t: Template, why: string): void {
    this.counters.fallbacks++;
    this.parts.log.info({ template: t.id, error: why }, 'a template clone failed; booting cold');
    this.discard(t, why);
  }

  /** Counts and shapes, for `boson info` and /metrics (the warm pool's view: one "VM" per ready template). */
  stats(): WarmPoolView {
    return {
      enabled: this.enabled,
      mode: 'template',
      images: [...this.options.images],
      perShape: 1,
      memoryBudgetMiB: this.options.memoryBudgetMiB,
      memoryUsedMiB: Math.round(this.memoryUsed()),
      shapes: [...this.wanted.entries()].map(([key, s]) => {
        const t = this.ready.get(key);
        return {
          image: s.image,
          memoryMiB: s.memoryMiB,
          cpus: s.cpus,
          journal: s.journal,
          nic: s.nic,
          ready: t ? 1 : 0,
          booting: this.building.has(key) ? 1 : 0,
          ...(t ? { ramMiB: Math.round(t.ramMiB), clones: t.clones } : {}),
        };
      }),
      ...this.counters,
    };
  }

  /** Stops building, kills a build in progress and removes every template's files (daemon shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    const keepAlive = setInterval(() => undefined, 1000);
    try {
      this.nap.wake();
      await this.inflight?.kill();
      await this.loop;
      this.ready.clear();
      await rm(this.dir, { recursive: true, force: true });
    } finally {
      clearInterval(keepAlive);
    }
  }

  private imageName(imageId: string): string {
    return [...this.wanted.values()].find((w) => w.imageId === imageId)?.image ?? imageId.slice(0, 12);
  }

  private memoryUsed(): number {
    let used = 0;
    for (const t of this.ready.values()) used += t.ramMiB;
    for (const key of this.building) used += this.wanted.get(key)?.memoryMiB ?? 0;
    return used;
  }

  private discard(t: Template, why: string): void {
    const key = templateKey(t.shape);
    if (this.ready.get(key) !== t) return;
    this.ready.delete(key);
    this.counters.discarded++;
    this.parts.log.info({ template: t.id, why }, 'discarded a template');
    // Clones that run keep their mapping of the RAM file; the next clone gets a new template.
    void rm(path.dirname(t.ramFile), { recursive: true, force: true });
    this.nap.wake();
  }

  /** The default shape of each configured image that is stored now. */
  private async refreshShapes(): Promise<void> {
    for (const ref of this.options.images) {
      const image = await this.parts.image(ref).catch(() => null);
      if (!image) continue;
      this.imageIds.add(image.imageId);
      const shape: WarmShape = {
        image: ref,
        ...image,
        memoryMiB: this.options.defaultMemoryMiB,
        cpus: 1,
        journal: false,
        nic: this.parts.taps !== null,
      };
      if (!this.wanted.has(templateKey(shape))) this.wanted.set(templateKey(shape), shape);
    }
  }

  private nextShape(): [string, WarmShape] | undefined {
    const used = this.memoryUsed();
    for (const [key, shape] of this.wanted)
      if (!this.ready.has(key) && !this.building.has(key) && used + shape.memoryMiB <= this.options.memoryBudgetMiB) return [key, shape];
    return undefined;
  }

  /** Builds templates one at a time while shapes have none, then waits to be woken (a miss, a discard) or 5 s. */
  private async fill(): Promise<void> {
    let failuresInRow = 0;
    while (!this.closed) {
      await this.refreshShapes().catch(() => undefined);
      const next = this.closed ? undefined : this.nextShape();
      if (!next) {
        await this.nap.sleep(5000);
        continue;
      }
      const [key, shape] = next;
      this.building.add(key);
      try {
        const t = await this.build(shape);
        if (this.closed) await rm(path.dirname(t.ramFile), { recursive: true, force: true });
        else this.ready.set(key, t);
        failuresInRow = 0;
      } catch (err) {
        if (this.closed) break;
        this.counters.bootFailures++;
        failuresInRow++;
        this.parts.log.warn({ image: shape.image, error: toBosonError(err).message }, 'a template failed to build');
      } finally {
        this.inflight = undefined;
        this.building.delete(key);
      }
      if (failuresInRow > 0) await this.nap.sleep(Math.min(1000 * 2 ** failuresInRow, 30_000));
    }
  }

  /** Boots a template VM of `shape` to HELLO, pauses it, saves its device state and ends it; its files stay. */
  private async build(shape: WarmShape): Promise<Template> {
    const id = randomBytes(6).toString('hex');
    const vmDir = path.join(this.options.runDir, 'vms', `${WARM_DIR_PREFIX}${id}`);
    const files = path.join(this.options.stateDir, 'warm', id);
    const tdir = path.join(this.dir, id);
    const ramFile = path.join(tdir, 'ram');
    const stateFile = path.join(tdir, 'state');
    let tap: string | undefined;
    let vm: Vm | undefined;
    try {
      await Promise.all([
        mkdir(vmDir, { recursive: true }),
        mkdir(files, { recursive: true }),
        mkdir(tdir, { recursive: true, mode: 0o711 }),
      ]);
      // The template's writable layer is never mounted: an empty sparse file of the clones' size will do.
      const scratch = path.join(files, 'scratch.ext4');
      const handle = await open(scratch, 'wx', 0o600);
      await handle.truncate(DEFAULT_SCRATCH_BYTES).finally(() => handle.close());
      const bundle = await this.parts.bootBundle();
      if (shape.nic) tap = await this.parts.taps!.spare();
      const kernelArgs = [`boson.warmup=${shape.rootDisk.fstype}`, 'boson.template'];
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
        runtimeDir: vmDir,
        logFile: path.join(files, 'container.log'),
        nics: tap ? [{ kind: 'tap', ifname: tap, mac: poolMac() }] : [],
        debug: this.options.debug,
        extraKernelArgs: kernelArgs,
        jail: this.parts.jail(`${WARM_DIR_PREFIX}${id}`, shape.memoryMiB, shape.cpus, vmDir),
        ram: { path: ramFile, shared: true },
      };
      const { vm: booted } = await bootWithWatchdog(
        config,
        (b: Vm) => new ControlChannel(b.channel).waitForHello(),
        { timeoutMs: this.options.bootTimeoutMs, attempts: 1 },
        async (c) => (this.inflight = await this.parts.vmm.launch(c)),
      );
      vm = booted;
      if (this.closed) throw new Error('the daemon is closing');
      if (!vm.pause || !vm.saveTemplate) throw new Error('this VMM cannot make templates');
      await vm.pause();
      await vm.saveTemplate(stateFile);
      await vm.kill();
      const [ram, state] = await Promise.all([stat(ramFile), stat(stateFile)]);
      return {
        id,
        shape,
        bundle: bundleKeyOf(bundle),
        ramFile,
        stateFile,
        kernelArgs,
        ramMiB: (ram.blocks * 512 + state.size) / 1024 / 1024,
        clones: 0,
      };
    } catch (err) {
      await (vm ?? this.inflight)?.kill();
      await rm(tdir, { recursive: true, force: true });
      throw err;
    } finally {
      if (tap) await this.parts.taps?.drop(tap);
      await this.parts.vmm.cleanup(vmDir).catch(() => undefined);
      await Promise.all([rm(vmDir, { recursive: true, force: true }), rm(files, { recursive: true, force: true })]);
    }
  }
}
