/** Helpers shared by the image tests (not part of the public surface). */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isBosonError, MemoryStateStore, type ErrorCode } from '../common/index.ts';
import { ImageStore } from './store.ts';

/** A fresh private temp directory; remove it with `fs.rm(dir, { recursive: true, force: true })`. */
export async function tempDir(prefix = 'boson-image-test-'): Promise<string> {
  return fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), prefix)));
}

const stores = new Map<string, MemoryStateStore>();

/** The state store of a test's state directory: one in-memory store per directory, shared by every ImageStore on it. */
export function stateStoreOf(stateDir: string): MemoryStateStore {
  let store = stores.get(path.resolve(stateDir));
  if (!store) stores.set(path.resolve(stateDir), (store = new MemoryStateStore()));
  return store;
}

/** An image store on `stateDir` with its state store (stateStoreOf): two on one directory share the index, as two processes do. */
export function imageStoreOn(stateDir: string, opts: ConstructorParameters<typeof ImageStore>[2] = {}): ImageStore {
  return new ImageStore(stateStoreOf(stateDir), stateDir, opts);
}

/** Asserts that `p` rejects with a BosonError of `code`; returns it for further checks. */
export async function rejectsWith(p: Promise<unknown>, code: ErrorCode): Promise<Error> {
  try {
    await p;
  } catch (err) {
    assert.ok(isBosonError(err, code), `expected ${code}, got ${String((err as { code?: string }).code)}: ${(err as Error).message}`);
    return err as Error;
  }
  assert.fail(`expected a ${code} error, but it succeeded`);
}

/** Every path under `dir` with its type and size, sorted: a cheap fingerprint of a tree. */
export async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    let entries;
    try {
      entries = await fs.readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      const st = await fs.lstat(p);
      out.push(`${path.relative(dir, p)} ${e.isDirectory() ? 'd' : e.isSymbolicLink() ? 'l' : st.size}`);
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return out.sort();
}
