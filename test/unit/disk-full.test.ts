import { describe, expect, it } from 'vitest';
import { DiskFullError, isDiskFull } from '../../src/shared/disk.js';
import { FailureStreak } from '../../src/shared/failure-streak.js';

const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), {
  code: 'ENOSPC',
});

describe('isDiskFull', () => {
  it.each([
    ['a Node error with code ENOSPC', enospc, true],
    ['a quota error', Object.assign(new Error('quota'), { code: 'EDQUOT' }), true],
    [
      "git's words",
      new Error("fatal: sha1 file '.git/index.lock' write error. Out of diskspace"),
      true,
    ],
    [
      "PGlite's words, wrapped",
      new Error('ledger query failed', {
        cause: new Error('could not extend file "base/5/16395": No space left on device'),
      }),
      true,
    ],
    ['another error', new Error('fatal: Unable to create index.lock: File exists.'), false],
    ['a string', 'nothing', false],
    ['undefined', undefined, false],
  ])('%s', (_name, error, full) => {
    expect(isDiskFull(error)).toBe(full);
  });

  it('DiskFullError names the disk and the fix', () => {
    const error = new DiskFullError('/srv/repo', 'apply failed', 'nothing was applied');
    expect(error.message).toBe(
      'apply failed: the disk holding /srv/repo is full (no space left on device) — free space there (df -h /srv/repo); nothing was applied',
    );
  });
});

describe('FailureStreak', () => {
  function logged() {
    const lines: { level: string; message: string; details: Record<string, unknown> }[] = [];
    const log = {
      info: (details: Record<string, unknown>, message: string) =>
        lines.push({ level: 'info', message, details }),
      warn: (details: Record<string, unknown>, message: string) =>
        lines.push({ level: 'warn', message, details }),
      error: (details: Record<string, unknown>, message: string) =>
        lines.push({ level: 'error', message, details }),
    };
    return { lines, log };
  }

  it('a failure repeated every run is logged once, counted, shown in status, and its end logged once', () => {
    const { lines, log } = logged();
    const streak = new FailureStreak(log, 'spool ingestion', {
      now: () => new Date('2026-01-01T00:00:00Z'),
    });
    expect(streak.status()).toEqual({ failing: false });
    for (let run = 0; run < 60; run++)
      streak.failed(new Error(`could not extend file "base/5/${run}": No space left on device`));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 'warn',
      message: expect.stringContaining('spool ingestion failed: the disk is full') as string,
      details: { diskFull: true },
    });
    expect(streak.status()).toMatchObject({
      failing: true,
      since: '2026-01-01T00:00:00.000Z',
      failedRuns: 60,
      diskFull: true,
    });
    streak.succeeded();
    streak.succeeded();
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({
      level: 'info',
      message: 'spool ingestion works again',
      details: { failedRuns: 60 },
    });
    expect(streak.status()).toEqual({ failing: false });
  });

  it('a different failure is logged again, at the level asked for', () => {
    const { lines, log } = logged();
    const streak = new FailureStreak(log, 'apply', { level: 'error' });
    streak.failed(enospc);
    streak.failed(new Error('index.lock: File exists'));
    streak.failed(new Error('index.lock: File exists'));
    expect(lines.map((l) => [l.level, l.message])).toEqual([
      ['error', expect.stringContaining('apply failed: the disk is full')],
      ['error', expect.stringContaining('apply failed; retrying')],
    ]);
  });
});
