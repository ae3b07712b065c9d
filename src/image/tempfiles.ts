/**
 * Temporary names that carry the creating process's pid, so that leftovers of a crashed process can be found and
 * removed by the next one (sweepStaleTemps). Every temporary file or directory of the image store lives in one
 * `tmp` directory on the same filesystem as its final place, so finishing is a rename.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pidAlive } from '../common/index.ts';

const TEMP_NAME = /^([a-z]+)-(\d+)-[0-9a-f]+(?:\..*)?$/;

/** A fresh temporary name "<kind>-<pid>-<random>[.<suffix>]" (kind: lowercase letters). */
export function tempName(kind: string, suffix = ''): string {
  return `${kind}-${process.pid}-${randomBytes(6).toString('hex')}${suffix ? `.${suffix}` : ''}`;
}

/** (The one pid-alive helper lives in common.) */
export { pidAlive };

/** Removes entries of `dir` named by tempName() whose pid is not alive; returns the names removed. */
export async function sweepStaleTemps(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m || pidAlive(Number(m[2]))) continue;
    await fs.rm(path.join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
