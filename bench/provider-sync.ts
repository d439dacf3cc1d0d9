/**
 * Model sync: 5 providers × 200 models (two OpenAI-compatible, one each of Ollama — 200 /api/show
 * calls —, Anthropic and Gemini, each a fake upstream on loopback), synced into an empty pool,
 * then again into a full one. Prints seconds, the process's memory growth and the pool file size.
 *   npx tsx bench/provider-sync.ts [models per provider]
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Provider } from '../src/policy/schema.js';
import { PoolStore } from '../src/providers/pool.js';
import { loadPriceMap } from '../src/providers/price-map.js';
import { ModelSync } from '../src/providers/sync.js';
import { envCredentials } from '../src/providers/target.js';
import { startAnthropicFake } from '../test/fakes/anthropic.js';
import { startGeminiFake } from '../test/fakes/gemini.js';
import { startOllamaFake } from '../test/fakes/ollama.js';
import { startOpenAIFake } from '../test/fakes/openai.js';

const perProvider = Number(process.argv[2] ?? 200);
const models = (prefix: string) =>
  Object.fromEntries(Array.from({ length: perProvider }, (_, i) => [`${prefix}-${i}`, 8192 + i]));
const key = 'bench-key';
const fakes = await Promise.all([
  startOpenAIFake({ name: 'a', apiKey: key, contextWindows: models('gpt') }),
  startOpenAIFake({ name: 'b', apiKey: key, contextWindows: models('llama') }),
  startOllamaFake({ name: 'c', contextWindows: models('qwen') }),
  startAnthropicFake({ name: 'd', apiKey: key, contextWindows: models('claude') }),
  startGeminiFake({ name: 'e', apiKey: key, contextWindows: models('gemini') }),
]);
const providers = new Map<string, Provider>([
  ['openai', { kind: 'openai', base_url: `${fakes[0].url}/v1`, credential: 'env:BENCH_KEY' }],
  ['groq', { kind: 'groq', base_url: `${fakes[1].url}/v1`, credential: 'env:BENCH_KEY' }],
  ['ollama', { kind: 'ollama', base_url: fakes[2].url }],
  ['anthropic', { kind: 'anthropic', base_url: fakes[3].url, credential: 'env:BENCH_KEY' }],
  ['gemini', { kind: 'gemini', base_url: fakes[4].url, credential: 'env:BENCH_KEY' }],
]);
const dir = await mkdtemp(path.join(tmpdir(), 'mc-bench-sync-'));
const store = new PoolStore(dir);
const sync = new ModelSync({
  store,
  credentials: envCredentials({ BENCH_KEY: key }),
  prices: () => loadPriceMap(),
});

const priceStart = performance.now();
const prices = await loadPriceMap();
console.log(
  `LiteLLM price map: ${prices.size} entries, first read ${(performance.now() - priceStart).toFixed(0)} ms (then cached)`,
);
for (const run of ['empty pool', 'full pool']) {
  global.gc?.();
  const rssBefore = process.memoryUsage().rss;
  const heapBefore = process.memoryUsage().heapUsed;
  const started = performance.now();
  const reports = await sync.sync(providers);
  const seconds = (performance.now() - started) / 1000;
  const kept = reports.reduce((n, r) => n + r.kept, 0);
  const failed = reports.filter((r) => !r.ok);
  if (failed.length > 0) throw new Error(`sync failed: ${JSON.stringify(failed)}`);
  const after = process.memoryUsage();
  console.log(
    `sync ${providers.size} providers × ${perProvider} models into the ${run}: ${seconds.toFixed(2)} s, ${kept} models; heap +${((after.heapUsed - heapBefore) / 1e6).toFixed(1)} MB, rss +${((after.rss - rssBefore) / 1e6).toFixed(1)} MB (rss ${(after.rss / 1e6).toFixed(0)} MB); pool file ${((await stat(store.file)).size / 1e3).toFixed(0)} KB`,
  );
}
await Promise.all(fakes.map((f) => f.close()));
await rm(dir, { recursive: true, force: true });
