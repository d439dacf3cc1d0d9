/**
 * LiteLLM throughput through a fake upstream with the spool callback on and off, same run
 * (goal: on ≥ 97% of off). Two LiteLLM instances (one worker each) run side by side, measured in
 * short alternating windows with 8 clients; the spool of the "on" instance is checked to hold
 * one line per answered request.
 * Run: npx tsx bench/spool-overhead.ts [seconds per window=3] [paired windows=10]
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

const seconds = Number(process.argv[2] ?? 3);
const rounds = Number(process.argv[3] ?? 10);
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
const offSettings = structuredClone(build.config);
delete offSettings.litellm_settings.callbacks;
await writeFile(offConfig, render(offSettings));

interface Instance {
  label: 'on' | 'off';
  url: string;
  requests: number;
  seconds: number;
  stop(): Promise<void>;
}

async function start(label: Instance['label'], configPath: string): Promise<Instance> {
  const litellm = await startLiteLLM({ configPath, masterKey: master, spoolDir });
  return { label, url: litellm.url, requests: 0, seconds: 0, stop: () => litellm.stop() };
}

async function send(instance: Instance): Promise<void> {
  const response = await fetch(`${instance.url}/v1/chat/completions`, {
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
  instance.requests += 1;
}

/** `concurrency` clients against one instance for `seconds`; returns requests per second. */
async function window(instance: Instance, seconds: number): Promise<number> {
  const before = instance.requests;
  const started = performance.now();
  const end = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) await send(instance);
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  instance.seconds += elapsed;
  return (instance.requests - before) / elapsed;
}

async function spoolLines(): Promise<number> {
  let lines = 0;
  for (const file of await readdir(spoolDir).catch(() => [] as string[]))
    lines += (await readFile(path.join(spoolDir, file), 'utf8')).split('\n').filter(Boolean).length;
  return lines;
}

// Both instances run side by side; short alternating windows expose them to the same machine
// noise (this machine is shared), and the order alternates so neither always goes first.
const on = await start('on', onConfig);
const off = await start('off', offConfig);
try {
  for (const instance of [on, off]) await window(instance, 3); // warm-up
  const measured = { on: { requests: 0, seconds: 0 }, off: { requests: 0, seconds: 0 } };
  const ratios: number[] = [];
  for (let round = 0; round < rounds; round += 1) {
    const order = round % 2 === 0 ? [off, on] : [on, off];
    const rates: Record<string, number> = {};
    for (const instance of order) {
      const before = { requests: instance.requests, seconds: instance.seconds };
      rates[instance.label] = await window(instance, seconds);
      measured[instance.label].requests += instance.requests - before.requests;
      measured[instance.label].seconds += instance.seconds - before.seconds;
    }
    ratios.push(rates.on! / rates.off!);
  }
  await on.stop();
  await new Promise((resolve) => setTimeout(resolve, 500));
  const lines = await spoolLines();
  const rate = (m: { requests: number; seconds: number }): number => m.requests / m.seconds;
  ratios.sort((a, b) => a - b);
  console.log(
    `spool callback on: ${rate(measured.on).toFixed(1)} req/s, off: ${rate(measured.off).toFixed(1)} req/s = ${((rate(measured.on) / rate(measured.off)) * 100).toFixed(1)}% ` +
      `(median of ${rounds} paired windows: ${((ratios[Math.floor(rounds / 2)] ?? 0) * 100).toFixed(1)}%; ${rounds} × ${seconds} s windows each, ${concurrency} clients, 1 LiteLLM worker each)`,
  );
  console.log(
    `spool lines written by the "on" instance: ${lines} for ${on.requests} answered requests${lines === on.requests ? ' (one each)' : ' (MISMATCH)'}`,
  );
} finally {
  await on.stop();
  await off.stop();
  await fake.close();
  await rm(dir, { recursive: true, force: true });
}
