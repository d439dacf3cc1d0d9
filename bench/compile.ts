/**
 * Compile + render time and memory for large policy sets.
 * Run: npx tsx bench/compile.ts   (goal: 1,000 deployments < 100 ms, 10,000 < 1 s, memory < 300 MB)
 */
import { buildFromTexts } from '../src/compile/build.js';
import { compile } from '../src/compile/compile.js';
import { render } from '../src/compile/render.js';

/** A policy set whose compiled config has exactly `deployments` deployments. */
function syntheticPolicies(deployments: number): string {
  const profiles = 3; // every model is in its own group and in each of 3 profiles: 4 deployments per model
  const models = deployments / (profiles + 1);
  const lines = ['providers:'];
  for (let p = 0; p < 10; p++)
    lines.push(
      `  p${p}: { kind: openai_compatible, base_url: "http://10.0.0.${p}:8000/v1", credential: env:KEY_${p} }`,
    );
  lines.push('models:');
  for (let m = 0; m < models; m++) {
    lines.push(
      `  m${m}: { provider: p${m % 10}, upstream: "org/model-${m}", capabilities: [chat, streaming, tools], context_window: ${8192 * (1 + (m % 16))}, pricing: { input_per_mtok: ${(m % 50) / 10 + 0.1}, output_per_mtok: ${(m % 30) / 5 + 0.2} }, quality: ${m % 100} }`,
    );
  }
  lines.push('profiles:');
  lines.push('  fast: { requires: [chat, streaming], prefer: [cost], fallback: [deep] }');
  lines.push('  deep: { requires: [chat, tools], prefer: [quality], fallback: [wide] }');
  lines.push('  wide: { requires: [chat], prefer: [context], params: { temperature: 0.2 } }');
  return lines.join('\n');
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

const sizes = process.argv
  .slice(2)
  .map(Number)
  .filter((n) => n > 0);
for (const size of sizes.length > 0 ? sizes : [1_000, 10_000]) {
  const text = syntheticPolicies(size);
  const full: number[] = [];
  const compileRender: number[] = [];
  let peakRss = 0;
  let count = 0;
  for (let run = 0; run < 5; run++) {
    let start = performance.now();
    const build = buildFromTexts([{ name: 'bench.yaml', text }]);
    full.push(performance.now() - start);
    if (!build.config)
      throw new Error(`invalid bench policies: ${JSON.stringify(build.findings.errors[0])}`);
    start = performance.now();
    const config = compile(build.set);
    render(config);
    compileRender.push(performance.now() - start);
    count = config.model_list.length;
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }
  console.log(
    `${count} deployments: compile+render median ${median(compileRender).toFixed(1)} ms; ` +
      `whole pipeline (YAML parse + schema + rules + compile + render) median ${median(full).toFixed(1)} ms; ` +
      `peak RSS ${(peakRss / 1024 / 1024).toFixed(0)} MB (5 runs)`,
  );
}
