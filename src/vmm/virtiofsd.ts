/**
 * How one virtiofsd is started for one bind mount: the command line, and the guard it runs under.
 *
 * QEMU 7.2's C virtiofsd runs as root on the host and creates files with the guest's uid and gid, so what guest root
 * asks for is what the host gets. Each one therefore runs:
 * - under `virtiofsd-guard` (src/vmm/fsguard), a seccomp filter that refuses with EPERM every mode with S_ISUID or
 *   S_ISGID (chmod, fchmod, fchmodat, open/openat/creat, mknod/mknodat) and every character or block device. Dropping
 *   CAP_FSETID is not enough: the owner of a file may set its set-user-ID bit without it, and virtiofsd is root;
 * - without CAP_MKNOD and CAP_FSETID (`modcaps`): a device node fails twice, and a write clears set-ID bits;
 * - in its namespace sandbox (own mount, PID and network namespaces, pivot_root into the share) with its own
 *   seccomp allow-list, both stated rather than left to defaults; extended attributes off (no file capabilities);
 * - for a read-only share, in a private mount namespace over a read-only bind of the source (microvm.ts), so the
 *   host refuses writes whatever the guest mounts.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { BosonError, PACKAGE_ROOT } from '../common/index.ts';

/** Where setup.sh builds the guard (make -C src/vmm/fsguard). */
export const DEFAULT_VIRTIOFSD_GUARD = path.join(PACKAGE_ROOT, 'build', 'host', 'virtiofsd-guard');

/** virtiofsd's options for a share at `source` (after --socket-path and --socket-group). */
export function virtiofsdOptions(source: string): string[] {
  return ['-o', `source=${source}`, '-o', 'cache=auto', '-o', 'sandbox=namespace', '-o', 'no_xattr', '-o', 'modcaps=-mknod:-fsetid'];
}

/** The guard binary, checked: TOOL_FAILED when it is missing (a share is never served without it). */
export function virtiofsdGuard(guard: string = DEFAULT_VIRTIOFSD_GUARD): string {
  if (!existsSync(guard))
    throw new BosonError(
      'TOOL_FAILED',
      `${guard} is missing: bind mounts are served only under it (it keeps set-user-ID files and device nodes off the host); run scripts/setup.sh`,
    );
  return guard;
}

/** How bind mounts are served on this host (for `boson info`). */
export interface VirtiofsdView {
  virtiofsd: string;
  guard: string;
  /** What confines each virtiofsd, one item each. */
  confinement: string[];
  /** Why bind mounts cannot be served here, or null. */
  problem: string | null;
}

/**
 * Describes the virtiofsd of bind mounts and its confinement. `problem` names a missing guard (a share would be
 * refused); a missing virtiofsd is a configuration of its own (9p, if the guest kernel has it), said in `confinement`.
 */
export function describeVirtiofsd(virtiofsd = '/usr/lib/qemu/virtiofsd', guard = DEFAULT_VIRTIOFSD_GUARD): VirtiofsdView {
  const confinement = existsSync(virtiofsd)
    ? [
        'seccomp guard (EPERM for set-user-ID/set-group-ID modes and device nodes)',
        'no CAP_MKNOD/CAP_FSETID',
        'namespace sandbox',
        'own seccomp allow-list',
        'no xattrs',
      ]
    : ['virtiofsd missing: 9p served by QEMU, if the guest kernel has it (no guard)'];
  return {
    virtiofsd,
    guard,
    confinement,
    problem: existsSync(guard) ? null : `bind mounts cannot be served over virtiofs: ${guard} is missing (run scripts/setup.sh)`,
  };
}
