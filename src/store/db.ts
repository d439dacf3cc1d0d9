import { PGlite } from '@electric-sql/pglite';
import { mkdir, open, readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
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
  let release = (): Promise<void> => Promise.resolve();
  try {
    if (dataDir) {
      await mkdir(dataDir, { recursive: true });
      release = await lockDirectory(dataDir);
    }
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
      close: async () => {
        await db.close();
        await release();
      },
    };
  } catch (error) {
    await release();
    if (error instanceof StoreError) throw error;
    throw new StoreError(
      `cannot open the embedded ledger database${dataDir ? ` in ${dataDir}` : ''}: ${describeError(error)} — check that the directory is writable and not used by another Model Center process`,
      { cause: error },
    );
  }
}

/** The embedded ledger is open in another live process (a running `modelcenter serve`). */
export class LedgerBusyError extends StoreError {}

/**
 * PGlite is one process's database: a second process opening the same directory would corrupt
 * it. A lock file with the owner's pid refuses that with a clear message; a stale lock (its
 * process is gone) is taken over.
 */
async function lockDirectory(dataDir: string): Promise<() => Promise<void>> {
  const lock = path.join(dataDir, 'modelcenter.lock');
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      const handle = await open(lock, 'wx');
      try {
        await handle.writeFile(String(process.pid));
      } catch (error) {
        await unlink(lock).catch(() => undefined); // a full disk: leave no empty lock behind
        throw error;
      } finally {
        await handle.close();
      }
      return () => unlink(lock).catch(() => undefined);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number((await readFile(lock, 'utf8').catch(() => '')).trim());
      if (owner > 0 && owner !== process.pid && isAlive(owner)) {
        throw new LedgerBusyError(
          `the embedded ledger in ${dataDir} is open in another Model Center process (pid ${owner}) — ask that process (GET /v1/spend/report), stop it first, or use PostgreSQL (MODELCENTER_LEDGER_URL) to share the ledger`,
        );
      }
      await unlink(lock).catch(() => undefined);
    }
  }
  throw new StoreError(
    `cannot lock the embedded ledger in ${dataDir}; remove ${lock} if no Model Center runs`,
  );
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function openPostgres(url: string): Promise<Database> {
  const pool = new pg.Pool({
    connectionString: url,
    max: 4,
    // A server gone without closing the socket (a network cut) fails a query instead of hanging it.
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
  });
  // An idle client whose server went away (restart, failover, kill -9): the pool drops it, and
  // the next query opens a new connection. Without a listener the 'error' event ends the process.
  pool.on('error', () => undefined);
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
      const client = await pool.connect().catch(wrap('transaction'));
      // While checked out the pool's own listener is off: a connection dying mid-transaction emits
      // 'error' on the client (the running query fails too), which must not end the process.
      let broken: Error | undefined;
      const onError = (error: Error): void => {
        broken = error;
      };
      client.on('error', onError);
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
        client.removeListener('error', onError);
        // A broken connection is discarded, not handed to the next transaction.
        client.release(broken);
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

/**
 * Whether a database error was caused by the values sent (SQLSTATE class 22 data exception, 23
 * integrity constraint, 54 program limit such as an over-long index key) rather than by the
 * database or the connection: only then is retrying the same values pointless.
 */
export function isDataError(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Object && depth < 5; depth += 1) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^(22|23|54)[0-9A-Z]{3}$/.test(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
