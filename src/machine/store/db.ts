/**
 * The machine's state database: SQLite (better-sqlite3) in <stateDir>/machine.db, shared by the daemon and by
 * foreground `boson run` processes (WAL mode and a busy timeout let several processes use it). Schema changes are
 * numbered migrations applied in order, tracked by PRAGMA user_version.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { BosonError } from '../../common/index.ts';

/** An open machine database. */
export type MachineDb = Database.Database;

/** The migrations, in order; migration N brings the schema from version N to N+1. Never edit a released one. */
export const MIGRATIONS: readonly string[] = [
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
];

/** Opens (creating and migrating as needed) the machine database of `stateDir`; STATE_DIR_UNWRITABLE on failure. */
export function openMachineDb(stateDir: string): MachineDb {
  let db: MachineDb;
  try {
    mkdirSync(stateDir, { recursive: true });
    db = new Database(path.join(stateDir, 'machine.db'));
    db.pragma('journal_mode = WAL');
    db.pragma('busy_timeout = 10000');
    db.pragma('synchronous = NORMAL');
  } catch (cause) {
    throw new BosonError('STATE_DIR_UNWRITABLE', `cannot open the state database in ${stateDir}: ${(cause as Error).message}`, { cause });
  }
  migrate(db);
  return db;
}

/** Applies every migration newer than the database's user_version, each in its own transaction. */
export function migrate(db: MachineDb): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}
