import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openDatabase } from '../../src/store/db.js';
import { callIdCounts } from '../../src/store/ledger.js';
import { alertReceiver } from '../helpers/alerts.js';
import { killRecorded } from '../helpers/children.js';
import { stateDirOf } from '../helpers/controller.js';
import { startPostgres, type PostgresCluster } from '../helpers/postgres.js';
import { commitPolicies, policyRepo } from '../helpers/repo.js';
import { serveEnv, serveInProcess, until, type ServingInProcess } from '../helpers/serve.js';
import { testKey } from '../helpers/secrets.js';
import { chat, spendPolicies } from '../helpers/spend.js';
import { allFakes, newKeys, startFakes, type Fakes } from '../helpers/stack.js';
import { scaled } from '../helpers/timing.js';
import { trafficClient } from '../helpers/traffic.js';

// One controller starting LiteLLM once; PostgreSQL killed and started again under traffic.
vi.setConfig({ testTimeout: scaled(420_000), hookTimeout: scaled(120_000) });

/** Steady chat traffic through LiteLLM that keeps the call id of every answered request. */
function callTraffic(client: ReturnType<typeof trafficClient>, loops = 2) {
  const answered: { callId: string; at: number }[] = [];
  const failures: string[] = [];
  let running = true;
  const loop = async (n: number): Promise<void> => {
    for (let i = 0; running && i < 20_000; i += 1) {
      try {
        const sent = await chat(client, 'gpt-mini', { tags: ['goal:q-report'] }, `l${n} r${i}`);
        answered.push({ callId: sent.callId, at: Date.now() });
      } catch (error) {
        failures.push(String(error));
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  };
  const done = Promise.all(Array.from({ length: loops }, (_, n) => loop(n)));
  return {
    answered,
    failures,
    since: (at: number) => answered.filter((a) => a.at >= at).length,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

describe('a PostgreSQL ledger outage under traffic (kill -9 of the server)', () => {
  const keys = newKeys();
  const admin = testKey('mc-admin-');
  let fakes: Fakes | undefined;
  let postgres: PostgresCluster | undefined;
  let alerts: Awaited<ReturnType<typeof alertReceiver>> | undefined;
  let repo: string | undefined;
  let serving: ServingInProcess | undefined;

  beforeAll(async () => {
    fakes = await startFakes(keys);
    postgres = await startPostgres();
    alerts = await alertReceiver();
    repo = await policyRepo(spendPolicies(fakes));
  });
  afterAll(async () => {
    serving?.stop();
    await serving?.exit;
    if (repo) await killRecorded(stateDirOf(repo));
    await postgres?.stop();
    await alerts?.close();
    if (fakes) await Promise.all(allFakes(fakes).map((f) => f.close()));
    if (repo) await rm(repo, { recursive: true, force: true });
  });

  it('LiteLLM keeps answering, changes are refused while the lock is lost, then retaken; the ledger has every answer once', async () => {
    const { env, port, apiPort } = await serveEnv(
      keys,
      { admin },
      {
        MODELCENTER_LEDGER_URL: postgres!.url,
        MODELCENTER_RELOAD_STRATEGY: 'restart',
        MODELCENTER_ALERT_WEBHOOK: alerts!.url,
      },
    );
    const call = (method: string, route: string): Promise<Response> =>
      fetch(`http://127.0.0.1:${apiPort}${route}`, {
        method,
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        ...(method === 'POST' && { body: '{}' }),
        signal: AbortSignal.timeout(scaled(240_000)),
      });
    serving = serveInProcess(repo!, env);
    let exited: number | undefined;
    void serving.exit.then((code) => (exited = code));
    await serving.started();
    const logs = (): string => serving!.logs();

    const client = trafficClient(`http://127.0.0.1:${port}`, keys.master);
    const traffic = callTraffic(client);
    try {
      await until(() => Promise.resolve(traffic.answered.length >= 6 || undefined));

      // kill -9 of PostgreSQL: the lock's session and every pooled connection die at once.
      const killedAt = Date.now();
      await postgres!.kill();
      await until(
        () => Promise.resolve(logs().includes('lost the PostgreSQL leader lock') || undefined),
        20_000,
      ).catch((e: unknown) => {
        throw new Error(
          `${String(e)}: exit ${exited}, ${traffic.failures.length} failed requests (${traffic.failures[0]})\n${logs().slice(-4000)}`,
        );
      });
      // Changes are refused, naming the cause; LiteLLM is untouched.
      const refused = await call('POST', '/v1/apply');
      expect(refused.status).toBe(503);
      const { error } = (await refused.json()) as { error: { code: string; message: string } };
      expect(error.code).toBe('leader_lock_lost');
      expect(error.message).toContain('PostgreSQL');
      expect(error.message).toContain('LiteLLM keeps serving');
      const lost = (await (await call('GET', '/v1/status')).json()) as {
        leader: { role: string; lock: string; lostReason?: string };
      };
      expect(lost.leader, JSON.stringify(lost)).toMatchObject({ role: 'active', lock: 'lost' });
      // Readiness tells the truth: LiteLLM serves the committed set; the controller is degraded.
      const ready = await call('GET', '/readyz');
      expect(ready.status).toBe(200);
      expect(((await ready.json()) as { degraded?: string }).degraded).toContain('leader lock');
      // Traffic through the outage: several seconds of answers (spooled, not yet in the ledger).
      await until(() => Promise.resolve(traffic.since(killedAt) >= 20 || undefined));
      expect(exited).toBeUndefined();

      // PostgreSQL back: the lock is retaken without a restart of anything.
      await postgres!.start();
      await until(async () => {
        const status = (await (await call('GET', '/v1/status')).json()) as {
          leader: { lock: string };
        };
        return status.leader.lock === 'held' || undefined;
      }, 60_000);
      expect(logs()).toContain('retook the PostgreSQL leader lock');
      // Answers after the lock is back too; then the traffic stops before the change (the
      // restart strategy used here drops requests while LiteLLM restarts, outage or not).
      const backAt = Date.now();
      await until(() => Promise.resolve(traffic.since(backAt) >= 4 || undefined));
      await traffic.stop();
      expect(traffic.failures).toEqual([]);

      // A change goes live: a new profile, served by LiteLLM.
      await commitPolicies(
        repo!,
        spendPolicies(fakes!).replace(
          'profiles:\n',
          'profiles:\n  after-outage:\n    requires: [chat]\n    models: [gpt-mini]\n',
        ),
        'policies: a profile added after the ledger outage',
      );
      const applied = await call('POST', '/v1/apply');
      expect(applied.status).toBe(200);
      expect(['applied', 'unchanged']).toContain(
        ((await applied.json()) as { outcome: string }).outcome,
      );
      await until(async () => (await chat(client, 'after-outage', {})).callId || undefined);
    } finally {
      await traffic.stop();
    }
    expect(traffic.failures).toEqual([]);
    expect(exited).toBeUndefined();

    // Every answered request is in the ledger exactly once (spooled during the outage, ingested after).
    const ids = traffic.answered.map((a) => a.callId);
    expect(new Set(ids).size).toBe(ids.length);
    const db = await openDatabase({ url: postgres!.url });
    try {
      const counts = await until(async () => {
        const now = await callIdCounts(db);
        return ids.every((id) => now.has(id)) ? now : undefined;
      }, 60_000);
      // A few more ingestion runs: nothing is read twice.
      await new Promise((resolve) => setTimeout(resolve, scaled(3000)));
      const again = await callIdCounts(db);
      for (const id of ids) {
        expect(counts.get(id), id).toBe(1);
        expect(again.get(id), id).toBe(1);
      }
    } finally {
      await db.close();
    }

    // One incident: one log line, one alert naming it.
    expect(logs().split('lost the PostgreSQL leader lock').length - 1).toBe(1);
    const leaderAlerts = alerts!.received.filter(
      (body) => (body as { alert?: { type?: string } }).alert?.type === 'leader',
    );
    expect(leaderAlerts).toHaveLength(1);
    expect(JSON.stringify(leaderAlerts[0])).toContain('lock-lost');
    console.log(
      `ledger outage: ${traffic.answered.length} requests answered, 0 failed; lock retaken and a change applied after PostgreSQL returned`,
    );
  });
});
