/**
 * Compile + render time and memory for large policy sets.
 * Run: npx tsx bench/compile.ts   (goal: 1,000 deployments < 100 ms, 10,000 < 1 s, memory < 300 MB)
 */
import { buildFromTexts } from '../src/compile/build.js';
import { compile } from '../src/compile/compile.js';
import { render } from '../src/compile/render.js';
import { syntheticPolicies } from '../test/helpers/synthetic.js';

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
