import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLiteLLM } from '../../src/litellm/process.js';
import { deploymentCatalog } from '../../src/spend/extract.js';
import { SpoolIngester } from '../../src/spend/ingest.js';
import { openDatabase } from '../../src/store/db.js';
import { callIdCounts } from '../../src/store/ledger.js';
import { migrate } from '../../src/store/migrate.js';
import { chat } from '../helpers/spend.js';
import { scaled } from '../helpers/timing.js';
import { spendPolicies } from '../helpers/spend.js';
import { providerEnv, startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack(spendPolicies);
});
afterAll(() => stack?.stop());

interface Traffic {
  /** Call ids of the requests the client saw succeed. */
  succeeded: string[];
  /** When each of them was answered (ms). */
  answeredAt: Map<string, number>;
  failed: number;
  done: Promise<void>;
  stop(): void;
}

/** Four clients sending requests back to back until stopped. */
function traffic(): Traffic {
  const succeeded: string[] = [];
  const answeredAt = new Map<string, number>();
  let failed = 0;
  let stopped = false;
  const worker = async (n: number): Promise<void> => {
    for (let i = 0; !stopped; i += 1) {
      try {
        const sent = await chat(stack.client, 'gpt-mini', { tags: [`goal:g${n}`] }, `w${n} r${i}`);
        succeeded.push(sent.callId);
        answeredAt.set(sent.callId, Date.now());
      } catch {
        failed += 1;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  };
  const done = Promise.all([0, 1, 2, 3].map(worker)).then(() => undefined);
  return {
    succeeded,
    answeredAt,
    get failed() {
      return failed;
    },
    done,
    stop: () => {
      stopped = true;
    },
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * LiteLLM logs after it answers, and on a loaded machine later still: wait until every answered
 * request has reached the ledger, or the (scaled) limit passes and the assertion names the missing.
 */
async function settled(
  counts: () => Promise<Map<string, number>>,
  succeeded: string[],
): Promise<void> {
  const deadline = Date.now() + scaled(15_000);
  while (Date.now() < deadline) {
    const seen = await counts();
    if (succeeded.every((id) => seen.has(id))) return;
    await sleep(250);
  }
}

function startIngester(ledgerDir: string): Promise<ChildProcess> {
  // node itself (not the tsx wrapper), so SIGKILL hits the process that holds the ledger.
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.resolve('test/helpers/ingest-forever.ts'), stack.spoolDir, ledgerDir],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return new Promise((resolve, reject) => {
    child.stdout.once('data', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`ingester exited with ${code}`)));
  });
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

/** Every request the client saw succeed is in the ledger once, and nothing is there twice. */
function expectExactlyOnce(counts: Map<string, number>, succeeded: string[]): void {
  const missing = succeeded.filter((id) => !counts.has(id));
  const twice = [...counts].filter(([, n]) => n > 1);
  expect({ missing, twice }).toEqual({ missing: [], twice: [] });
}

describe('spend ledger across restarts', () => {
  it('the controller killed (SIGKILL) while traffic flows, then restarted: nothing lost, nothing duplicated', async () => {
    const ledgerDir = path.join(stack.dir, 'ledger-kill');
    const load = traffic();
    let ingester = await startIngester(ledgerDir);
    await sleep(1500);
    ingester.kill('SIGKILL');
    await exited(ingester);
    await sleep(1000); // traffic keeps flowing into the spool while nobody ingests
    ingester = await startIngester(ledgerDir);
    await sleep(1500);
    load.stop();
    await load.done;
    await sleep(2500); // LiteLLM logs after answering; the ingester polls every 20 ms
    ingester.kill('SIGTERM');
    await exited(ingester);

    expect(load.succeeded.length).toBeGreaterThan(20);
    const db = await openDatabase({ dataDir: ledgerDir });
    try {
      const counts = await callIdCounts(db);
      expectExactlyOnce(counts, load.succeeded);
      expect(counts.size).toBe(load.succeeded.length);
    } finally {
      await db.close();
    }
  });

  it('LiteLLM restarted while traffic flows: every answered request is in the ledger once', async () => {
    const db = await openDatabase({});
    await migrate(db);
    const ingester = new SpoolIngester({
      db,
      spoolDir: stack.spoolDir,
      catalog: deploymentCatalog(stack.config),
      intervalMs: 50,
    });
    ingester.start();
    try {
      await ingester.runOnce(); // the previous test's records
      await db.exec('TRUNCATE spend_requests, spend_hourly, spend_daily');
      const load = traffic();
      await sleep(1500);
      const before = load.succeeded.length;
      const stopAskedAt = Date.now();
      await stack.litellm.stop(); // SIGTERM: LiteLLM drains and exits
      stack.litellm = await startLiteLLM({
        configPath: path.join(stack.dir, 'config.yaml'),
        masterKey: stack.keys.master,
        env: providerEnv(stack.keys),
        spoolDir: stack.spoolDir,
        port: stack.litellm.port,
      });
      const restartedAt = load.succeeded.length;
      while (load.succeeded.length < restartedAt + 20) await sleep(100);
      load.stop();
      await load.done;
      await settled(() => callIdCounts(db), load.succeeded);
      await sleep(500); // a record written twice would arrive now
      await ingester.stop();
      await ingester.runOnce();

      expect(before).toBeGreaterThan(5);
      expect(load.failed).toBeGreaterThan(0); // requests sent while LiteLLM was down
      const counts = await callIdCounts(db);
      // LiteLLM 1.106.12 logs a request in a task after answering it; when SIGTERM ends its event
      // loop, a task already running is cancelled and its exit flush only runs queued ones. So a
      // request answered during the drain (at most the one in flight per client) may be missing
      // on a loaded machine: a LiteLLM limit (see docs/decisions.md). Every other is there once.
      const drained = load.succeeded.filter((id) => load.answeredAt.get(id)! >= stopAskedAt);
      const missing = load.succeeded.filter((id) => !counts.has(id));
      if (missing.length > 0)
        console.log(
          `answered but not logged by LiteLLM (ms after SIGTERM was asked): ${missing.map((id) => load.answeredAt.get(id)! - stopAskedAt).join(', ')}; failed while down: ${load.failed}`,
        );
      expect(missing.filter((id) => !drained.includes(id))).toEqual([]);
      expect(missing.length).toBeLessThanOrEqual(4);
      expectExactlyOnce(
        counts,
        load.succeeded.filter((id) => !missing.includes(id)),
      );
    } finally {
      await ingester.stop();
      await db.close();
    }
  });
});
