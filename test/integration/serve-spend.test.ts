import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { payload } from '../helpers/spool.js';
import { runCli } from '../../src/cli/run.js';
import { startDbEmulator, type DbEmulator } from '../emulator/litellm-db.js';
import { policyRepo } from '../helpers/repo.js';
import { serveEnv, serveInProcess } from '../helpers/serve.js';
import { spendLogFixture } from '../helpers/spend-logs.js';
import { spendPolicies } from '../helpers/spend.js';
import { allFakes, newKeys, startFakes, type Fakes } from '../helpers/stack.js';

const run = promisify(execFile);

describe('modelcenter serve records spend', () => {
  let repo: string;
  let fakes: Fakes;
  const keys = newKeys();

  /** A LiteLLM with a database, holding spend logs from before Model Center (the backfill). */
  let litellmDb: DbEmulator;

  beforeAll(async () => {
    fakes = await startFakes(keys);
    repo = await policyRepo(spendPolicies(fakes));
    litellmDb = await startDbEmulator({ masterKey: keys.master, instances: [{}] });
    const yesterday = Date.now() - 86_400_000;
    for (let i = 0; i < 3; i++)
      litellmDb.spendLogs.push(
        spendLogFixture(yesterday + i * 1000, { request_tags: ['goal:history'] }),
      );
  });
  afterAll(async () => {
    await litellmDb.close();
    await Promise.all(allFakes(fakes).map((f) => f.close()));
    await rm(repo, { recursive: true, force: true });
  });

  it('records every tagged request in the embedded ledger; spend report reads it once serve has stopped', async () => {
    const token = 'mc-admin-token-for-this-test-only-0123456789';
    const { env, port, apiPort } = await serveEnv(
      keys,
      { admin: token },
      { MODELCENTER_POLL_SECONDS: '0.5', MODELCENTER_BACKFILL_URL: litellmDb.urls[0]! },
    );
    const service = serveInProcess(repo, env);
    const client = new OpenAI({
      baseURL: `http://127.0.0.1:${port}/v1`,
      apiKey: keys.master,
      maxRetries: 0,
    });
    await service.started();
    for (let i = 0; i < 6; i += 1) {
      await client.chat.completions.create({
        model: 'gpt-mini',
        messages: [{ role: 'user', content: `spend ${i}` }],
        tags: [i < 4 ? 'goal:q-report' : 'goal:side-quest', 'caller:alice'],
      } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    }
    await new Promise((resolve) => setTimeout(resolve, 1500));
    // The same report through the API while serve runs.
    const api = `http://127.0.0.1:${apiPort}/v1/spend/report`;
    const headers = { authorization: `Bearer ${token}` };
    const viaApi = (await (await fetch(`${api}?groupBy=goal&since=1h`, { headers })).json()) as {
      lines: { keys: { goal: string }; requests: number }[];
    };
    expect(viaApi.lines.map((l) => [l.keys.goal, l.requests])).toEqual([
      ['q-report', 4],
      ['side-quest', 2],
    ]);
    const bad = await fetch(`${api}?groupBy=colour`, { headers });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { field: string } }).error.field).toMatch(
      /^query\.groupBy/,
    );
    // LiteLLM's generic_api logger format over HTTP: NDJSON, then the same batch as a JSON array.
    const ingest = `http://127.0.0.1:${apiPort}/v1/spend/ingest`;
    const batch = [payload('http-ingest-1'), payload('http-ingest-2')];
    const first = await fetch(ingest, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: batch.map((p) => JSON.stringify(p)).join('\n'),
    });
    expect(await first.json()).toMatchObject({ inserted: 2, duplicates: 0, rejected: 0 });
    const again = await fetch(ingest, { method: 'POST', headers, body: JSON.stringify(batch) });
    expect(await again.json()).toMatchObject({ inserted: 0, duplicates: 2 });
    expect((await fetch(ingest, { method: 'POST', body: '[]' })).status).toBe(401);

    // LiteLLM's own spend logs from yesterday: `spend backfill` while serve holds the embedded
    // ledger goes through its API.
    // (the real CLI in its own process: the embedded ledger's lock is per process)
    const backfill = await run(
      path.join(import.meta.dirname, '..', '..', 'node_modules', '.bin', 'tsx'),
      [
        path.join(import.meta.dirname, '..', '..', 'src', 'cli', 'index.ts'),
        'spend',
        'backfill',
        '--since',
        '3d',
      ],
      {
        cwd: repo,
        env: { ...process.env, MODELCENTER_API_PORT: String(apiPort), MODELCENTER_TOKEN: token },
      },
    );
    expect(backfill.stdout).toMatch(/3 new request record\(s\), 0 already in the ledger/);
    const badSince = await fetch(`http://127.0.0.1:${apiPort}/v1/spend/backfill`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({ since: 'last tuesday' }),
    });
    expect(badSince.status).toBe(400);
    expect(((await badSince.json()) as { error: { field: string } }).error.field).toBe(
      'body.since',
    );
    const backwards = await fetch(`http://127.0.0.1:${apiPort}/v1/spend/backfill`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({ since: '1d', until: '2d' }),
    });
    expect(backwards.status).toBe(400);
    expect(((await backwards.json()) as { error: { message: string } }).error.message).toMatch(
      /nothing to backfill: the range starts .* at or after its end/,
    );
    service.stop();
    expect(await service.exit).toBe(0);

    // Once serve has stopped, the CLI reads LiteLLM itself: the same range adds nothing.
    let again2 = '';
    const againCode = await runCli(
      ['spend', 'backfill', '--since', '3d', '--url', litellmDb.urls[0]!, '--format', 'json'],
      { stdout: (t) => (again2 += t), stderr: (t) => (again2 += t), cwd: repo },
      { LITELLM_MASTER_KEY: keys.master },
    );
    expect(againCode).toBe(0);
    expect(JSON.parse(again2)).toMatchObject({ inserted: 0, known: 3 });

    let stdout = '';
    const code = await runCli(
      ['spend', 'report', '--group-by', 'goal', '--format', 'json', '--since', '1h'],
      { stdout: (t) => (stdout += t), stderr: () => undefined, cwd: repo },
      {},
    );
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as {
      lines: { keys: { goal: string }; requests: number; goal: { registered: boolean } }[];
    };
    expect(report.lines.map((l) => [l.keys.goal, l.requests, l.goal.registered])).toEqual([
      ['q-report', 4, true],
      ['side-quest', 2, false],
    ]);
    stdout = '';
    await runCli(
      ['spend', 'report', '--group-by', 'goal', '--format', 'json', '--since', '3d'],
      { stdout: (t) => (stdout += t), stderr: () => undefined, cwd: repo },
      {},
    );
    const withHistory = JSON.parse(stdout) as { lines: { keys: { goal: string } }[] };
    expect(withHistory.lines.map((l) => l.keys.goal)).toContain('history');
  });
});
