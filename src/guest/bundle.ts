/**
 * The guest boot bundle: which kernel a micro-VM boots, and the initramfs Boson assembles for it (boson-init as
 * /init plus exactly the kernel modules it needs). The kernel is a setting (BOSON_GUEST_KERNEL); the default is
 * Boson's own kernel (built by scripts/build-kernel.sh into <guest dir>/kernel, every driver built in), else the
 * newest Debian cloud kernel in /boot. A kernel directory is laid out like /boot: vmlinuz-<release>,
 * config-<release>, and for Boson's own a modules/<release> tree. The initramfs is cached by the hash of everything
 * that goes into it.
 */
import { createHash } from 'node:crypto';
import { chmod, mkdir, open, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BosonError } from '../common/index.ts';
import { writeCpio, type CpioEntry } from './cpio.ts';
import { builtinDrivers, GUEST_MODULES, OPTIONAL_GUEST_MODULES, resolveModules, type ModuleFile } from './modules.ts';

/** Everything needed to boot a Boson guest. */
export interface BootBundle {
  kernelPath: string;
  kernelRelease: string;
  initramfsPath: string;
  initPath: string;
  modules: ModuleFile[];
  /** Whether the kernel finds its virtio-mmio devices through ACPI (else from the kernel command line). */
  acpi: boolean;
  /** Every driver Boson asks for (GUEST_MODULES, the optional ones, extras) that the guest has, as a module or built in. */
  drivers: string[];
}

/** Where to find the pieces; what is not given is found on this host (never read from the environment). */
export interface BundleOptions {
  /** Directory holding the built boson-init and the cached initramfs images. */
  guestDir: string;
  /** Kernel image (the root passes BOSON_GUEST_KERNEL); default Boson's own kernel, or the newest /boot/vmlinuz-*-cloud-amd64. */
  kernelPath?: string;
  /** Where Boson's own kernel is installed; default <guestDir>/kernel. */
  ownKernelDir?: string;
  /** Modules tree (the root passes BOSON_GUEST_MODULES); default <kernel dir>/modules/<release>, or /lib/modules/<release>. */
  modulesDir?: string;
  /** Extra drivers beyond GUEST_MODULES. */
  extraModules?: string[];
}

/** Compares kernel release strings the way humans sort versions (6.1.0-10 < 6.1.0-56). */
function compareVersions(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

/** The newest vmlinuz-* in `dir` (preferring names that end with `suffix`), or undefined. */
async function newestKernelIn(dir: string, suffix = ''): Promise<string | undefined> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.startsWith('vmlinuz-'));
  const preferred = names.filter((n) => n.endsWith(suffix));
  const pick = (preferred.length > 0 ? preferred : names).sort(compareVersions).at(-1);
  return pick === undefined ? undefined : path.join(dir, pick);
}

/**
 * Finds the guest kernel: `configured` (the BOSON_GUEST_KERNEL setting, from the composition root) when set, else
 * Boson's own in `ownKernelDir` (when built), else the newest cloud kernel in /boot, else the newest kernel there.
 */
export async function defaultKernelPath(configured: string | undefined, bootDir = '/boot', ownKernelDir?: string): Promise<string> {
  if (configured) return path.resolve(configured);
  const own = ownKernelDir === undefined ? undefined : await newestKernelIn(ownKernelDir);
  if (own) return own;
  const pick = await newestKernelIn(bootDir, '-cloud-amd64');
  if (!pick) {
    throw new BosonError(
      'GUEST_KERNEL_MISSING',
      `no guest kernel in ${bootDir} (run scripts/build-kernel.sh, install linux-image-cloud-amd64, or set BOSON_GUEST_KERNEL)`,
    );
  }
  return pick;
}

/** The modules tree of a kernel: <its dir>/modules/<release> when that exists (Boson's own), else /lib/modules/<release>. */
async function defaultModulesDir(kernelPath: string, release: string): Promise<string> {
  const beside = path.join(path.dirname(kernelPath), 'modules', release);
  return (await stat(path.join(beside, 'modules.dep')).then(
    () => true,
    () => false,
  ))
    ? beside
    : path.join('/lib/modules', release);
}

/**
 * Whether a kernel finds virtio-mmio devices through ACPI: its config-<release> beside it says CONFIG_ACPI=y, or
 * there is no config to read (the safe guess: every distribution kernel has ACPI). A kernel without ACPI gets
 * QEMU's virtio_mmio.device= command-line entries instead.
 */
export async function kernelUsesAcpi(kernelPath: string, release = kernelReleaseOf(kernelPath)): Promise<boolean> {
  for (const config of [path.join(path.dirname(kernelPath), `config-${release}`), path.join('/boot', `config-${release}`)]) {
    const text = await readFile(config, 'utf8').catch(() => undefined);
    if (text !== undefined) return /^CONFIG_ACPI=y$/m.test(text);
  }
  return true;
}

/** The release a kernel file belongs to, from its name (vmlinuz-<release>). */
export function kernelReleaseOf(kernelPath: string): string {
  const base = path.basename(kernelPath);
  return base.startsWith('vmlinuz-') ? base.slice('vmlinuz-'.length) : base;
}

