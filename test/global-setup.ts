import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { ensureLiteLLMInstalled } from '../src/litellm/install.js';
import { startLiteLLM } from '../src/litellm/process.js';
import { projectRoot } from '../src/shared/paths.js';
import { ensureUiBuilt } from '../src/ui/bundle.js';
import { leftoverProcesses, killAll } from './helpers/processes.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** One LiteLLM cold start measured on this machine, under its current load, before any test. */
    litellmColdStartMs: number;
  }
}

/**
 * Integration tests need the pinned LiteLLM and two Debian packages (nginx for blue-green,
 * PostgreSQL for the ledger): install what is missing once, before any test file runs. Then one
 * LiteLLM cold start is measured: test timeouts scale with it (test/helpers/timing.ts), so a loaded
 * machine gets the time it needs instead of failing at a fixed 60 s.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const script = path.join(projectRoot(), '.ci', 'install-system-packages.sh');
  const result = spawnSync('bash', [script], { stdio: 'inherit' });
  if (result.status !== 0) {
    throw new Error(`${script} failed (exit ${result.status}): see its output above`);
  }
  await ensureLiteLLMInstalled();
  // The dashboard's bundle (dist/ui/, never committed), built when missing or older than ui/.
  await ensureUiBuilt();
  const coldStartMs = await measureColdStart();
  process.stdout.write(
    `LiteLLM cold start on this machine: ${(coldStartMs / 1000).toFixed(1)} s\n`,
  );
  project.provide('litellmColdStartMs', coldStartMs);

  // Whatever a failed or timed-out test left running is stopped once the run ends, and named.
  return async () => {
    const left = leftoverProcesses();
    if (left.length === 0) return;
    process.stderr.write(
      `the test run left ${left.length} process(es) running; stopping them:\n${left
        .map((p) => `  ${p.pid} ${p.command}`)
        .join('\n')}\n`,
    );
    await killAll(left);
  };
}

async function measureColdStart(): Promise<number> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mc-coldstart-'));
  try {
    const configPath = path.join(dir, 'config.yaml');
    await writeFile(
      configPath,
      'model_list: []\ngeneral_settings:\n  master_key: os.environ/LITELLM_MASTER_KEY\n',
    );
    const started = performance.now();
    const litellm = await startLiteLLM({
      configPath,
      masterKey: `sk-coldstart-${process.pid}-${Date.now()}`,
      spoolDir: path.join(dir, 'spool'),
      readinessTimeoutMs: 600_000,
    });
    const elapsed = performance.now() - started;
    await litellm.stop();
    return elapsed;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
