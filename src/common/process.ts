/** Whether a process exists: the one helper every layer asks. */

/** True when a process with this pid exists (EPERM, a process of another user, counts as alive). */
export function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