/**
 * Kernel tunables boson-init writes after loading the modules (the initramfs file boson/settings).
 *
 * Free page reporting (the balloon) reports free blocks of 2^page_reporting_order pages, and only while the zone
 * keeps its low watermark plus 32 such blocks free. The kernel's default order (9, 2 MiB blocks) therefore needs
 * 64 MiB free before it reports anything: a small micro-VM never gets there, and whatever its boot touched stays
 * resident on the host. Order 3 (32 KiB blocks) needs 1 MiB. The virtio_balloon driver sets the order when it
 * registers, so this is written after the module loads.
 */
export const GUEST_SETTINGS: Readonly<Record<string, string>> = {
  '/sys/module/page_reporting/parameters/page_reporting_order': '3',
};

async function mustExist(file: string, code: 'GUEST_KERNEL_MISSING' | 'GUEST_INIT_MISSING', what: string): Promise<void> {
  try {
    await stat(file);
  } catch (cause) {
    throw new BosonError(code, `${what} not found at ${file}`, { cause });
  }
}

/**
 * Refuses a guest kernel file that is not a kernel QEMU can boot: an x86 bzImage (boot protocol header "HdrS" at
 * 0x202) or an ELF vmlinux (PVH). A file Boson may not read is left to the caller's own checks (rootless set-up).
 */
export async function assertBootableKernel(kernelPath: string): Promise<void> {
  let head: Buffer;
  try {
    const file = await open(kernelPath, 'r');
    try {
      head = Buffer.alloc(0x206);
      const { bytesRead } = await file.read(head, 0, head.length, 0);
      head = head.subarray(0, bytesRead);
    } finally {
      await file.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EACCES') return;
    throw err;
  }
  const bzImage = head.length >= 0x206 && head.toString('latin1', 0x202, 0x206) === 'HdrS';
  const elf = head.length >= 4 && head.toString('latin1', 0, 4) === '\x7fELF';
  if (!bzImage && !elf)
    throw new BosonError(
      'GUEST_KERNEL_MISSING',
      `guest kernel at ${kernelPath} is not a kernel image (neither an x86 bzImage nor an ELF vmlinux)`,
    );
}

/**
 * Returns the boot bundle, assembling and caching the initramfs if its inputs changed. Safe to call concurrently:
 * the image is written under a temporary name and renamed into place.
 */
export async function prepareBootBundle(options: BundleOptions): Promise<BootBundle> {
  const kernelPath =
    options.kernelPath ?? (await defaultKernelPath(undefined, '/boot', options.ownKernelDir ?? path.join(options.guestDir, 'kernel')));
  await mustExist(kernelPath, 'GUEST_KERNEL_MISSING', 'guest kernel');
  await assertBootableKernel(kernelPath);
  const kernelRelease = kernelReleaseOf(kernelPath);
  const modulesDir = options.modulesDir ?? (await defaultModulesDir(kernelPath, kernelRelease));
  const acpi = await kernelUsesAcpi(kernelPath, kernelRelease);
  const initPath = path.join(options.guestDir, 'boson-init');
  await mustExist(initPath, 'GUEST_INIT_MISSING', 'boson-init (build it with: make -C guest/init)');

  const wanted = [...GUEST_MODULES, ...(options.extraModules ?? [])];
  const modules = await resolveModules(modulesDir, wanted, OPTIONAL_GUEST_MODULES);
  const builtin = await builtinDrivers(modulesDir);
  const drivers = [...new Set([...wanted, ...OPTIONAL_GUEST_MODULES].filter((d) => builtin.has(d) || modules.some((m) => m.name === d)))];
  const init = await readFile(initPath);
  const hash = createHash('sha256').update(init).update(kernelRelease);
  const moduleData: Buffer[] = [];
  for (const mod of modules) {
    const data = await readFile(path.join(modulesDir, mod.relPath));
    hash.update(mod.relPath).update(data);
    moduleData.push(data);
  }
  const settings = Object.entries(GUEST_SETTINGS)
    .map(([file, value]) => `${file} ${value}\n`)
    .join('');
  hash.update(settings);
  const digest = hash.digest('hex').slice(0, 16);
  const initramfsPath = path.join(options.guestDir, `initramfs-${kernelRelease}-${digest}.cpio`);
  try {
    await stat(initramfsPath);
  } catch {
    const entries: CpioEntry[] = [
      { kind: 'file', path: 'init', data: init, mode: 0o755 },
      { kind: 'dir', path: 'boson' },
      { kind: 'dir', path: 'modules' },
      ...['dev', 'proc', 'sys', 'newroot'].map((d): CpioEntry => ({ kind: 'dir', path: d })),
    ];
    modules.forEach((mod, i) => entries.push({ kind: 'file', path: `modules/${mod.name}.ko`, data: moduleData[i]! }));
    const list = modules.map((m) => `/modules/${m.name}.ko\n`).join('');
    entries.push({ kind: 'file', path: 'boson/modules', data: Buffer.from(list) });
    entries.push({ kind: 'file', path: 'boson/settings', data: Buffer.from(settings) });
    await mkdir(options.guestDir, { recursive: true });
    const tmp = `${initramfsPath}.tmp-${process.pid}`;
    await writeFile(tmp, writeCpio(entries));
    // The guest directory is shared: rootless users' QEMUs read the same cached initramfs (Boson's own files are
    // private by umask, this one is not secret).
    await chmod(tmp, 0o644);
    await rename(tmp, initramfsPath);
  }
  return { kernelPath, kernelRelease, initramfsPath, initPath, modules, acpi, drivers };
}
