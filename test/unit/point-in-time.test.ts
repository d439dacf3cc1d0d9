import { describe, expect, it } from 'vitest';
import { parsePointInTime } from '../../src/shared/duration.js';
import { reportQuerySchema } from '../../src/spend/schema.js';

const NOW = new Date('2026-12-02T12:00:00Z');

describe('points in time for reports and backfills (since/until)', () => {
  it.each([
    ['7d', '2026-11-25T12:00:00.000Z'],
    ['24h', '2026-12-01T12:00:00.000Z'],
    ['2w', '2026-11-18T12:00:00.000Z'],
    // Further back than the longest policy duration (3650d): still a point in time.
    ['5000d', '2013-03-25T12:00:00.000Z'],
    ['2026-11-01', '2026-11-01T00:00:00.000Z'],
    ['2028-02-29', '2028-02-29T00:00:00.000Z'],
    ['2000-02-29', '2000-02-29T00:00:00.000Z'],
    ['2026-11-01T12:30', '2026-11-01T12:30:00.000Z'],
    ['2026-11-01T12:30:15Z', '2026-11-01T12:30:15.000Z'],
    ['2026-11-01T12:30:15.250Z', '2026-11-01T12:30:15.250Z'],
    ['1970-01-01', '1970-01-01T00:00:00.000Z'],
    ['9999-12-31T23:59:59Z', '9999-12-31T23:59:59.000Z'],
  ])('%s is %s', (text, iso) => {
    const parsed = parsePointInTime(text, NOW);
    expect(parsed.ok && parsed.date.toISOString()).toBe(iso);
  });

  it.each([
    ['2026-02-30', /2026-02 has 28 days/],
    ['2026-02-29', /2026-02 has 28 days/],
    ['1900-02-29', /1900-02 has 28 days/],
    ['2026-04-31', /2026-04 has 30 days/],
    ['2026-13-01', /no month 13/],
    ['2026-00-10', /no month 0/],
    ['2026-11-00', /not a day/],
    ['2026-11-01T24:00', /not a time of day/],
    ['2026-11-01T12:60', /not a time of day/],
    ['0000-01-01', /outside 1970-01-01 to 9999-12-31/],
    ['1969-12-31T23:59:59Z', /outside/],
    ['99999999d', /reaches back before 1970/],
    ['9'.repeat(400) + 'w', /reaches back before 1970/],
    ['0d', /no duration/],
    ['7y', /neither a duration .* nor a date/],
    ['2026-11-01T12:00:00+02:00', /neither/],
    ['yesterday', /neither/],
    ['', /neither/],
  ])('%s is refused: %s', (text, reason) => {
    const parsed = parsePointInTime(text, NOW);
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.reason).toMatch(reason);
  });

  it('the report query schema refuses them naming the parameter, and control characters in filters', () => {
    const since = reportQuerySchema.safeParse({ since: '2026-02-30' });
    expect(since.success).toBe(false);
    expect(since.error?.issues[0]).toMatchObject({ path: ['since'] });
    const until = reportQuerySchema.safeParse({ until: '0000-01-01' });
    expect(until.error?.issues[0]).toMatchObject({ path: ['until'] });
    const goal = reportQuerySchema.safeParse({ goal: 'x\u0000y' });
    expect(goal.error?.issues[0]).toMatchObject({ path: ['goal'] });
    expect(reportQuerySchema.safeParse({ since: '7d', goal: 'a,b' }).success).toBe(true);
  });
});
