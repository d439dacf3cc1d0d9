import { rm } from 'node:fs/promises';
import path from 'node:path';
import { buildFromDir } from '../../src/compile/build.js';
import { HealthMonitor } from '../../src/health/monitor.js';
import { OverlayWriter } from '../../src/health/overlay.js';
import type { Database } from '../../src/store/db.js';
import { openLedger } from '../../src/store/migrate.js';
import { ingestAttempts } from './health.js';
import { git, policyRepo } from './repo.js';

/**
 * A provider that flaps every 2 s, on a compressed clock: the real monitor, the real decisions,
 * the real ledger (PGlite, rows through the real ingest path) and real overlay commits in a real
 * policy repository. Only the apply is counted instead of reloading LiteLLM: what is bounded is
 * how often health asks for a reload. No vitest imports: bench/ runs it too.
 */
export const flapPolicies = (health: string): string => `
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

export interface FlapResult {
  /** Overlay changes applied (each one reload of LiteLLM). */
  applies: number;
  /** Subjects of the overlay commits, newest first. */
  commits: string[];
  /** How often flaky's condition flipped: what a controller without hysteresis would act on. */
  wanted: number;
  /** Some evaluation had moves waiting for the reload budget. */
  deferred: boolean;
}

/** Simulates `minutes` of flapping (two requests a second per provider), evaluating every second. */
export async function flap(health: string, minutes: number): Promise<FlapResult> {
  const repo = await policyRepo(flapPolicies(health));
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
      log: {
        info: () => undefined,
        warn: () => undefined,
        error: (details, message) => console.error(message, details),
      },
    });
    let wanted = 0;
    let deferred = false;
    let previous: string | undefined;
    for (let second = 0; second < minutes * 60; second += 1) {
      // flaky fails for 2 s, then works for 2 s; steady always works.
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
