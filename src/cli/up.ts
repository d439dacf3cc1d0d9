import { randomBytes } from 'node:crypto';
import { chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { Controller, type ApplyReport } from '../apply/controller.js';
import { buildFromDir } from '../compile/build.js';
import { MASTER_KEY_ENV } from '../compile/compile.js';
import { referencedEnv } from '../compile/env-refs.js';
import { GitState } from '../gitstate/git-state.js';
import { ensureLiteLLMInstalled } from '../litellm/install.js';
import { formatProblem } from '../policy/problems.js';
import { RestartStrategy } from '../reload/restart.js';
import { readIfExists, writeFileAtomically } from '../shared/fs.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import type { CliIo } from './run.js';

export interface UpOptions {
  policies: string;
  configFile: string;
  port: number;
  stateDir: string;
  env: NodeJS.ProcessEnv;
  /** Resolves when the process should stop (SIGINT/SIGTERM in the real CLI). */
  until: Promise<void>;
  /** How often to look for new policy commits or edits, in ms. */
  pollMs?: number;
}

/**
 * The main job on one machine: validate the policies, commit the rendered config to git, serve it
 * with the pinned LiteLLM (restart strategy), verify, and apply every later policy change the same
 * way until told to stop. Nothing reaches LiteLLM unless the policies are valid.
 */
export async function upCommand(options: UpOptions, io: CliIo): Promise<ExitCode> {
  const build = await buildFromDir(options.policies);
  for (const warning of build.findings.warnings) io.stderr(`warning: ${formatProblem(warning)}\n`);
  for (const error of build.findings.errors) io.stderr(`error: ${formatProblem(error)}\n`);
  if (!build.yaml || !build.config) {
    io.stderr(`${build.findings.errors.length} error(s): LiteLLM was not started\n`);
    return EXIT.invalidInput;
  }
  await ensureLiteLLMInstalled();
  const masterKey = options.env[MASTER_KEY_ENV] ?? (await sessionMasterKey(options.stateDir, io));
  const env: Record<string, string> = {};
  const missing: string[] = [];
  for (const name of referencedEnv(build.config)) {
    if (name === MASTER_KEY_ENV) continue;
    const value = options.env[name];
    if (value) env[name] = value;
    else missing.push(name);
  }
  if (missing.length > 0) {
    io.stderr(
      `note: not set, requests to the providers that need them will fail: ${missing.join(', ')}\n`,
    );
  }
  const strategy = new RestartStrategy({ port: options.port, masterKey, env });
  const state = await GitState.open(options.policies, options.configFile);
  const controller = new Controller({
    policiesDir: options.policies,
    state,
    strategy,
    stateDir: options.stateDir,
  });
  try {
    const first = await controller.start();
    if (first.recovered) io.stderr('recovered an apply that was interrupted\n');
    report(first, io);
    const running = strategy.process();
    if (
      !running ||
      (first.outcome !== 'applied' &&
        first.outcome !== 'unchanged' &&
        first.outcome !== 'rolled-back')
    ) {
      return first.outcome === 'invalid' || first.outcome === 'drift'
        ? EXIT.invalidInput
        : EXIT.operationalFailure;
    }
    io.stdout(
      `LiteLLM serves ${(await running.client.deployments()).length} deployments on ${running.url} (OpenAI API at ${running.url}/v1)\n`,
    );
    await watchPolicies(controller, options, io);
    return EXIT.ok;
  } finally {
    await strategy.stop();
  }
}

/** Applies again whenever the policies' last commit or their uncommitted state changes. */
async function watchPolicies(controller: Controller, options: UpOptions, io: CliIo): Promise<void> {
  let stopped = false;
  void options.until.then(() => {
    stopped = true;
  });
  let seen = JSON.stringify(await controller.state.provenance(options.policies));
  while (!stopped) {
    await Promise.race([
      options.until,
      new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 2000)),
    ]);
    if (stopped) break;
    const now = JSON.stringify(await controller.state.provenance(options.policies));
    if (now === seen) continue;
    seen = now;
    report(await controller.apply(), io);
  }
}

function report(result: ApplyReport, io: CliIo): void {
  const commit = result.commit ? ` ${result.commit.slice(0, 12)}` : '';
  io.stdout(`apply: ${result.outcome}${commit}\n`);
  for (const problem of result.problems) io.stderr(`  ${problem}\n`);
  if (result.litellmOutput && result.outcome !== 'applied')
    io.stderr(`LiteLLM said:\n${result.litellmOutput}\n`);
}

/** A master key for this machine, kept in the state directory (mode 0600), never printed. */
async function sessionMasterKey(stateDir: string, io: CliIo): Promise<string> {
  const file = path.join(stateDir, 'master-key');
  const existing = (await readIfExists(file))?.trim();
  if (existing) return existing;
  await mkdir(stateDir, { recursive: true });
  const key = `sk-${randomBytes(32).toString('hex')}`;
  await writeFileAtomically(file, `${key}\n`);
  await chmod(file, 0o600);
  io.stderr(`${MASTER_KEY_ENV} is not set: generated one in ${file} (mode 0600)\n`);
  return key;
}
