import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApplyHistory, type ApplyRecord } from '../../src/apply/history.js';

const record = (n: number, outcome: ApplyRecord['outcome'], commit?: string): ApplyRecord => ({
  at: new Date(Date.UTC(2026, 10, 20, 0, n)).toISOString(),
  trigger: n === 0 ? 'start' : 'api',
  outcome,
  ...(commit && { commit }),
  durationMs: 100 + n,
  problems: outcome === 'failed' ? ['LiteLLM refused it'] : [],
});

describe('ApplyHistory (the dashboard\'s "last applies")', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mc-history-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('lists newest first and survives a restart of the controller', async () => {
    const history = await ApplyHistory.open(dir);
    await history.record(record(0, 'applied', 'aaa'));
    await history.record(record(1, 'failed', 'bbb'));
    await history.record(record(2, 'unchanged', 'aaa'));
    const reopened = await ApplyHistory.open(dir);
    expect(reopened.recent(2).map((r) => [r.trigger, r.outcome, r.commit])).toEqual([
      ['api', 'unchanged', 'aaa'],
      ['api', 'failed', 'bbb'],
    ]);
    expect(reopened.recent(10)).toHaveLength(3);
  });

  it('the live commit is the last one an apply left live, never a failed one', async () => {
    const history = await ApplyHistory.open(dir);
    expect(history.liveCommit()).toBeUndefined();
    await history.record(record(0, 'applied', 'aaa'));
    await history.record(record(1, 'failed', 'bbb'));
    await history.record(record(2, 'invalid'));
    expect(history.liveCommit()).toBe('aaa');
    await history.record(record(3, 'rolled-back', 'ccc'));
    expect(history.liveCommit()).toBe('ccc');
  });

  it('skips a line cut by a crash and keeps the last 200 records', async () => {
    const history = await ApplyHistory.open(dir);
    for (let n = 0; n < 205; n += 1) await history.record(record(n % 60, 'applied', `c${n}`));
    await appendFile(path.join(dir, 'applies.jsonl'), '{"at": "2026-11-20T0');
    const reopened = await ApplyHistory.open(dir);
    const all = reopened.recent(1000);
    expect(all).toHaveLength(200);
    expect(all[0]?.commit).toBe('c204');
    expect(all.at(-1)?.commit).toBe('c5');
    const file = await readFile(path.join(dir, 'applies.jsonl'), 'utf8');
    expect(file.trim().split('\n')).toHaveLength(200);
  });
});
