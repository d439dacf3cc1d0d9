import { describe, expect, it } from 'vitest';
import { ServiceStartError, Subsystems, type Subsystem } from '../../src/shared/subsystem.js';

/** A subsystem that records its start and stop in `events`. */
function recorded(
  events: string[],
  name: string,
  extra: Partial<Subsystem<string, string>> = {},
): () => Promise<Subsystem<string, string>> {
  return () => {
    events.push(`start ${name}`);
    return Promise.resolve({
      ...extra,
      stop: () => {
        events.push(`stop ${name}`);
        return Promise.resolve();
      },
    });
  };
}

describe('Subsystems', () => {
  it('starts in order, stops in reverse once, and merges routes, jobs and status in start order', async () => {
    const events: string[] = [];
    const running = new Subsystems<string, string>(() => undefined);
    await running.start(
      'ledger',
      recorded(events, 'ledger', {
        routes: ['/v1/spend/report'],
        jobs: { backfill: 'b' },
        status: () => Promise.resolve({ ledger: 'ok' }),
      }),
    );
    await running.start(
      'apply',
      recorded(events, 'apply', {
        routes: ['/v1/apply'],
        jobs: { 'drift-check': 'd' },
        status: () => Promise.resolve({ strategy: 'restart' }),
        readiness: () => Promise.resolve({ ready: false, reason: 'no instance serves' }),
      }),
    );
    expect(running.routes()).toEqual(['/v1/spend/report', '/v1/apply']);
    expect(running.jobs()).toEqual({ backfill: 'b', 'drift-check': 'd' });
    expect(Object.keys(await running.status())).toEqual(['ledger', 'strategy']);
    expect(await running.readiness()).toEqual({
      ready: false,
      reason: 'apply: no instance serves',
    });
    await Promise.all([running.stop(), running.stop()]);
    expect(events).toEqual(['start ledger', 'start apply', 'stop apply', 'stop ledger']);
  });

  it('a failed start stops what was started, in reverse, and the error goes on; a failing stop is reported', async () => {
    const events: string[] = [];
    const reported: string[] = [];
    const running = new Subsystems<string, string>((name, error) =>
      reported.push(`${name}: ${error}`),
    );
    await running.start('ledger', recorded(events, 'ledger'));
    await running.start('apply', () =>
      Promise.resolve({ stop: () => Promise.reject(new Error('git is gone')) }),
    );
    await expect(
      running.start('api', () =>
        Promise.reject(new ServiceStartError('the API cannot listen', 'failed')),
      ),
    ).rejects.toThrow('the API cannot listen');
    expect(events).toEqual(['start ledger', 'stop ledger']);
    expect(reported).toEqual(['apply: git is gone']);
  });
});
