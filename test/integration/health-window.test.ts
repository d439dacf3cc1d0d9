import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildFromDir } from '../../src/compile/build.js';
import { HealthMonitor, type HealthAlert } from '../../src/health/monitor.js';
import type { Database } from '../../src/store/db.js';
import { openLedger } from '../../src/store/migrate.js';
import { windowStats } from '../../src/store/window-stats.js';
import { flapPolicies } from '../helpers/health-flap.js';
import { ingestAttempts } from '../helpers/health.js';
import { git, policyRepo } from '../helpers/repo.js';

/** The ledger's sliding window as health reads it, and the error-rate alert, on PGlite. */
describe('health: window figures and the error-rate alert', () => {
  const T0 = Date.UTC(2026, 11, 1, 12, 0, 0);
  let repo: string;
  let db: Database;
  beforeEach(async () => {
    repo = await policyRepo(
      flapPolicies('  window: 1m\n  alert: { error_rate: 0.5, min_requests: 4 }'),
    );
    db = await openLedger({});
  });
  afterEach(async () => {
    await db.close();
    await rm(repo, { recursive: true, force: true });
  });

  it('gives each provider, model and deployment its requests, errors and exact percentiles', async () => {
    // 10 successes at 100…1000 ms and 2 failures for flaky; one request long before the window.
    await ingestAttempts(db, repo, [
      ...Array.from({ length: 10 }, (_, i) => ({
        callId: `ok-${i}`,
        deployment: 'chat/flaky-model',
        group: 'chat',
        ok: true,
        startMs: T0 + i * 1000,
        latencyMs: (i + 1) * 100,
        costUsd: 0.002,
      })),
      ...[0, 1].map((i) => ({
        callId: `bad-${i}`,
        deployment: 'flaky-model',
        group: 'flaky-model',
        ok: false,
        startMs: T0 + i * 1000,
        latencyMs: 5,
      })),
      {
        callId: 'old',
        deployment: 'chat/flaky-model',
        group: 'chat',
        ok: false,
        startMs: T0 - 3_600_000,
        latencyMs: 5,
      },
    ]);
    const stats = await windowStats(db, new Date(T0 - 60_000), new Date(T0 + 60_000));
    const provider = stats.find((s) => s.provider === 'flaky' && s.model === undefined);
    expect(provider).toMatchObject({ requests: 12, errors: 2, measured: 10 });
    expect(provider?.p50LatencyMs).toBeCloseTo(550, 5); // percentile_cont over 100…1000
    expect(provider?.p95LatencyMs).toBeCloseTo(955, 5);
    expect(provider?.costPerRequestUsd).toBeCloseTo(0.002, 9);
    expect(provider?.p50TtftMs).toBeUndefined(); // not streamed: no time to first token
    const deployments = stats
      .filter((s) => s.deployment !== undefined)
      .map((s) => [s.deployment, s.requests, s.errors]);
    expect(deployments).toEqual([
      ['chat/flaky-model', 10, 0],
      ['flaky-model', 2, 2],
    ]);
  });

  it('alerts once per incident, and again after the rate fell back', async () => {
    const alerts: HealthAlert[] = [];
    let now = T0;
    const policiesDir = path.join(repo, 'policies');
    const monitor = new HealthMonitor({
      db,
      now: () => now,
      policies: async () => (await buildFromDir(policiesDir)).set,
      served: async () => (await buildFromDir(policiesDir)).config,
      writeOverlay: () => Promise.reject(new Error('no overlay change expected')),
      alert: (alert) => {
        alerts.push(alert);
        return Promise.resolve();
      },
      log: { info: () => undefined, warn: () => undefined, error: () => undefined },
    });
    const burst = async (tag: string, ok: boolean) => {
      await ingestAttempts(
        db,
        repo,
        Array.from({ length: 5 }, (_, i) => ({
          callId: `${tag}-${i}`,
          deployment: 'chat/flaky-model',
          group: 'chat',
          ok,
          startMs: now + i,
          latencyMs: 50,
        })),
      );
      now += 1000;
      return monitor.evaluate();
    };
    await burst('a', false);
    const report = await burst('b', false);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({
      provider: 'flaky',
      errors: 5,
      requests: 5,
      windowSeconds: 60,
    });
    expect(alerts[0]?.message).toMatch(
      /^provider flaky: 5 of 5 requests failed in the last 60 s \(100%, alert at 50%\)$/,
    );
    expect(report?.providers.find((p) => p.provider === 'flaky')).toMatchObject({
      requests: 10,
      errors: 10,
      condition: 'failing',
    });
    now += 120_000; // the failures leave the window
    await burst('c', true);
    await burst('d', false);
    await burst('e', false);
    expect(alerts).toHaveLength(2);
    expect(git(repo, 'log', '--format=%s').split('\n')).toEqual(['policies: initial']);
  });
});
