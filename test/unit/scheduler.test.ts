import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import { SecretValues } from '../../src/log/redact.js';
import type { RunOutcome } from '../../src/scheduler/schema.js';
import {
  cronProblem,
  Scheduler,
  SchedulerError,
  type Clock,
  type SchedulerOptions,
} from '../../src/scheduler/scheduler.js';

const EVERY_SECOND = '*/1 * * * * *';

interface Harness {
  scheduler: Scheduler;
  lines: Record<string, unknown>[];
  recorded: { job: string; outcome: RunOutcome; seconds?: number }[];
}

const started: Scheduler[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.stop(1_000)));
});

function harness(options: Partial<SchedulerOptions> = {}): Harness {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'debug',
    pretty: false,
    destination: { write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) },
  }).child({ subsystem: 'scheduler' });
  const recorded: Harness['recorded'] = [];
  const scheduler = new Scheduler({
    logger,
    metrics: { recordJob: (job, outcome, seconds) => recorded.push({ job, outcome, seconds }) },
    ...options,
  });
  started.push(scheduler);
  return { scheduler, lines, recorded };
}

/** A clock that moves only when told. */
function steppedClock(
  start = Date.parse('2026-01-01T00:00:00Z'),
): Clock & { advance(ms: number): void } {
  let now = start;
  return { now: () => now, advance: (ms) => (now += ms) };
}

describe('scheduler: a job never overlaps itself', () => {
  it('a job that runs longer than its interval never starts twice; the due ticks are skipped and counted', async () => {
    const { scheduler, recorded, lines } = harness();
    let active = 0;
    let maxActive = 0;
    let starts = 0;
    scheduler.register({
      name: 'slow-job',
      schedule: EVERY_SECOND,
      run: async () => {
        starts += 1;
        active += 1;
        maxActive = Math.max(maxActive, active);
        await sleep(2_500);
        active -= 1;
      },
    });
    scheduler.start();
    await sleep(1_500);
    // Asked for by hand while the scheduled run goes: refused, with the running run's id.
    const manual = await scheduler.runNow('slow-job');
    const [during] = scheduler.status();
    expect(during?.running).toBe(true);
    expect(manual).toMatchObject({ outcome: 'skipped', runId: during?.currentRunId });
    await sleep(4_000);
    const report = await scheduler.stop(5_000);

    expect(maxActive).toBe(1);
    expect(starts).toBeGreaterThanOrEqual(2);
    const [status] = scheduler.status();
    expect(status?.skips).toBeGreaterThanOrEqual(2);
    expect(status?.runs).toBe(starts);
    expect(report.abandoned).toEqual([]);
    expect(recorded.filter((r) => r.outcome === 'skipped')).toHaveLength(status?.skips ?? -1);
    expect(recorded.filter((r) => r.outcome === 'ok').every((r) => (r.seconds ?? 0) >= 2.4)).toBe(
      true,
    );
    expect(lines.some((l) => l.msg === 'job skipped: its previous run is still going')).toBe(true);
  }, 20_000);
});

describe('scheduler: a failing job', () => {
  it('is recorded with its error (secrets masked) and the schedule goes on, for it and the others', async () => {
    const secrets = new SecretValues();
    const key = `sk-${'x'.repeat(8)}-provider-key-value`;
    secrets.add(key);
    const { scheduler, lines } = harness({ mask: (text) => secrets.mask(text) });
    let healthy = 0;
    scheduler.register({
      name: 'broken',
      schedule: EVERY_SECOND,
      run: () => {
        throw new Error(`provider refused key ${key}`);
      },
    });
    scheduler.register({ name: 'healthy', schedule: EVERY_SECOND, run: () => void healthy++ });
    scheduler.start();
    await sleep(3_200);

    const [broken, ok] = scheduler.status();
    expect(broken?.failures).toBeGreaterThanOrEqual(2);
    expect(broken?.lastOutcome).toBe('failed');
    expect(broken?.lastError).toBe('provider refused key [REDACTED]');
    expect(broken?.running).toBe(false);
    expect(broken?.nextRunAt).toBeDefined();
    expect(ok?.lastOutcome).toBe('ok');
    expect(healthy).toBeGreaterThanOrEqual(2);
    const failedLines = lines.filter((l) => l.msg === 'job failed');
    expect(failedLines.length).toBe(broken?.failures);
    expect(failedLines[0]).toMatchObject({ subsystem: 'scheduler', job: 'broken' });
    expect(typeof failedLines[0]?.runId).toBe('string');
    expect(JSON.stringify(lines)).not.toContain(key);
  }, 20_000);
});

