import { describe, expect, it } from 'vitest';
import { flap } from '../helpers/health-flap.js';

/** Flapping every 2 s for 10 minutes on a compressed clock (see test/helpers/health-flap.ts). */
describe('health: a provider flapping every 2 s for 10 minutes', () => {
  it('with thresholds that trip on every flap, reloads stop at max_reloads_per_hour', async () => {
    const result = await flap(
      `  window: 1s
  evaluate_every: 1s
  demotion: { error_rate: 0.5, min_requests: 2, after: 1s, recover_below: 0.2, recover_after: 1s, max_reloads_per_hour: 4 }`,
      10,
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
    // Half its requests fail: over the 5-minute window that holds at the 50% threshold long
    // enough to demote it once; it never falls under 10% to count as recovered, so no restore and
    // no second reload, though its condition flipped on most evaluations.
    expect(result.wanted).toBeGreaterThan(50);
    expect(result.applies).toBe(1);
    expect(result.commits).toEqual(['modelcenter health: demote flaky']);
  }, 240_000);
});
