import { rm } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildFromDir } from '../../src/compile/build.js';
import { HealthMonitor } from '../../src/health/monitor.js';
import { OverlayWriter } from '../../src/health/overlay.js';
import type { Database } from '../../src/store/db.js';
import { openLedger } from '../../src/store/migrate.js';
import { ingestAttempts } from '../helpers/health.js';
import { git, policyRepo } from '../helpers/repo.js';

/**
 * A provider that flaps every 2 s for 10 minutes, on a compressed clock: the real monitor, the
 * real decisions, the real ledger (PGlite, rows through the real ingest path) and real overlay
 * commits in a real policy repository. Only the apply is counted instead of reloading LiteLLM:
 * what is bounded here is how often health asks for a reload.
 */
const policies = (health: string) => `
providers:
  flaky: { kind: openai_compatible, base_url: "http://flaky.test/v1" }
  steady: { kind: openai_compatible, base_url: "http://steady.test/v1" }
models:
  flaky-model: { provider: flaky, capabilities: [chat], quality: 90 }
  steady-model: { provider: steady, capabilities: [chat], quality: 50 }
profiles:
  chat: { requires: [chat], prefer: [quality] }
health:
${health}
`;

const T0 = Date.UTC(2026, 11, 1, 12, 0, 0);

async function flap(
  health: string,
  minutes: number,
): Promise<{ applies: number; commits: string[]; wanted: number; deferred: boolean }> {
  const repo = await policyRepo(policies(health));
  const db: Database = await openLedger({});
  let now = T0;
  let applies = 0;
  try {
    const policiesDir = path.join(repo, 'policies');
    const writer = new OverlayWriter(policiesDir, () => {
      applies += 1;
      return Promise.resolve({ outcome: 'applied' as const, problems: [] });
    });
    const monitor = new HealthMonitor({
      db,
      now: () => now,
      policies: async () => (await buildFromDir(policiesDir)).set,
      served: async () => (await buildFromDir(policiesDir)).config,
      writeOverlay: (overlay, message) => writer.write(overlay, message),
      log: { info: () => undefined, warn: () => undefined, error: (d, m) => console.error(m, d) },
    });
    let wanted = 0;
    let deferred = false;
    let previous: string | undefined;
    for (let second = 0; second < minutes * 60; second += 1) {
      // Two requests a second to each provider; flaky fails for 2 s, then works for 2 s.
      const failing = Math.floor(second / 2) % 2 === 1;
      const attempts = [0, 500].flatMap((offset) => [
        {
          callId: `flaky-${second}-${offset}`,
          deployment: 'chat/flaky-model',
          group: 'chat',
          ok: !failing,
          startMs: now + offset,
          latencyMs: 80,
        },
        {
          callId: `steady-${second}-${offset}`,
          deployment: 'chat/steady-model',
          group: 'chat',
          ok: true,
          startMs: now + offset,
          latencyMs: 120,
        },
      ]);
      await ingestAttempts(db, repo, attempts);
      now += 1000;
      const report = await monitor.evaluate();
      const flaky = report?.providers.find((p) => p.provider === 'flaky');
      // How often the provider's condition flipped: what a controller without hysteresis acts on.
      if (flaky && previous !== undefined && flaky.condition !== previous) wanted += 1;
      previous = flaky?.condition;
      if (report?.demotion.deferredUntil) deferred = true;
    }
    const commits = git(repo, 'log', '--format=%s', '--', 'policies/modelcenter-health.yaml')
      .split('\n')
      .filter(Boolean);
    return { applies, commits, wanted, deferred };
  } finally {
    await db.close();
    await rm(repo, { recursive: true, force: true });
  }
}

describe('health: a provider flapping every 2 s', () => {
  it('with thresholds that trip on every flap, reloads stop at max_reloads_per_hour', async () => {
    const result = await flap(
      `  window: 1s
  evaluate_every: 1s
  demotion: { error_rate: 0.5, min_requests: 2, after: 1s, recover_below: 0.2, recover_after: 1s, max_reloads_per_hour: 4 }`,
      Number(process.env.FLAP_MINUTES ?? 10),
    );
    // The condition flipped on nearly every flap: without the budget, each would be a reload.
    expect(result.wanted).toBeGreaterThan(100);
    expect(result.applies).toBe(4);
    expect(result.deferred).toBe(true);
    expect(result.commits).toEqual([
      'modelcenter health: restore flaky',
      'modelcenter health: demote flaky',
      'modelcenter health: restore flaky',
      'modelcenter health: demote flaky',
    ]);
  }, 240_000);

  it('with the default thresholds, it is demoted once and stays demoted while it flaps', async () => {
    const result = await flap('  evaluate_every: 1s', 10);
    console.log(
      `default thresholds: ${result.applies} reload(s), ${result.wanted} condition flips`,
    );
    // Half its requests fail: over the 5-minute window that holds at the 50% threshold long
    // enough to demote it once; it never falls under 10% to count as recovered, so no restore and
    // no second reload, though its condition flipped on most evaluations.
    expect(result.wanted).toBeGreaterThan(50);
    expect(result.applies).toBe(1);
    expect(result.commits).toEqual(['modelcenter health: demote flaky']);
  }, 240_000);
});
