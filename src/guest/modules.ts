/**
 * Kernel module resolution for the guest: which .ko files, in which load order, give a kernel the drivers a
 * micro-VM needs. Reads the kernel's own modules.dep and modules.builtin; no modprobe needed.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { BosonError } from '../common/index.ts';

/**
 * Drivers every Boson guest needs: virtio-mmio transport, the control and log ports, disks, overlay root, erofs
 * images, the network card, and the balloon through which the guest gives freed memory back to the host.
 */
export const GUEST_MODULES = ['virtio_mmio', 'virtio_console', 'virtio_blk', 'overlay', 'erofs', 'virtio_net', 'virtio_balloon'] as const;

/**
 * Drivers included when the kernel has them: virtio-9p and virtiofs shares (MOUNT records of kind 9p, virtiofs). Debian's cloud kernel is
 * built without 9p (CONFIG_NET_9P unset); there a 9p mount fails in the guest with MOUNT_FAILED.
 */
export const OPTIONAL_GUEST_MODULES = ['9pnet_virtio', '9p', 'virtiofs'] as const;

/** A module to load: its name and its path relative to the modules directory. */
export interface ModuleFile {
  name: string;
  relPath: string;
}

function moduleName(relPath: string): string {
  return path
    .basename(relPath)
    .replace(/\.ko(\.(xz|zst|gz))?$/, '')
    .replace(/-/g, '_');
}

/**
 * Returns the modules to load, dependencies first, for `wanted` in the modules tree `modulesDir`
 * (/lib/modules/<release>). Built-in drivers are skipped; a driver that is neither a module nor built in is a
 * GUEST_KERNEL_MISSING error. Drivers in `optional` are added after them when the kernel has them (and all their
 * dependencies), and skipped otherwise.
 */
export async function resolveModules(
  modulesDir: string,
  wanted: readonly string[],
  optional: readonly string[] = [],
): Promise<ModuleFile[]> {
  let depText: string;
  let builtinText = '';
  try {
    depText = await readFile(path.join(modulesDir, 'modules.dep'), 'utf8');
  } catch (cause) {
    throw new BosonError('GUEST_KERNEL_MISSING', `kernel modules not found in ${modulesDir} (modules.dep unreadable)`, { cause });
  }
  try {
    builtinText = await readFile(path.join(modulesDir, 'modules.builtin'), 'utf8');
  } catch {
    // A kernel without modules.builtin simply has nothing listed as built in.
  }
  const deps = new Map<string, { relPath: string; deps: string[] }>();
  for (const line of depText.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const relPath = line.slice(0, colon).trim();
    const depPaths = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .filter(Boolean);
    deps.set(moduleName(relPath), { relPath, deps: depPaths.map(moduleName) });
  }
  const builtin = new Set(builtinText.split('\n').filter(Boolean).map(moduleName));

  const ordered: ModuleFile[] = [];
  const seen = new Set<string>();
  const visit = (name: string, trail: string[]): void => {
    if (seen.has(name)) return;
    const entry = deps.get(name);
    if (!entry) {
      if (builtin.has(name)) return;
      throw new BosonError('GUEST_KERNEL_MISSING', `guest kernel has no driver "${name}" (needed by ${trail.join(' → ') || 'boson'})`);
    }
    seen.add(name);
    for (const dep of entry.deps) visit(dep, [...trail, name]);
    ordered.push({ name, relPath: entry.relPath });
  };
  for (const name of wanted) visit(name.replace(/-/g, '_'), []);
  const available = (name: string, trail: Set<string>): boolean => {
    if (trail.has(name)) return true;
    const entry = deps.get(name);
    if (!entry) return builtin.has(name);
    trail.add(name);
    return entry.deps.every((dep) => available(dep, trail));
  };
  for (const raw of optional) {
    const name = raw.replace(/-/g, '_');
    if (available(name, new Set())) visit(name, []);
  }
  return ordered;
}

/** Names of the drivers built into the kernel whose modules tree is `modulesDir` (its modules.builtin; none if absent). */
export async function builtinDrivers(modulesDir: string): Promise<Set<string>> {
  const text = await readFile(path.join(modulesDir, 'modules.builtin'), 'utf8').catch(() => '');
  return new Set(text.split('\n').filter(Boolean).map(moduleName));
}
