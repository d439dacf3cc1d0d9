import { randomBytes } from 'node:crypto';
import { chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { buildFromDir } from '../compile/build.js';
import { MASTER_KEY_ENV } from '../compile/compile.js';
import { referencedEnv } from '../compile/env-refs.js';
import { ensureLiteLLMInstalled } from '../litellm/install.js';
import { startLiteLLM } from '../litellm/process.js';
import { formatProblem } from '../policy/problems.js';
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
}

/**
 * The main job on one machine: validate the policies, render litellm/config.yaml, and serve it
 * with the pinned LiteLLM until told to stop. Nothing reaches LiteLLM unless the policies are valid.
 */
export async function upCommand(options: UpOptions, io: CliIo): Promise<ExitCode> {
  const build = await buildFromDir(options.policies);
  for (const warning of build.findings.warnings) io.stderr(`warning: ${formatProblem(warning)}\n`);
  for (const error of build.findings.errors) io.stderr(`error: ${formatProblem(error)}\n`);
  if (!build.yaml || !build.config) {
    io.stderr(`${build.findings.errors.length} error(s): LiteLLM was not started\n`);
    return EXIT.invalidInput;
  }
  await writeFileAtomically(options.configFile, build.yaml);
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
  const litellm = await startLiteLLM({
    configPath: options.configFile,
    masterKey,
    port: options.port,
    env,
  });
  const ids = (await litellm.client.deployments()).map((d) => d.id).sort();
  const intended = build.config.model_list.map((d) => d.model_info.id).sort();
  const dropped = intended.filter((id) => !ids.includes(id));
  if (dropped.length > 0) {
    io.stderr(
      `LiteLLM skipped ${dropped.length} deployment(s): ${dropped.join(', ')} — see its log\n`,
    );
    await litellm.stop();
    return EXIT.operationalFailure;
  }
  io.stdout(
    `LiteLLM serves ${ids.length} deployments on ${litellm.url} (OpenAI API at ${litellm.url}/v1)\n`,
  );
  await Promise.race([options.until, litellm.exited]);
  await litellm.stop();
  return EXIT.ok;
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
