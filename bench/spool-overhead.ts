/**
 * LiteLLM throughput through a fake upstream with the spool callback on and off, same run
 * (goal: on ≥ 97% of off). One LiteLLM worker, 8 concurrent clients, alternating off/on rounds
 * so machine noise hits both alike; the spool written during the "on" rounds is checked to hold
 * one line per request.
 * Run: npx tsx bench/spool-overhead.ts [seconds per round=15] [rounds=2]
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildFromTexts } from '../src/compile/build.js';
import { render } from '../src/compile/render.js';
import { ensureLiteLLMInstalled } from '../src/litellm/install.js';
import { startLiteLLM } from '../src/litellm/process.js';
import { startOpenAIFake } from '../test/fakes/openai.js';
import { testKey } from '../test/helpers/secrets.js';

const seconds = Number(process.argv[2] ?? 15);
const rounds = Number(process.argv[3] ?? 2);
const concurrency = 8;

await ensureLiteLLMInstalled();
const master = testKey('sk-master-');
const fake = await startOpenAIFake({ name: 'openai-fake' });
const dir = await mkdtemp(path.join(tmpdir(), 'mc-bench-spool-'));
const spoolDir = path.join(dir, 'spool');

const build = buildFromTexts([
  {
    name: 'bench.yaml',
    text: `
providers:
  openai: { kind: openai_compatible, base_url: ${fake.url}/v1 }
models:
  gpt-mini:
    provider: openai
    upstream: gpt-4o-mini
    capabilities: [chat]
    pricing: { input_per_mtok: 0.15, output_per_mtok: 0.6 }
`,
  },
]);
if (!build.config) throw new Error('bench policies do not compile');
const onConfig = path.join(dir, 'on.yaml');
const offConfig = path.join(dir, 'off.yaml');
await writeFile(onConfig, render(build.config));
const off = structuredClone(build.config);
delete off.litellm_settings.callbacks;
await writeFile(offConfig, render(off));

async function measure(configPath: string): Promise<{ rps: number; requests: number }> {
  const litellm = await startLiteLLM({ configPath, masterKey: master, spoolDir });
  try {
    const send = async (): Promise<void> => {
      const response = await fetch(`${litellm.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${master}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'gpt-mini',
          messages: [{ role: 'user', content: 'hello' }],
          tags: ['goal:bench', 'caller:bench'],
        }),
      });
      await response.arrayBuffer();
      if (!response.ok) throw new Error(`LiteLLM answered ${response.status}`);
    };
    const warmUntil = Date.now() + 3000;
    while (Date.now() < warmUntil) await send();
    let requests = 0;
    const start = performance.now();
    const end = Date.now() + seconds * 1000;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (Date.now() < end) {
          await send();
          requests += 1;
        }
      }),
    );
    return { rps: requests / ((performance.now() - start) / 1000), requests };
  } finally {
    await litellm.stop();
  }
}

async function spoolLines(): Promise<number> {
  let lines = 0;
  for (const file of await readdir(spoolDir).catch(() => [] as string[]))
    lines += (await readFile(path.join(spoolDir, file), 'utf8')).split('\n').filter(Boolean).length;
  return lines;
}

try {
  const offRates: number[] = [];
  const onRates: number[] = [];
  for (let round = 1; round <= rounds; round += 1) {
    const a = await measure(offConfig);
    offRates.push(a.rps);
    const linesBefore = await spoolLines();
    const b = await measure(onConfig);
    onRates.push(b.rps);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const written = (await spoolLines()) - linesBefore;
    console.log(
      `round ${round}: off ${a.rps.toFixed(1)} req/s, on ${b.rps.toFixed(1)} req/s (${((b.rps / a.rps) * 100).toFixed(1)}%); spool lines written in the on round: ${written} (≥ ${b.requests} measured requests + warm-up)`,
    );
  }
  const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;
  console.log(
    `spool callback on: ${mean(onRates).toFixed(1)} req/s vs off: ${mean(offRates).toFixed(1)} req/s = ${((mean(onRates) / mean(offRates)) * 100).toFixed(1)}% (${rounds} rounds of ${seconds} s, ${concurrency} clients, 1 LiteLLM worker)`,
  );
} finally {
  await fake.close();
  await rm(dir, { recursive: true, force: true });
}