describe('scheduler: status, runNow and shutdown', () => {
  it('status shows the last start, duration and outcome from the injected clock', async () => {
    const clock = steppedClock();
    const ids = ['run-1', 'run-2'];
    const { scheduler, recorded } = harness({ clock, newRunId: () => ids.shift() ?? 'run-x' });
    scheduler.register({
      name: 'drift-check',
      schedule: '*/5 * * * *',
      run: () => clock.advance(1_250),
    });
    expect(scheduler.status()[0]).toEqual({
      name: 'drift-check',
      schedule: '*/5 * * * *',
      running: false,
      runs: 0,
      failures: 0,
      skips: 0,
    });
    const result = await scheduler.runNow('drift-check');
    expect(result).toEqual({ job: 'drift-check', runId: 'run-1', outcome: 'ok', durationMs: 1250 });
    expect(scheduler.status()[0]).toMatchObject({
      lastRunId: 'run-1',
      lastTrigger: 'manual',
      lastStartedAt: '2026-01-01T00:00:00.000Z',
      lastDurationMs: 1250,
      lastOutcome: 'ok',
      runs: 1,
    });
    expect(scheduler.status()[0]?.nextRunAt).toBeUndefined();
    scheduler.start();
    const next = Date.parse(scheduler.status()[0]?.nextRunAt ?? '');
    expect(next).toBeGreaterThan(Date.now());
    expect(next - Date.now()).toBeLessThanOrEqual(5 * 60_000);
    expect(new Date(next).getUTCMinutes() % 5).toBe(0);
    expect(recorded).toEqual([{ job: 'drift-check', outcome: 'ok', seconds: 1.25 }]);
  });

  it('runNow on an unknown job names the jobs there are', async () => {
    const { scheduler } = harness();
    scheduler.register({ name: 'drift-check', schedule: '* * * * *', run: () => undefined });
    await expect(scheduler.runNow('rotate')).rejects.toThrow(
      'no job is named "rotate" (jobs: drift-check)',
    );
  });

  it('stop waits for a running job to finish', async () => {
    const { scheduler } = harness();
    let finished = false;
    scheduler.register({
      name: 'backfill',
      schedule: '0 3 * * *',
      run: async () => {
        await sleep(300);
        finished = true;
      },
    });
    const run = scheduler.runNow('backfill');
    const report = await scheduler.stop(5_000);
    expect(finished).toBe(true);
    expect(report).toEqual({ finished: ['backfill'], abandoned: [] });
    expect((await run).outcome).toBe('ok');
    await expect(scheduler.runNow('backfill')).rejects.toThrow('shutting down');
  });

  it('stop gives up after its timeout and aborts the run it leaves behind', async () => {
    const { scheduler } = harness();
    let aborted = false;
    scheduler.register({
      name: 'stuck',
      schedule: '0 3 * * *',
      run: ({ signal }) =>
        new Promise<void>((resolve) =>
          signal.addEventListener('abort', () => {
            aborted = true;
            resolve();
          }),
        ),
    });
    void scheduler.runNow('stuck');
    const startedAt = Date.now();
    const report = await scheduler.stop(200);
    expect(Date.now() - startedAt).toBeLessThan(2_000);
    expect(report).toEqual({ finished: [], abandoned: ['stuck'] });
    expect(aborted).toBe(true);
  });
});

describe('scheduler: registration is checked', () => {
  it.each([
    ['61 * * * *', 'minute: 61 is an invalid expression for minute'],
    ['* * *', 'expected 5 or 6 fields but got 3'],
    ['every 5 minutes', 'expected 5 or 6 fields but got 3'],
    ['0 0 31 2 *', 'impossible day of month'],
  ])('cron expression %j is refused with the job, the expression and the format', (expr, why) => {
    const { scheduler } = harness();
    const register = () =>
      scheduler.register({ name: 'drift-check', schedule: expr, run: () => {} });
    expect(register).toThrow(SchedulerError);
    expect(register).toThrow(`job "drift-check" has an invalid cron expression "${expr}"`);
    expect(register).toThrow(why);
    expect(register).toThrow('use 5 fields (minute hour day-of-month month day-of-week)');
    expect(scheduler.status()).toEqual([]);
  });

  it('valid expressions pass: 5 fields, 6 with seconds, names of days', () => {
    for (const expr of ['*/15 * * * *', '*/1 * * * * *', '0 9 * * mon-fri', '@daily']) {
      expect(cronProblem(expr)).toBeUndefined();
    }
  });

  it('a duplicate or malformed job name, or an unknown time zone, is refused', () => {
    const { scheduler } = harness();
    scheduler.register({ name: 'drift-check', schedule: '* * * * *', run: () => {} });
    expect(() =>
      scheduler.register({ name: 'drift-check', schedule: '* * * * *', run: () => {} }),
    ).toThrow('job "drift-check" is registered twice');
    expect(() =>
      scheduler.register({ name: 'Drift Check', schedule: '* * * * *', run: () => {} }),
    ).toThrow('job name "Drift Check" is not allowed');
    expect(() => harness({ timezone: 'Mars/Olympus' })).toThrow(
      'time zone "Mars/Olympus" is not an IANA time zone',
    );
  });
});
