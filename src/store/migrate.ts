import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { projectRoot } from '../shared/paths.js';
import { openDatabase, StoreError, type Database, type DatabaseOptions } from './db.js';

/** The numbered SQL files in the repository: `NNN_name.sql`, applied in order, each once. */
export function migrationsDir(): string {
  return path.join(projectRoot(), 'src', 'store', 'migrations');
}

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export async function readMigrations(dir = migrationsDir()): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f)).sort();
  return Promise.all(
    files.map(async (file) => ({
      version: Number(file.slice(0, 3)),
      name: file.slice(4, -4),
      sql: await readFile(path.join(dir, file), 'utf8'),
    })),
  );
}

/** Brings the schema up to date; each migration runs in its own transaction under a lock. */
export async function migrate(db: Database, migrations?: Migration[]): Promise<number[]> {
  const all = migrations ?? (await readMigrations());
  await db.exec(
    `CREATE TABLE IF NOT EXISTS modelcenter_migrations (
       version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
  );
  const applied: number[] = [];
  for (const migration of all) {
    const done = await db.transaction(async (tx) => {
      // One controller migrates at a time when several share a PostgreSQL server.
      await tx.query('SELECT pg_advisory_xact_lock(7170011)');
      const seen = await tx.query('SELECT 1 FROM modelcenter_migrations WHERE version = $1', [
        migration.version,
      ]);
      if (seen.length > 0) return false;
      await tx.exec(migration.sql);
      await tx.query('INSERT INTO modelcenter_migrations (version, name) VALUES ($1, $2)', [
        migration.version,
        migration.name,
      ]);
      return true;
    });
    if (done) applied.push(migration.version);
  }
  const newest = await db.query<{ version: number }>(
    'SELECT max(version) AS version FROM modelcenter_migrations',
  );
  const known = all.at(-1)?.version ?? 0;
  if ((newest[0]?.version ?? 0) > known) {
    throw new StoreError(
      `the ledger database has schema version ${newest[0]?.version}, newer than this Model Center knows (${known}) — upgrade Model Center or point it at another database`,
    );
  }
  return applied;
}

/** Opens the ledger database and brings its schema up to date. */
export async function openLedger(options: DatabaseOptions): Promise<Database> {
  const db = await openDatabase(options);
  try {
    await migrate(db);
    return db;
  } catch (error) {
    await db.close();
    throw error;
  }
}
