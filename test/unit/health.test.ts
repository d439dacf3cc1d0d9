import { describe, expect, it } from 'vitest';
import { buildFromTexts } from '../../src/compile/build.js';
import type { LiteLLMConfig } from '../../src/compile/litellm-config.js';
import { orderChanges, profileOrder } from '../../src/compile/order-changes.js';
import {
  budgetFreeAt,
  conditionOf,
  decide,
  track,
  type ProviderCondition,
} from '../../src/health/decide.js';
import { overlayCommitMessage, renderOverlay } from '../../src/health/overlay.js';
import { measuredFromStats, rerank } from '../../src/health/ranking.js';
import { healthSettings, type DemotionSettings } from '../../src/health/settings.js';
import type { PolicySet } from '../../src/policy/policy-set.js';

const SETTINGS: DemotionSettings = {
  enabled: true,
  errorRate: 0.5,
  minRequests: 5,
  afterMs: 60_000,
  recoverBelow: 0.1,
  recoverAfterMs: 120_000,
  maxReloadsPerHour: 2,
};

const catalog = (overlay = '', health = '') => `
providers:
  alpha: { kind: openai_compatible, base_url: "http://alpha.test/v1" }
  beta: { kind: openai_compatible, base_url: "http://beta.test/v1" }
models:
  a-model: { provider: alpha, capabilities: [chat], quality: 90, pricing: { input_per_mtok: 1, output_per_mtok: 1 } }
  b-model: { provider: beta, capabilities: [chat], quality: 60, pricing: { input_per_mtok: 2, output_per_mtok: 2 } }
profiles:
  best: { requires: [chat], prefer: [quality] }
  quick: { requires: [chat], prefer: [latency, quality] }
  cheap: { requires: [chat], prefer: [cost] }
${health}
${overlay}`;

function build(text: string): { set: PolicySet; config: LiteLLMConfig } {
  const result = buildFromTexts([{ name: 'p.yaml', text }]);
  if (!result.config) throw new Error(JSON.stringify(result.findings.errors));
  return { set: result.set, config: result.config };
}

describe('health: conditions and demotion decisions (pure)', () => {
  it.each([
    [{ requests: 10, errors: 6 }, 'failing'],
    [{ requests: 10, errors: 5 }, 'failing'],
    [{ requests: 4, errors: 4 }, 'between'], // too few requests to call it failing
    [{ requests: 10, errors: 3 }, 'between'],
    [{ requests: 10, errors: 0 }, 'recovered'],
    [{ requests: 0, errors: 0 }, 'recovered'], // no traffic: nothing says it fails
  ] as const)('%o is %s', (figures, condition) => {
    expect(conditionOf({ provider: 'p', ...figures }, SETTINGS).condition).toBe(condition);
  });

  it('every background probe down is failing, whatever the ledger says', () => {
    const c = conditionOf(
      { provider: 'p', requests: 0, errors: 0, probes: { healthy: 0, unhealthy: 2 } },
      SETTINGS,
    );
    expect(c.condition).toBe('failing');
    expect(c.why).toMatch(/every background probe failed/);
  });

  it('demotes only after the failure held for `after`, restores only after recovery held', () => {
    const fail = { provider: 'alpha', requests: 10, errors: 9 };
    const ok = { provider: 'beta', requests: 10, errors: 0 };
    let conditions: Record<string, ProviderCondition> = {};
    conditions = track(conditions, [fail, ok], SETTINGS, 0);
    const at = (now: number, demoted: string[] = []) =>
      decide({ conditions, demoted: new Set(demoted), reloads: [], settings: SETTINGS, now });
    expect(at(59_000).demote).toEqual([]);
    conditions = track(conditions, [fail, ok], SETTINGS, 59_000); // same condition: clock kept
    expect(at(60_000).demote.map((m) => m.provider)).toEqual(['alpha']);
    // A break in the failure restarts the clock.
    conditions = track(conditions, [{ ...fail, errors: 3 }, ok], SETTINGS, 61_000);
    conditions = track(conditions, [fail, ok], SETTINGS, 62_000);
    expect(at(100_000).demote).toEqual([]);
    // Recovery of a demoted provider: restored after recoverAfterMs.
    conditions = track(conditions, [{ ...fail, errors: 0 }, ok], SETTINGS, 200_000);
    expect(at(319_000, ['alpha']).restore).toEqual([]);
    expect(at(320_000, ['alpha']).restore.map((m) => m.provider)).toEqual(['alpha']);
  });

  it('waits for the reload budget: at most maxReloadsPerHour moves in any hour', () => {
    const conditions = track(
      {},
      [
        { provider: 'alpha', requests: 10, errors: 10 },
        { provider: 'beta', requests: 10, errors: 0 },
      ],
      SETTINGS,
      0,
    );
    const reloads = [1_000_000, 1_500_000];
    const decision = decide({
      conditions,
      demoted: new Set(),
      reloads,
      settings: SETTINGS,
      now: 2_000_000,
    });
    expect(decision.demote).toEqual([]);
    expect(decision.deferredUntil).toBe(1_000_000 + 3_600_000);
    expect(budgetFreeAt(reloads, 4_600_001, 2)).toBe(4_600_001);
  });

  it('never demotes the last provider still serving', () => {
    const conditions = track(
      {},
      [
        { provider: 'alpha', requests: 10, errors: 10 },
        { provider: 'beta', requests: 10, errors: 10 },
      ],
      SETTINGS,
      0,
    );
    const decision = decide({
      conditions,
      demoted: new Set(),
      reloads: [],
      settings: SETTINGS,
      now: 3_600_000,
    });
    expect(decision.demote).toEqual([]);
  });
});

