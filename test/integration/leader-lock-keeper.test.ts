import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { LockKeeper } from '../../src/leader/lock-keeper.js';
import { openDatabase, type Database } from '../../src/store/db.js';
import { LeaderLock, type ActiveController } from '../../src/store/leader-lock.js';
import { startPostgres, type PostgresCluster } from '../helpers/postgres.js';
import { until } from '../helpers/serve.js';
import { scaled } from '../helpers/timing.js';

vi.setConfig({ testTimeout: scaled(120_000), hookTimeout: scaled(120_000) });

/** Ends every session of the leader lock (application_name modelcenter-leader), as an operator would. */
async function terminateLockSessions(db: Database): Promise<number> {
  const rows = await db.query<{ ended: boolean }>(
    `SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity
     WHERE application_name = 'modelcenter-leader' AND pid <> pg_backend_pid()`,
  );
  return rows.filter((r) => r.ended).length;
}

describe('the leader lock across a lost PostgreSQL session (pg_terminate_backend, kill -9)', () => {
  let postgres: PostgresCluster | undefined;
  let admin: Database | undefined;
  const me = { apiUrl: 'http://127.0.0.1:1', pid: process.pid, host: 'here' };

  beforeAll(async () => {
    postgres = await startPostgres();
    admin = await openDatabase({ url: postgres.url });
  });
  afterAll(async () => {
    await admin?.close();
    await postgres?.stop();
  });

  /** A keeper holding the lock, recording what it reports. */
  async function keeper(backoff: { initialMs: number; maxMs: number }) {
    const events: string[] = [];
    let taken: ActiveController | undefined;
    const holder: { keeper?: LockKeeper } = {};
    const lock = await LeaderLock.connect(postgres!.url, (why) =>
      holder.keeper?.connectionLost(why),
    );
    expect(await lock.tryAcquire()).toBe(true);
    await lock.announce(me);
    holder.keeper = new LockKeeper(lock, {
      url: postgres!.url,
      self: () => me,
      backoff,
      onLost: (reason) => events.push(`lost: ${reason}`),
      onRetaken: () => events.push('retaken'),
      onTakenByAnother: (active) => {
        taken = active;
        events.push('taken by another');
      },
    });
    return { keeper: holder.keeper, events, taken: () => taken };
  }

  it('a terminated session is reported once and the lock retaken; kill -9 of the server too', async () => {
    const { keeper: k, events } = await keeper({ initialMs: 50, maxMs: 500 });
    try {
      expect(await terminateLockSessions(admin!)).toBe(1);
      await until(() => Promise.resolve(events.includes('retaken') || undefined), 20_000);
      expect(events.filter((e) => e.startsWith('lost')).length).toBe(1);
      expect(k.current().held).toBe(true);
      // Another controller cannot take it now: this one holds it again.
      const other = await LeaderLock.connect(postgres!.url, () => undefined);
      expect(await other.tryAcquire()).toBe(false);
      await other.release();

      // The whole server killed: refused reconnections are retried (backoff) until it is back.
      events.length = 0;
      await admin!.close();
      admin = undefined;
      await postgres!.kill();
      await until(() => Promise.resolve(events.length > 0 || undefined), 20_000);
      await until(() => {
        const state = k.current();
        return Promise.resolve((!state.held && state.attempts >= 2) || undefined);
      }, 20_000);
      const down = k.current();
      expect(down.held).toBe(false);
      if (!down.held) expect(down.lastError).toMatch(/ECONNREFUSED|connect/);
      await postgres!.start();
      await until(() => Promise.resolve(events.includes('retaken') || undefined), 30_000);
      expect(events.filter((e) => e.startsWith('lost'))).toHaveLength(1);
      admin = await openDatabase({ url: postgres!.url });
    } finally {
      await k.stop();
    }
  });

  it('a ledger transaction whose connection is terminated fails as a StoreError; the pool recovers', async () => {
    const ledger = await openDatabase({ url: postgres!.url });
    try {
      const running = ledger.transaction(async (tx) => {
        await tx.query("SELECT set_config('application_name', 'mc-doomed', false)");
        await tx.query('SELECT pg_sleep(30)');
      });
      // Held from the start: the rejection may come while the session is still being looked for.
      const failure = running.then(
        () => undefined,
        (error: unknown) => error,
      );
      await until(async () => {
        const rows = await admin!.query<{ ended: boolean }>(
          `SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE application_name = 'mc-doomed'`,
        );
        return rows.some((r) => r.ended) || undefined;
      }, 10_000);
      // Without a listener on the checked-out client, its 'error' event would end the process here.
      expect(String(await failure)).toMatch(/ledger query failed \(transaction\)/);
      expect(await ledger.query<{ one: number }>('SELECT 1 AS one')).toEqual([{ one: 1 }]);
    } finally {
      await ledger.close();
    }
  });

  it('when another controller took the lock before it reconnected, it steps down', async () => {
    const { keeper: k, events, taken } = await keeper({ initialMs: 2000, maxMs: 2000 });
    expect(await terminateLockSessions(admin!)).toBe(1);
    const other = await LeaderLock.connect(postgres!.url, () => undefined);
    try {
      // The other controller is faster than this one's first reconnection (2 s).
      await until(async () => (await other.tryAcquire()) || undefined, 10_000);
      await other.announce({ apiUrl: 'http://127.0.0.1:2', pid: 4242, host: 'there' });
      await until(() => Promise.resolve(events.includes('taken by another') || undefined), 20_000);
      expect(taken()?.pid).toBe(4242);
      expect(events).not.toContain('retaken');
      expect(k.current().held).toBe(false);
    } finally {
      await k.stop();
      await other.release();
    }
  });
});
