/**
 * A directory only this user may write: where a rootless daemon puts its sockets when there is no
 * $XDG_RUNTIME_DIR (/tmp/boson-<uid>). In a shared /tmp another user could create that path first and read or
 * replace the sockets, so a directory that is not ours, or that others can write, is refused.
 */
import { lstat, mkdir } from 'node:fs/promises';
import { BosonError } from './errors.ts';

/**
 * Creates `dir` (mode 0700, parents as needed) or accepts an existing one, then checks that it is a real directory
 * (not a symlink) owned by the effective user and not writable by group or others. STATE_DIR_UNWRITABLE otherwise.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (cause) {
    throw new BosonError('STATE_DIR_UNWRITABLE', `cannot create ${dir}: ${(cause as Error).message}`, { cause, details: { dir } });
  }
  const st = await lstat(dir);
  const uid = process.geteuid?.() ?? 0;
  const why = !st.isDirectory()
    ? 'is not a directory (a symlink?)'
    : st.uid !== uid
      ? `belongs to uid ${st.uid}, not ${uid}`
      : (st.mode & 0o022) !== 0
        ? `is writable by others (mode ${(st.mode & 0o777).toString(8)})`
        : undefined;
  if (why)
    throw new BosonError('STATE_DIR_UNWRITABLE', `refusing to use ${dir}: it ${why}; remove it or set BOSON_RUN_DIR`, { details: { dir } });
}
