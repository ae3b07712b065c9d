/**
 * The pre-exec jail of a daemon's QEMU: chroot, unprivileged uid and no_new_privs are set up *before* QEMU runs,
 * so that its seccomp sandbox can deny set*id calls (`elevateprivileges=deny`). With QEMU 7.2's own `-runas` that
 * is impossible: it installs its filter first and changes the uid afterwards, and dies of SIGSYS.
 *
 * The QEMU is started, as today, in a mount namespace of its own (unshare); there a small shell, still root,
 * bind-mounts read-only (nosuid, nodev) what QEMU must see into its runtime directory (/usr for its binary,
 * libraries and firmware; the guest kernel and initramfs as /kernel and /initrd; /dev/null; /dev/net/tun for a tap
 * it attaches to, which the network layer creates owned by the VMM user), chroots there and execs setpriv, which
 * drops to the VMM user with no groups and no_new_privs and execs QEMU. What QEMU could not open as that user
 * (the root disk, the scratch disk, volumes, the container log: all 0600 root's) is opened by the daemon and
 * inherited as descriptors (`-add-fd`, `/dev/fdset/N`). Private to src/vmm.
 */
import { lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { chmod, chown, mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** A user's numeric ids, from /etc/passwd (setpriv inside the chroot has no passwd file). */
export function userIds(name: string, passwd = '/etc/passwd'): { uid: number; gid: number } | null {
  try {
    for (const line of readFileSync(passwd, 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === name && f.length >= 4) return { uid: Number(f[2]), gid: Number(f[3]) };
    }
  } catch {
    // no passwd file
  }
  return null;
}

/** A group's name, from /etc/group (virtiofsd's --socket-group takes a name). */
export function groupName(gid: number, group = '/etc/group'): string | undefined {
  try {
    for (const line of readFileSync(group, 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length >= 3 && Number(f[2]) === gid) return f[0];
    }
  } catch {
    // no group file
  }
  return undefined;
}

/** The top-level host directories QEMU's binary and libraries live under (merged-/usr hosts: symlinks into /usr). */
const SYSTEM_DIRS = ['usr', 'lib', 'lib64', 'bin'];

/**
 * The shell run as root in QEMU's mount namespace: binds, chroot, then setpriv to the VMM user and QEMU.
 * Arguments: jail, kernel, initrd, uid, gid, a RAM file ("" for none), then the dirs to bind (as "name" words until
 * "--"), then QEMU's argv. The RAM file (a template's, on a tmpfs) is bound read-write at /ram: QEMU 7.2 opens a
 * memory-backend-file's path read-write even to map it privately.
 */
export const PREJAIL_SCRIPT = [
  'set -e',
  'J=$1; K=$2; I=$3; U=$4; G=$5; R=$6; shift 6',
  'ro() { mount --bind "$1" "$2"; mount -o remount,bind,ro,nosuid,nodev "$2"; }',
  'while [ "$1" != -- ]; do ro "/$1" "$J/$1"; shift; done; shift',
  'ro "$K" "$J/kernel"; ro "$I" "$J/initrd"',
  'if [ -n "$R" ]; then mount --bind "$R" "$J/ram"; mount -o remount,bind,nosuid,nodev,noexec "$J/ram"; fi',
  'mount --bind /dev/null "$J/dev/null"',
  'if [ -e "$J/dev/net/tun" ]; then mount --bind /dev/net/tun "$J/dev/net/tun"; fi',
  'exec chroot "$J" /usr/bin/setpriv --reuid="$U" --regid="$G" --clear-groups --no-new-privs -- "$@"',
].join('\n');

/**
 * Prepares `jail` (the VM's runtime directory) as the root QEMU will see: mount points for the binds, the
 * merged-/usr symlinks, and ownership by the VMM user (QEMU makes its sockets and pid file there). Returns the
 * system directories the script must bind. `ram`: a mount point for a RAM file too.
 */
export async function prepareJail(jail: string, ids: { uid: number; gid: number }, tap: boolean, ram = false): Promise<string[]> {
  const binds: string[] = [];
  for (const name of SYSTEM_DIRS) {
    let st;
    try {
      st = lstatSync(`/${name}`);
    } catch {
      continue;
    }
    // Idempotent: a boot that is retried prepares the same directory again.
    if (st.isSymbolicLink()) {
      await symlink(readlinkSync(`/${name}`), path.join(jail, name)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
    } else if (st.isDirectory()) {
      await mkdir(path.join(jail, name), { recursive: true });
      binds.push(name);
    }
  }
  await writeFile(path.join(jail, 'kernel'), '');
  await writeFile(path.join(jail, 'initrd'), '');
  if (ram) await writeFile(path.join(jail, 'ram'), '');
  // Traversable by the VMM user whatever the daemon's umask (the device nodes are bound over the files).
  await mkdir(path.join(jail, 'dev', 'net'), { recursive: true });
  await chmod(path.join(jail, 'dev'), 0o755);
  await chmod(path.join(jail, 'dev', 'net'), 0o755);
  await writeFile(path.join(jail, 'dev', 'null'), '');
  if (tap) await writeFile(path.join(jail, 'dev', 'net', 'tun'), '');
  await chown(jail, ids.uid, ids.gid);
  return binds;
}
