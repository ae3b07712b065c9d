/**
 * The boot bundle for this host's paths. Root takes prepareBootBundle as it is. A rootless user runs a root-owned
 * installation whose guest directory it cannot write: when the initramfs for the current inputs is not cached there
 * (writing it fails with EACCES), it is cached in <stateDir>/guest instead, next to a link to the installed
 * boson-init. The guest kernel must be readable by that user (Debian installs it 0644; Ubuntu 0600):
 * ROOTLESS_SETUP_MISSING says so before QEMU would fail on it.
 */
import { constants } from 'node:fs';
import { access, mkdir, readlink, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import { BosonError, type BosonPaths } from '../common/index.ts';
import { prepareBootBundle, type BootBundle } from '../guest/index.ts';

const readable = new Set<string>();

async function checkReadable(kernelPath: string): Promise<void> {
  if (readable.has(kernelPath)) return;
  try {
    await access(kernelPath, constants.R_OK);
  } catch (cause) {
    throw new BosonError(
      'ROOTLESS_SETUP_MISSING',
      `the guest kernel ${kernelPath} is not readable by uid ${process.geteuid?.()}, and a rootless QEMU must read it: as root, chmod 0644 ${kernelPath}, or set BOSON_GUEST_KERNEL to a readable copy`,
      { cause, details: { kernel: kernelPath } },
    );
  }
  readable.add(kernelPath);
}

const isDenied = (err: unknown): boolean => ['EACCES', 'EPERM', 'EROFS'].includes((err as NodeJS.ErrnoException).code ?? '');

/** The guest kernel and its modules when configured (BOSON_GUEST_KERNEL, BOSON_GUEST_MODULES); else found. */
export interface GuestKernelOptions {
  kernelPath?: string;
  modulesDir?: string;
}

/** prepareBootBundle for `paths` (see the module comment for rootless mode). */
export async function bootBundle(paths: BosonPaths, kernel: GuestKernelOptions = {}): Promise<BootBundle> {
  let bundle: BootBundle;
  try {
    bundle = await prepareBootBundle({ guestDir: paths.guestDir, ...kernel });
  } catch (err) {
    if (!paths.rootless || !isDenied(err)) throw err;
    const dir = path.join(paths.stateDir, 'guest');
    await mkdir(dir, { recursive: true });
    const init = path.join(dir, 'boson-init');
    const target = path.join(paths.guestDir, 'boson-init');
    if ((await readlink(init).catch(() => null)) !== target) {
      await rm(init, { force: true });
      await symlink(target, init);
    }
    bundle = await prepareBootBundle({ guestDir: dir, ownKernelDir: path.join(paths.guestDir, 'kernel'), ...kernel });
  }
  if (paths.rootless) await checkReadable(bundle.kernelPath);
  return bundle;
}
