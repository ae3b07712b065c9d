/**
 * The machine's state database: SQLite (better-sqlite3) in <stateDir>/machine.db, shared by the daemon and by
 * foreground `boson run` processes (WAL mode and a busy timeout let several processes use it). Schema changes are
 * numbered migrations applied in order, tracked by PRAGMA user_version.
 */
import Database from 'better-sqlite3';
import { mkdirSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { BosonError } from '../../common/index.ts';

/** An open machine database. */
export type MachineDb = Database.Database;

/** A migration: SQL, or a function for what SQL alone cannot do. */
export type Migration = string | ((db: MachineDb) => void);

/** The migrations, in order; migration N brings the schema from version N to N+1. Never edit a released one. */
export const MIGRATIONS: readonly Migration[] = [
  `CREATE TABLE containers (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     state TEXT NOT NULL,
     created TEXT NOT NULL,
     record TEXT NOT NULL
   );
   CREATE TABLE events (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     time_ns INTEGER NOT NULL,
     type TEXT NOT NULL,
     action TEXT NOT NULL,
     actor_id TEXT NOT NULL,
     attributes TEXT NOT NULL
   );`,
  `CREATE TABLE volumes (
     name TEXT PRIMARY KEY,
     created TEXT NOT NULL,
     anonymous INTEGER NOT NULL,
     size_bytes INTEGER NOT NULL,
     labels TEXT NOT NULL
   );`,
  // One state store (sqlite.ts): records by kind and key with revisions, the change log, the revision counter.
  // Containers and volumes move into it; a container's name is a record of its own (kind container-name).
  (db) => {
    db.exec(`CREATE TABLE records (
       kind TEXT NOT NULL,
       key TEXT NOT NULL,
       value TEXT NOT NULL,
       revision INTEGER NOT NULL,
       create_revision INTEGER NOT NULL,
       PRIMARY KEY (kind, key)
     ) WITHOUT ROWID;
     CREATE TABLE changes (
       revision INTEGER PRIMARY KEY,
       kind TEXT NOT NULL,
       key TEXT NOT NULL,
       type TEXT NOT NULL,
       value TEXT NOT NULL
     );
     CREATE INDEX changes_by_kind ON changes (kind, revision);
     CREATE TABLE store_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);`);
    let revision = 0;
    const put = (kind: string, key: string, value: unknown): void => {
      revision += 1;
      const text = JSON.stringify(value);
      db.prepare('INSERT INTO records (kind, key, value, revision, create_revision) VALUES (?, ?, ?, ?, ?)').run(
        kind,
        key,
        text,
        revision,
        revision,
      );
      db.prepare("INSERT INTO changes (revision, kind, key, type, value) VALUES (?, ?, ?, 'put', ?)").run(revision, kind, key, text);
    };
    for (const row of db.prepare('SELECT id, name, record FROM containers ORDER BY created').all() as Array<{
      id: string;
      name: string;
      record: string;
    }>) {
      put('container', row.id, JSON.parse(row.record));
      put('container-name', row.name, { id: row.id });
    }
    for (const row of db.prepare('SELECT * FROM volumes ORDER BY created').all() as Array<{
      name: string;
      created: string;
      anonymous: number;
      size_bytes: number;
      labels: string;
    }>) {
      put('volume', row.name, {
        name: row.name,
        created: row.created,
        anonymous: row.anonymous === 1,
        sizeBytes: row.size_bytes,
        labels: JSON.parse(row.labels) as unknown,
      });
    }
    db.prepare("INSERT INTO store_meta (name, value) VALUES ('revision', ?)").run(revision);
    db.exec('DROP TABLE containers; DROP TABLE volumes;');
  },
];

/** Opens (creating and migrating as needed) the machine database of `stateDir`; STATE_DIR_UNWRITABLE on failure. */
export function openMachineDb(stateDir: string, upTo = MIGRATIONS.length, file = 'machine.db'): MachineDb {
  let db: MachineDb;
  try {
    mkdirSync(stateDir, { recursive: true });
    db = new Database(path.join(stateDir, file));
    db.pragma('journal_mode = WAL');
    db.pragma('busy_timeout = 10000');
    db.pragma('synchronous = NORMAL');
    // The database holds containers' environments (often secrets): its files are the owner's alone, also when an
    // older Boson made them readable.
    for (const suffix of ['', '-wal', '-shm']) {
      try {
        chmodSync(path.join(stateDir, `${file}${suffix}`), 0o600);
      } catch {
        // not there (yet), or not ours to change (a rootless reader of a root store refuses elsewhere)
      }
    }
  } catch (cause) {
    throw new BosonError('STATE_DIR_UNWRITABLE', `cannot open the state database in ${stateDir}: ${(cause as Error).message}`, { cause });
  }
  migrate(db, upTo);
  return db;
}

/** Applies every migration newer than the database's user_version (up to `upTo`: tests), each in its own transaction. */
export function migrate(db: MachineDb, upTo = MIGRATIONS.length): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  for (let v = current; v < upTo; v++) {
    db.transaction(() => {
      if ((db.pragma('user_version', { simple: true }) as number) !== v) return; // another process was first
      const m = MIGRATIONS[v]!;
      if (typeof m === 'string') db.exec(m);
      else m(db);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}
