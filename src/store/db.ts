import { PGlite } from '@electric-sql/pglite';
import { mkdir } from 'node:fs/promises';
import pg from 'pg';
import { describeError, ModelCenterError } from '../shared/errors.js';

/** A failure of the ledger database, with what to check. */
export class StoreError extends ModelCenterError {}

/** What the rest of Model Center sees of a database: Postgres-dialect queries and transactions. */
export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface Database extends Queryable {
  /** `pglite` (embedded, a directory on disk) or `postgres` (a server by connection URL). */
  readonly kind: 'pglite' | 'postgres';
  /** Runs `work` in one transaction: all of its statements commit, or none do. */
  transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** `postgres://…` or `postgresql://…` selects PostgreSQL; otherwise `dataDir` is used. */
  url?: string;
  /** PGlite data directory; created if missing. Without url or dataDir: an in-memory PGlite. */
  dataDir?: string;
}

/** Opens the ledger database: PostgreSQL when a URL is given, else embedded PGlite. */
export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.url) return openPostgres(options.url);
  return openPGlite(options.dataDir);
}

async function openPGlite(dataDir: string | undefined): Promise<Database> {
  try {
    if (dataDir) await mkdir(dataDir, { recursive: true });
    const db = await PGlite.create(dataDir ? { dataDir } : {});
    const run = async <T>(target: Pick<PGlite, 'query'>, sql: string, params?: unknown[]) =>
      (await target.query<T>(sql, params)).rows;
    return {
      kind: 'pglite',
      query: <T>(sql: string, params?: unknown[]) => run<T>(db, sql, params).catch(wrap(sql)),
      exec: async (sql) => {
        await db.exec(sql).catch(wrap(sql));
      },
      transaction: (work) =>
        db
          .transaction((tx) =>
            work({
              query: <T>(sql: string, params?: unknown[]) => run<T>(tx, sql, params),
              exec: async (sql) => {
                await tx.exec(sql);
              },
            }),
          )
          .catch(wrap('transaction')),
      close: () => db.close(),
    };
  } catch (error) {
    throw new StoreError(
      `cannot open the embedded ledger database${dataDir ? ` in ${dataDir}` : ''}: ${describeError(error)} — check that the directory is writable and not used by another Model Center process`,
      { cause: error },
    );
  }
}

async function openPostgres(url: string): Promise<Database> {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on('error', () => {
    // idle-client errors surface on the next query
  });
  try {
    const client = await pool.connect();
    client.release();
  } catch (error) {
    await pool.end();
    throw new StoreError(
      `cannot connect to the ledger database at ${redactUrl(url)}: ${describeError(error)} — check MODELCENTER_LEDGER_URL, that the server runs and accepts the user`,
      { cause: error },
    );
  }
  return {
    kind: 'postgres',
    query: async <T>(sql: string, params?: unknown[]) =>
      (await pool.query(sql, params).catch(wrap(sql))).rows as T[],
    exec: async (sql) => {
      await pool.query(sql).catch(wrap(sql));
    },
    async transaction(work) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const result = await work({
          query: async <T>(sql: string, params?: unknown[]) =>
            (await client.query(sql, params)).rows as T[],
          exec: async (sql) => {
            await client.query(sql);
          },
        });
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        return wrap('transaction')(error);
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}

function wrap(what: string): (error: unknown) => never {
  return (error) => {
    if (error instanceof StoreError) throw error;
    const head = what.trim().split('\n')[0]?.slice(0, 80) ?? what;
    throw new StoreError(`ledger query failed (${head}): ${describeError(error)}`, {
      cause: error,
    });
  };
}

/** A connection URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'the configured URL';
  }
}