describe('health: the overlay in compile and plan', () => {
  const demoted = `
health_overlay:
  demoted:
    alpha: { since: "2026-12-02T05:00:00.000Z", reason: "failing for 120 s: 9 of 10 requests failed (90%)" }
`;

  it('a demoted provider moves to the end of every profile, keeping the same deployments', () => {
    const before = build(catalog());
    const after = build(catalog(demoted));
    expect(profileOrder(before.config, 'best')).toEqual(['a-model', 'b-model']);
    expect(profileOrder(after.config, 'best')).toEqual(['b-model', 'a-model']);
    const ids = (c: LiteLLMConfig) => c.model_list.map((d) => d.model_info.id).sort();
    expect(ids(after.config)).toEqual(ids(before.config));
    const changes = orderChanges(before.config, after.set, after.config);
    expect(changes.find((c) => c.profile === 'best')?.why).toEqual([
      'b-model before a-model: provider "alpha" is demoted (failing for 120 s: 9 of 10 requests failed (90%))',
    ]);
  });

  it('prefer latency ranks by measured p50 once both are measured; plan says why', () => {
    const unmeasured = build(catalog());
    // No measurements: latency does not decide, quality does.
    expect(profileOrder(unmeasured.config, 'quick')).toEqual(['a-model', 'b-model']);
    const measured = build(
      catalog(`
health_overlay:
  measured:
    a-model: { samples: 40, p50_latency_ms: 900, success_rate: 1 }
    b-model: { samples: 40, p50_latency_ms: 120, success_rate: 1 }
`),
    );
    expect(profileOrder(measured.config, 'quick')).toEqual(['b-model', 'a-model']);
    expect(profileOrder(measured.config, 'best')).toEqual(['a-model', 'b-model']);
    const [change] = orderChanges(unmeasured.config, measured.set, measured.config);
    expect(change).toMatchObject({
      profile: 'quick',
      before: ['a-model', 'b-model'],
      after: ['b-model', 'a-model'],
    });
    expect(change?.why[0]).toBe(
      'b-model before a-model: prefer latency, p50 120 ms (measured, n=40) against p50 900 ms (measured, n=40)',
    );
  });

  it('prefer cost uses measured cost per request when both have it, declared pricing before', () => {
    expect(profileOrder(build(catalog()).config, 'cheap')).toEqual(['a-model', 'b-model']);
    const measured = build(
      catalog(`
health_overlay:
  measured:
    a-model: { samples: 30, success_rate: 1, cost_per_request_usd: 0.004 }
    b-model: { samples: 30, success_rate: 1, cost_per_request_usd: 0.001 }
`),
    );
    expect(profileOrder(measured.config, 'cheap')).toEqual(['b-model', 'a-model']);
  });

  it('background probes: one per model per interval, profile copies not probed twice', () => {
    const { config } = build(catalog('', 'health: { probe_interval: 2m }'));
    expect(config.general_settings).toMatchObject({
      background_health_checks: true,
      health_check_interval: 120,
    });
    const probed = config.model_list.filter((d) => !d.model_info.disable_background_health_check);
    expect(probed.map((d) => d.model_info.id).sort()).toEqual(['a-model', 'b-model']);
    // Without probe_interval nothing changes in the config.
    expect(build(catalog()).config.general_settings).toEqual({
      master_key: 'os.environ/LITELLM_MASTER_KEY',
    });
  });

  it('rejects recover_below above error_rate, with where and how to fix it', () => {
    const result = buildFromTexts([
      {
        name: 'p.yaml',
        text: catalog('', 'health: { demotion: { error_rate: 0.3, recover_below: 0.5 } }'),
      },
    ]);
    expect(result.config).toBeUndefined();
    expect(result.findings.errors[0]).toMatchObject({
      path: 'health.demotion.recover_below',
      hint: 'set recover_below at or below error_rate',
    });
  });
});

