/**
 * Provider-key rotation in database mode, probe → verified live: two real database-mode LiteLLM
 * instances on one database (PostgreSQL, Prisma engines from ../shared/litellm-db), the admin-api
 * strategy writing the deployment with `litellm_credential_name`. Each of ROUNDS rotations: probe
 * the new value against the provider, `PATCH /credentials/{name}` through the reload, wait until
 * both instances hold it (they poll their database every 2 s here; LiteLLM's default is 30 s),
 * one canary through each instance. Steady traffic through both instances the whole time.
 * Prints each rotation's time, the median, and requests sent/failed (goal: 0 failed).
 * Run: npx tsx bench/credentials-db.ts [ROUNDS]
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { probeCredential } from '../src/keys/probe.js';
import type { Provider } from '../src/policy/schema.js';
import { AdminApiStrategy } from '../src/reload/admin-api.js';
import { startOpenAIFake } from '../test/fakes/openai.js';
import { prepareLiteLLMDb, startDbStack } from '../test/helpers/litellm-db.js';
import { testKey } from '../test/helpers/secrets.js';

const ROUNDS = Number(process.argv[2] ?? 5);
const dir = await mkdtemp(path.join(tmpdir(), 'mc-bench-cred-db-'));
const masterKey = testKey('sk-master-');
const values = Array.from({ length: ROUNDS + 1 }, () => testKey());
const upstream = await startOpenAIFake({ name: 'openai', apiKeys: values.slice(0, 2) });
const { context, cluster } = await prepareLiteLLMDb();
const stack = await startDbStack({ context, masterKey, count: 2 });
let sent = 0;
const failures: string[] = [];
let sending = true;
const senders: Promise<void>[] = [];
try {
  const configFile = path.join(dir, 'config.yaml');
  await writeFile(
    configFile,
    `model_list:
  - model_name: gpt-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: ${upstream.url}/v1
      api_key: os.environ/OPENAI_API_KEY
    model_info:
      id: gpt-mini
`,
  );
  let current = values[0]!;
  const strategy = new AdminApiStrategy({
    instances: stack.urls,
    masterKey,
    credentials: () => ({ OPENAI_API_KEY: current }),
    pollIntervalMs: 100,
  });
  await strategy.reload(configFile);
  const chat = (url: string) =>
    new OpenAI({ baseURL: `${url}/v1`, apiKey: masterKey, maxRetries: 0 }).chat.completions.create({
      model: 'gpt-mini',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 1,
    });
  for (const url of stack.urls)
    senders.push(
      (async () => {
        while (sending) {
          sent += 1;
          await chat(url).catch((error: Error) => failures.push(error.message));
        }
      })(),
    );
  const provider = { kind: 'openai', base_url: `${upstream.url}/v1` } as unknown as Provider;
  const times: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const next = values[round]!;
    // The provider issued the next key; the one in use stays valid until the swap is verified.
    upstream.acceptKeys([current, next]);
    const started = performance.now();
    await probeCredential({ name: 'openai', provider }, next);
    current = next;
    await strategy.reload(configFile); // PATCH, then both instances hold the new value
    for (const url of stack.urls) await chat(url); // the canary through each instance
    times.push(performance.now() - started);
    upstream.acceptKeys([next]); // the old key is revoked: a request still using it would fail
    process.stdout.write(`rotation ${round}: ${(times.at(-1)! / 1000).toFixed(2)} s\n`);
  }
  sending = false;
  await Promise.all(senders);
  const sorted = [...times].sort((a, b) => a - b);
  process.stdout.write(
    `provider-key rotation, database mode (/credentials, 2 instances, database poll 2 s): median ${(sorted[Math.floor(sorted.length / 2)]! / 1000).toFixed(2)} s of ${ROUNDS} (min ${(sorted[0]! / 1000).toFixed(2)}, max ${(sorted.at(-1)! / 1000).toFixed(2)}); requests during the run: ${sent} sent, ${failures.length} failed${failures.length ? ` (${failures.slice(0, 3).join('; ')})` : ''}\n`,
  );
} finally {
  sending = false;
  await Promise.all(senders);
  await stack.stop();
  await cluster.stop();
  await upstream.close();
  await rm(dir, { recursive: true, force: true });
}
