/**
 * The host's record of its containers: ids, unique names, configuration and last known state, kept as one JSON
 * file per container under <stateDir>/containers. Names are claimed atomically (exclusive create), so two runs
 * cannot take the same name. Records whose owning process died (kill -9 of `boson run`) are repaired by sweep().
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile, open } from 'node:fs/promises';
import path from 'node:path';
import { BosonError } from '../common/index.ts';
import type { ProcessConfig } from './container-config.ts';

/** What is known about one container. */
export interface ContainerRecord {
  id: string;
  name: string;
  image: string;
  imageId: string;
  created: string;
  config: ProcessConfig & { tty: boolean; openStdin: boolean };
  resources: { memoryMiB: number; cpus: number };
  autoRemove: boolean;
  state: 'created' | 'running' | 'exited';
  /** pid of the Boson process that runs the VM, while running. */
  ownerPid: number | null;
  exitCode: number | null;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Throws INVALID_ARGUMENT unless `name` is a valid container name (Docker's rule). */
export function validateContainerName(name: string): void {
  if (!NAME_RE.test(name) || name.length > 128) {
    throw new BosonError('INVALID_ARGUMENT', `invalid container name ${JSON.stringify(name)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  }
}

/** Generates a 64-hex container id. */
export function newContainerId(): string {
  return randomBytes(32).toString('hex');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Container records on disk. */
export class ContainerRegistry {
  private readonly dir: string;
  private readonly namesDir: string;

  constructor(stateDir: string) {
    this.dir = path.join(stateDir, 'containers');
    this.namesDir = path.join(this.dir, '.names');
  }

  /** Creates the directories; STATE_DIR_UNWRITABLE if that is impossible. */
  async init(): Promise<void> {
    try {
      await mkdir(this.namesDir, { recursive: true });
      const probe = path.join(this.dir, `.probe-${process.pid}`);
      await writeFile(probe, '');
      await rm(probe);
    } catch (cause) {
      throw new BosonError('STATE_DIR_UNWRITABLE', `cannot write container state in ${this.dir}: ${(cause as Error).message}`, { cause });
    }
  }

  /** The directory holding a container's files. */
  containerDir(id: string): string {
    return path.join(this.dir, id);
  }

  /** Claims `record.name` and stores the record; CONTAINER_NAME_IN_USE if the name is taken. */
  async create(record: ContainerRecord): Promise<void> {
    validateContainerName(record.name);
    try {
      const handle = await open(path.join(this.namesDir, record.name), 'wx');
      await handle.writeFile(record.id);
      await handle.close();
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'EEXIST') {
        const owner = (await readFile(path.join(this.namesDir, record.name), 'utf8').catch(() => '')).slice(0, 12);
        throw new BosonError('CONTAINER_NAME_IN_USE', `the container name "${record.name}" is already in use by container ${owner || '(unknown)'}`);
      }
      throw cause;
    }
    await mkdir(this.containerDir(record.id), { recursive: true });
    await this.save(record);
  }

  /** Writes `record` atomically. */
  async save(record: ContainerRecord): Promise<void> {
    const file = path.join(this.containerDir(record.id), 'container.json');
    const tmp = `${file}.tmp-${process.pid}`;
    await writeFile(tmp, JSON.stringify(record, null, 2));
    await rename(tmp, file);
  }

  /** Deletes a container's files and frees its name. */
  async remove(record: ContainerRecord): Promise<void> {
    await rm(this.containerDir(record.id), { recursive: true, force: true });
    const owner = await readFile(path.join(this.namesDir, record.name), 'utf8').catch(() => undefined);
    if (owner === record.id) await rm(path.join(this.namesDir, record.name), { force: true });
  }

  /** Every container record, newest first. */
  async list(): Promise<ContainerRecord[]> {
    let ids: string[] = [];
    try {
      ids = (await readdir(this.dir)).filter((n) => /^[0-9a-f]{64}$/.test(n));
    } catch {
      return [];
    }
    const records: ContainerRecord[] = [];
    for (const id of ids) {
      try {
        records.push(JSON.parse(await readFile(path.join(this.dir, id, 'container.json'), 'utf8')) as ContainerRecord);
      } catch {
        // A directory without a complete record is a create that died half-way; sweep() removes it.
      }
    }
    return records.sort((a, b) => b.created.localeCompare(a.created));
  }

  /**
   * Repairs what a killed Boson process left: a running container whose owner is gone is marked exited (or
   * removed, for --rm), and directories without a record are removed.
   */
  async sweep(): Promise<void> {
    const records = await this.list();
    for (const r of records) {
      if (r.state === 'running' && r.ownerPid !== null && !isAlive(r.ownerPid)) {
        if (r.autoRemove) await this.remove(r);
        else await this.save({ ...r, state: 'exited', ownerPid: null, exitCode: 137, finishedAt: new Date().toISOString(), error: 'the boson process running this container was killed' });
      }
    }
    // A name or directory without a record is a create in progress, or one that died half-way: leave young ones.
    const known = new Set(records.map((r) => r.id));
    const old = async (file: string): Promise<boolean> => Date.now() - (await stat(file).then((s) => s.mtimeMs, () => Date.now())) > 60_000;
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      const dir = path.join(this.dir, name);
      if (/^[0-9a-f]{64}$/.test(name) && !known.has(name) && (await old(dir))) await rm(dir, { recursive: true, force: true });
    }
    for (const name of await readdir(this.namesDir).catch(() => [] as string[])) {
      const file = path.join(this.namesDir, name);
      const owner = await readFile(file, 'utf8').catch(() => '');
      if (!known.has(owner) && (await old(file))) await rm(file, { force: true });
    }
  }
}
