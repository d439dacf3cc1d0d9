import pg from 'pg';
import { describeError } from '../shared/errors.js';
import { StoreError } from './db.js';

/** Every controller of one ledger database takes this session-level advisory lock to be active. */
const LOCK_KEY = 4_242_001;

/** Who holds the lock: what a standby names when it refuses a mutation. */
export interface ActiveController {
  apiUrl: string;
  pid: number;
  host: string;
  since: string;
}

/**
 * Single-active controllers on one PostgreSQL ledger (DESIGN §10): a session-level advisory lock
 * on a dedicated connection. PostgreSQL releases it when that session ends — a clean stop, or the
 * kernel closing the socket of a controller killed with -9 — so a standby can take over at once.
 */
export class LeaderLock {
  private held = false;

  private constructor(
    private readonly client: pg.Client,
    lost: (why: string) => void,
  ) {
    // A dead connection emits 'error' and then 'end': one loss, reported once. The listener also
    // keeps a connection error from being an unhandled 'error' event, which would end the process.
    const once = (why: string): void => {
      if (!this.held) return;
      this.held = false;
      lost(why);
    };
    client.on('error', (error) =>
      once(`the leader lock's PostgreSQL connection failed: ${describeError(error)}`),
    );
    client.on('end', () => once("the leader lock's PostgreSQL connection closed"));
  }

  /** `lost`: the lock was held and its connection died (another controller may be active now). */
  static async connect(url: string, lost: (why: string) => void): Promise<LeaderLock> {
    const client = new pg.Client({
      connectionString: url,
      application_name: 'modelcenter-leader',
      // A server that vanished without closing the socket (a network cut) is noticed, not waited on.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      connectionTimeoutMillis: 10_000,
    });
    // Before connect: a refused connection emits 'error' too, and nothing else listens yet.
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query(
        `CREATE TABLE IF NOT EXISTS modelcenter_active_controller (
           id int PRIMARY KEY CHECK (id = 1), api_url text NOT NULL, pid int NOT NULL,
           host text NOT NULL, since timestamptz NOT NULL)`,
      );
    } catch (error) {
      await client.end().catch(() => undefined);
      throw new StoreError(
        `cannot reach the PostgreSQL ledger for the leader lock: ${describeError(error)} — check MODELCENTER_LEDGER_URL`,
      );
    }
    return new LeaderLock(client, lost);
  }

  /** Takes the lock if no other controller holds it; true when this one is now active. */
  async tryAcquire(): Promise<boolean> {
    const rows = await this.client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [
      LOCK_KEY,
    ]);
    this.held = rows.rows[0]?.ok === true;
    return this.held;
  }

  /** Records where the active controller (this one) answers. */
  async announce(active: Omit<ActiveController, 'since'>): Promise<void> {
    await this.client.query(
      `INSERT INTO modelcenter_active_controller (id, api_url, pid, host, since)
       VALUES (1, $1, $2, $3, now())
       ON CONFLICT (id) DO UPDATE SET api_url = $1, pid = $2, host = $3, since = now()`,
      [active.apiUrl, active.pid, active.host],
    );
  }

  /** The controller that announced itself last (the active one, while it holds the lock). */
  async active(): Promise<ActiveController | undefined> {
    const rows = await this.client.query<{
      api_url: string;
      pid: number;
      host: string;
      since: Date;
    }>('SELECT api_url, pid, host, since FROM modelcenter_active_controller WHERE id = 1');
    const row = rows.rows[0];
    return row
      ? { apiUrl: row.api_url, pid: row.pid, host: row.host, since: row.since.toISOString() }
      : undefined;
  }

  /** Ends the session: the lock goes with it. */
  async release(): Promise<void> {
    this.held = false;
    await this.client.end().catch(() => undefined);
  }
}