describe('health: re-ranking by measurements needs more than the margin', () => {
  const stats = (a: number, b: number) => [
    { provider: 'alpha', model: 'a-model', requests: 40, errors: 0, measured: 40, p50LatencyMs: a },
    { provider: 'beta', model: 'b-model', requests: 40, errors: 0, measured: 40, p50LatencyMs: b },
  ];
  const models = new Set(['a-model', 'b-model']);

  it('ignores models under min_samples', () => {
    expect(measuredFromStats(stats(100, 50), models, 41)).toEqual({});
    expect(Object.keys(measuredFromStats(stats(100, 50), models, 40))).toEqual([
      'a-model',
      'b-model',
    ]);
  });

  it.each([
    // [a p50, b p50 measured now, moves?] with a-model first (ranked by 100 vs 110 before)
    [100, 95, false], // b better by 5%: within the 20% margin
    [100, 85, false], // 17.6%
    [100, 80, true], // 25%
    [300, 100, true],
  ])('a %d ms, b %d ms → reorders: %s', (a, b, moves) => {
    const { set } = build(
      catalog(`
health_overlay:
  measured:
    a-model: { samples: 40, p50_latency_ms: 100, success_rate: 1 }
    b-model: { samples: 40, p50_latency_ms: 110, success_rate: 1 }
`),
    );
    const result = rerank(set, measuredFromStats(stats(a, b), models, 20), 0.2);
    expect(result.changed).toBe(moves);
    if (moves) expect(result.moves[0]?.why[0]).toMatch(/^b-model before a-model: prefer latency/);
  });
});

describe('health: settings and the overlay file', () => {
  it('defaults are filled in', () => {
    expect(healthSettings(undefined).demotion).toEqual({
      enabled: true,
      errorRate: 0.5,
      minRequests: 5,
      afterMs: 120_000,
      recoverBelow: 0.1,
      recoverAfterMs: 600_000,
      maxReloadsPerHour: 4,
    });
  });

  it('renders a stable file whose commit message says what moved and why', () => {
    const overlay = {
      demoted: { beta: { since: 's', reason: 'r' }, alpha: { since: 's', reason: 'r' } },
      measured: {},
    };
    expect(renderOverlay(overlay)).toBe(renderOverlay(overlay));
    expect(renderOverlay(overlay).indexOf('alpha')).toBeLessThan(
      renderOverlay(overlay).indexOf('beta'),
    );
    // The rendered file is a valid policy file.
    expect(build(catalog(renderOverlay(overlay))).config).toBeDefined();
    const message = overlayCommitMessage({
      demote: [{ provider: 'alpha', reason: 'failing for 130 s: 9 of 10 requests failed (90%)' }],
      restore: [],
      rerank: [],
    });
    expect(message.split('\n')[0]).toBe('modelcenter health: demote alpha');
    expect(message).toContain('Demoted alpha to the end of every profile: failing for 130 s');
  });
});
