/**
 * Virtual-key rotation for N callers (default 100) on a real database-mode LiteLLM (PostgreSQL,
 * Prisma engines from ../shared/litellm-db): every caller sends requests with its key the whole
 * time, switches to its new key at a random moment within the first half of the grace period
 * (clients that switch late), and the old keys are deleted when the grace ends.
 * Prints: time to make and deliver N keys, time to rotate N keys (new key delivered to all), total
 * time to the last old key deleted, requests sent and failed (goal: 0 failed).
 * Run: npx tsx bench/virtual-keys.ts [CALLERS] [GRACE_SECONDS]
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildFromTexts } from '../src/compile/build.js';
import { LiteLLMKeyClient } from '../src/keys/key-client.js';
import { VirtualKeys } from '../src/keys/virtual-keys.js';
import { startOpenAIFake } from '../test/fakes/openai.js';
import { prepareLiteLLMDb, startDbStack } from '../test/helpers/litellm-db.js';
import { testKey } from '../test/helpers/secrets.js';

const CALLERS = Number(process.argv[2] ?? 100);
const GRACE_SECONDS = Number(process.argv[3] ?? 20);
const CONCURRENCY = 4;
/** Each caller sends one request, then waits this long (100 callers: up to 50 requests/s). */
const PAUSE_MS = 2000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const dir = await mkdtemp(path.join(tmpdir(), 'mc-bench-vkeys-'));
const openaiKey = testKey();
const masterKey = testKey('sk-master-');
const upstream = await startOpenAIFake({ name: 'openai', apiKey: openaiKey });
const { context, cluster } = await prepareLiteLLMDb();
const stack = await startDbStack({
  context,
  masterKey,
  env: { OPENAI_API_KEY: openaiKey },
  extraModels: `  - model_name: fast
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: ${upstream.url}/v1
      api_key: os.environ/OPENAI_API_KEY
    model_info:
      id: fast-1`,
});
const cleanup = async () => {
  await stack.stop();
  await cluster.stop();
  await upstream.close();
  await rm(dir, { recursive: true, force: true });
};
try {
  const url = stack.urls[0]!;
  const callers = Array.from({ length: CALLERS }, (_, i) => `caller-${String(i).padStart(3, '0')}`);
  const policies = `
providers:
  openai: { kind: openai, credential: env:OPENAI_API_KEY }
models:
  gpt-mini: { provider: openai, upstream: gpt-4o-mini, capabilities: [chat] }
profiles:
  fast: { requires: [chat] }
callers:
${callers.map((c) => `  ${c}: { profiles: [fast], key: { grace: ${GRACE_SECONDS}s, deliver: { file: ${dir}/${c}.key } } }`).join('\n')}
`;
  const set = buildFromTexts([{ name: 'bench.yaml', text: policies }]).set;
  const keys = new VirtualKeys({
    client: new LiteLLMKeyClient(url, masterKey, 120_000),
    journalDir: path.join(dir, 'journal'),
  });
  const keyOf = async (caller: string) =>
    (await readFile(path.join(dir, `${caller}.key`), 'utf8')).trim();

  let created = performance.now();
  await keys.sync(set);
  created = performance.now() - created;

  // Every caller sends with its key the whole time; `switchAt` is when it picks up the new file.
  let sent = 0;
  let retries = 0;
  /** What LiteLLM answered to the first failed requests. */
  const samples: string[] = [];
  let failed = 0;
  const failures = new Map<number, number>();
  let stopping = false;
  const current = new Map<string, string>();
  for (const c of callers) current.set(c, await keyOf(c));
  const traffic = callers.map(async (caller) => {
    while (!stopping) {
      const response = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${current.get(caller)}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify({ model: 'fast', messages: [{ role: 'user', content: 'hi' }] }),
      }).catch(() => undefined);
      sent++;
      if (response?.status !== 200) {
        failed++;
        failures.set(response?.status ?? 0, (failures.get(response?.status ?? 0) ?? 0) + 1);
        const said = response ? await response.text().catch(() => '') : 'no answer';
        if (samples.length < 3) samples.push(said.slice(0, 300));
      } else await response.arrayBuffer().catch(() => undefined);
      await sleep(PAUSE_MS);
    }
  });
  await sleep(3000);

  const started = performance.now();
  const queue = [...callers];
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let caller = queue.shift(); caller; caller = queue.shift()) {
        // A failed step is retried, as the scheduler would (the rotation resumes where it stopped).
        for (let attempt = 1; ; attempt++) {
          try {
            await keys.rotate(set, caller, 'bench');
            break;
          } catch (error) {
            retries++;
            if (attempt === 5) throw error;
          }
        }
        // The caller switches late: at a random moment in the first half of the grace period.
        const picked = caller;
        setTimeout(
          () => void keyOf(picked).then((k) => current.set(picked, k)),
          Math.random() * GRACE_SECONDS * 500,
        );
      }
    }),
  );
  const rotated = performance.now() - started;
  for (;;) {
    await keys.tick(set);
    const open = (await keys.rotations()).filter((r) => r.kind === 'rotate' && r.phase !== 'done');
    if (open.length === 0) break;
    await sleep(500);
  }
  const total = performance.now() - started;
  await sleep(2000); // traffic after the old keys are gone: the new keys still work
  stopping = true;
  await Promise.all(traffic);

  process.stdout.write(
    `virtual keys, ${CALLERS} callers, grace ${GRACE_SECONDS}s, real database-mode LiteLLM 1.106.12:\n` +
      `  create + deliver ${CALLERS} keys: ${(created / 1000).toFixed(1)} s\n` +
      `  rotate ${CALLERS} keys (new key made and delivered to all, ${CONCURRENCY} at a time): ${(rotated / 1000).toFixed(1)} s\n` +
      `  total to the last old key deleted: ${(total / 1000).toFixed(1)} s (grace ${GRACE_SECONDS} s included)\n` +
      `  rotation steps retried after a LiteLLM timeout: ${retries}\n` +
      `  requests during the run: ${sent} sent, ${failed} failed${failed > 0 ? ` (${[...failures].map(([s, n]) => `${n}× ${s}`).join(', ')})` : ''}\n` +
      samples.map((said) => `    ${said}\n`).join(''),
  );
} finally {
  await cleanup();
}
