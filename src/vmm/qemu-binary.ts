/** Finding and describing the QEMU binary (BOSON_QEMU, else qemu-system-x86_64 on PATH). */
import { access, constants } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { BosonError } from '../common/index.ts';

const run = promisify(execFile);

/**
 * Resolves the QEMU binary (`configured`: the BOSON_QEMU setting, from the composition root; default
 * qemu-system-x86_64) to an absolute path; QEMU_MISSING if it is not there or not executable.
 */
export async function findQemu(configured?: string): Promise<string> {
  const wanted = configured ?? 'qemu-system-x86_64';
  const candidates = wanted.includes('/')
    ? [path.resolve(wanted)]
    : // The program search path, as spawn itself looks programs up (not a setting).
      (process.env.PATH ?? '/usr/bin:/bin').split(':').map((d) => path.join(d, wanted));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // try the next one
    }
  }
  throw new BosonError('QEMU_MISSING', `QEMU not found: ${wanted} (install qemu-system-x86, or set BOSON_QEMU)`, {
    details: { binary: wanted },
  });
}

/** QEMU's version string, e.g. "7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)". */
export async function qemuVersion(binary: string): Promise<string> {
  try {
    const { stdout } = await run(binary, ['--version']);
    return /version\s+(.+)/.exec(stdout.split('\n')[0] ?? '')?.[1]?.trim() ?? stdout.trim();
  } catch (cause) {
    throw new BosonError('QEMU_MISSING', `QEMU at ${binary} does not run`, { cause });
  }
}
