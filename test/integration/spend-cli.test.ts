import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/run.js';
import { openDatabase } from '../../src/store/db.js';
import { payload, spoolLine } from '../helpers/spool.js';

let dir: string;
const now = Date.now() / 1000;

async function cli(args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(
    args,
    { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), cwd: dir },
    { MODELCENTER_STATE_DIR: '.state' },
  );
  return { code, stdout, stderr };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'modelcenter-spend-cli-'));
  await mkdir(path.join(dir, 'policies'));
  await writeFile(
    path.join(dir, 'policies', 'goals.yaml'),
    `goals:\n  q-report:\n    title: Quarterly report\n    owner: alice\n    budget: { usd: 1, period: 7d }\n`,
  );
  await mkdir(path.join(dir, '.state', 'spool'), { recursive: true });
  const lines = [
    payload('a', { startTime: now - 60, endTime: now - 59.5, response_cost: 0.25 }),
    payload('b', { startTime: now - 50, endTime: now - 49.5, response_cost: 0.5 }),
    payload('c', {
      startTime: now - 40,
      endTime: now - 39.9,
      response_cost: 0,
      status: 'failure',
      request_tags: ['goal:adhoc', 'caller:bob'],
      error_information: { error_class: 'RateLimitError', error_code: '429' },
    }),
  ];
  await writeFile(
    path.join(dir, '.state', 'spool', 'spool-1-1-000000.jsonl'),
    lines.map(spoolLine).join(''),
  );
});

afterAll(() => rm(dir, { recursive: true, force: true }));

describe('modelcenter spend', () => {
  it('ingest reads the spool into the embedded ledger once', async () => {
    const first = await cli(['spend', 'ingest']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^ingested 3 new request record\(s\)/);
    expect((await cli(['spend', 'ingest'])).stdout).toMatch(/^ingested 0 new/);
  });

  it('report: what each goal cost, with titles, unregistered goals marked, as a table', async () => {
    const { code, stdout } = await cli(['spend', 'report', '--group-by', 'goal', '--since', '1d']);
    expect(code).toBe(0);
    const lines = stdout.split('\n');
    expect(lines[1]).toMatch(
      /^goal\s+goal_title\s+goal_owner\s+goal_budget_usd\s+requests\s+errors/,
    );
    expect(lines[3]).toMatch(/^q-report\s+Quarterly report\s+alice\s+1\s+2\s+0\s+0\.0%\s+0\.75\b/);
    expect(lines[4]).toMatch(/^adhoc \(unregistered\)\s+1\s+1\s+100\.0%/);
    expect(stdout).toMatch(/\ntotal\s+3\s+1\s+33\.3%\s+0\.75\b/);
  });

  it('report as csv and json, filtered by caller', async () => {
    const csv = await cli(['spend', 'report', '--group-by', 'caller,provider', '--format', 'csv']);
    expect(csv.stdout.split('\n')[0]).toBe(
      'caller,provider,requests,errors,error_rate,cost_usd,tokens_in,tokens_out,latency_p50_ms,latency_p95_ms,ttft_p50_ms,ttft_p95_ms,cache_hit_rate',
    );
    // CSV keeps full precision: rates as fractions, costs unrounded.
    expect(csv.stdout).toContain('\nalice,openai,2,0,0,0.75,6,32,');
    const json = await cli(['spend', 'report', '--caller', 'bob', '--format', 'json']);
    const report = JSON.parse(json.stdout) as { total: { requests: number; errors: number } };
    expect(report.total).toMatchObject({ requests: 1, errors: 1 });
  });

  it('budgets: spend against each budget this period', async () => {
    const { code, stdout } = await cli(['spend', 'budgets', '--format', 'csv']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/\ngoal:q-report,7d,[^,]+,0\.75,1,0\.75\n/);
  });

  it('show: every attempt of one call without content (the policies do not keep it); an unknown id is exit 1', async () => {
    const shown = await cli(['spend', 'show', 'c']);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/^call c: 1 attempt\(s\), \$0\.00\n/);
    expect(shown.stdout).toContain('failure RateLimitError (429)');
    expect(shown.stdout).toContain('goal adhoc  caller bob');
    expect(shown.stdout).toContain('content: not kept');
    const json = JSON.parse((await cli(['spend', 'show', 'a', '--format', 'json'])).stdout) as {
      callId: string;
      costUsd: number;
      attempts: { status: string; latencyMs: number; content?: unknown }[];
    };
    expect(json).toMatchObject({ callId: 'a', costUsd: 0.25 });
    expect(json.attempts).toEqual([expect.objectContaining({ status: 'success', latencyMs: 500 })]);
    expect(json.attempts[0]).not.toHaveProperty('content');
    const unknown = await cli(['spend', 'show', 'no-such-call']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no request with call id "no-such-call" in the spend ledger/);
    expect((await cli(['spend', 'show'])).code).toBe(1);
  });

  it('refuses an unknown dimension (exit 1) and a ledger another process holds (exit 2)', async () => {
    const bad = await cli(['spend', 'report', '--group-by', 'colour']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/groupBy/);
    const held = await openDatabase({ dataDir: path.join(dir, '.state', 'ledger') });
    try {
      const child = await import('node:child_process');
      const other = child.spawnSync(
        path.resolve('node_modules/.bin/tsx'),
        [path.resolve('src/cli/index.ts'), 'spend', 'report'],
        { cwd: dir, env: { ...process.env, MODELCENTER_STATE_DIR: '.state' }, encoding: 'utf8' },
      );
      expect(other.status).toBe(2);
      expect(other.stderr).toMatch(/open in another Model Center process \(pid \d+\)/);
    } finally {
      await held.close();
    }
  });
});
