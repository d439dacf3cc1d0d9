import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import path from 'node:path';
import { createLogger } from '../log/logger.js';
import { SecretValues } from '../log/redact.js';
import { ServiceStartError, startService } from '../main.js';
import { loadSettings, SettingsError } from '../settings/settings.js';
import { readIfExists } from '../shared/fs.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import type { CliIo } from './io.js';

export interface ServeOptions {
  env: NodeJS.ProcessEnv;
  /** Resolves when the service should stop (SIGINT/SIGTERM in the real CLI). */
  until: Promise<void>;
  /** Where logs go (JSON lines); stdout in the real CLI. */
  logTo?: NodeJS.WritableStream;
}

/** `modelcenter serve`: the long-running controller, until `until` resolves. */
export async function serveCommand(options: ServeOptions, io: CliIo): Promise<ExitCode> {
  let settings;
  try {
    settings = await loadSettings(options.env, io.cwd);
  } catch (error) {
    if (error instanceof SettingsError) {
      io.stderr(`modelcenter: ${error.message}\n`);
      return EXIT.invalidInput;
    }
    throw error;
  }
  const secrets = new SecretValues();
  const log = createLogger({
    level: settings.logLevel,
    secrets,
    ...(options.logTo && { destination: options.logTo, pretty: false }),
  });
  let service;
  try {
    service = await startService(settings, options.env, log, secrets);
  } catch (error) {
    if (error instanceof ServiceStartError) {
      io.stderr(`modelcenter: ${error.message}\n`);
      return error.kind === 'invalid' ? EXIT.invalidInput : EXIT.operationalFailure;
    }
    throw error;
  }
  io.stderr(
    `modelcenter: LiteLLM at ${service.litellmUrl ?? '(external)'}, API at ${service.apiUrl} (token: ${
      settings.adminTokens.length > 0
        ? 'MODELCENTER_ADMIN_TOKENS'
        : path.join(settings.stateDir, 'api-token')
    })\n`,
  );
  await options.until;
  await service.stop();
  return EXIT.ok;
}

/** What the running service answered, or the exit code when it could not be asked. */
export type ServiceAnswer =
  | { status: number; ok: boolean; statusText: string; answer: Record<string, unknown> }
  | { failed: ExitCode };

/**
 * POSTs to the running service's API (MODELCENTER_URL, else 127.0.0.1:MODELCENTER_API_PORT) with
 * MODELCENTER_TOKEN or the generated admin token; says on stderr why it could not.
 */
export async function askService(
  route: string,
  body: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  io: CliIo,
): Promise<ServiceAnswer> {
  const base = env.MODELCENTER_URL ?? `http://127.0.0.1:${env.MODELCENTER_API_PORT ?? 4100}`;
  const stateDir = path.resolve(io.cwd, env.MODELCENTER_STATE_DIR ?? '.modelcenter');
  const token =
    env.MODELCENTER_TOKEN ?? (await readIfExists(path.join(stateDir, 'api-token')))?.trim();
  if (!token) {
    io.stderr(
      `modelcenter: no API token — set MODELCENTER_TOKEN (an admin token of the running service)\n`,
    );
    return { failed: EXIT.invalidInput };
  }
  try {
    return await postJson(`${base}${route}`, token, body, 30 * 60_000);
  } catch (error) {
    io.stderr(
      `modelcenter: the service at ${base} did not answer (${(error as Error).message}) — is "modelcenter serve" running? (MODELCENTER_URL)\n`,
    );
    return { failed: EXIT.operationalFailure };
  }
}

/**
 * POST with node:http(s), not fetch: fetch gives up waiting for an answer's headers after 300 s,
 * and an apply or a backfill through the service may take longer.
 */
function postJson(
  url: string,
  token: string,
  body: Record<string, unknown>,
  timeoutMs: number,
): Promise<{ status: number; ok: boolean; statusText: string; answer: Record<string, unknown> }> {
  const text = JSON.stringify(body);
  const send = url.startsWith('https:') ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const request = send(
      url,
      {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(text),
        },
        signal: AbortSignal.timeout(timeoutMs),
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          const status = response.statusCode ?? 0;
          let answer: Record<string, unknown> = {};
          try {
            answer = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
          } catch {
            // not JSON: the status says what happened
          }
          resolve({
            status,
            ok: status >= 200 && status < 300,
            statusText: response.statusMessage ?? '',
            answer,
          });
        });
      },
    );
    request.on('error', reject);
    request.end(text);
  });
}

/** The exit code for an error answer of the service (its message printed), or undefined. */
export function serviceError(reply: Exclude<ServiceAnswer, { failed: ExitCode }>, io: CliIo) {
  const error = reply.answer.error as { message?: string } | undefined;
  if (!error) return undefined;
  io.stderr(`modelcenter: ${error.message ?? reply.statusText}\n`);
  return reply.status === 401 || reply.status === 403 || reply.status === 400
    ? EXIT.invalidInput
    : EXIT.operationalFailure;
}

/** `apply`, `rollback`, `plan`, `reload`: ask the running service over its API. */
export async function remoteCommand(
  command: 'apply' | 'rollback' | 'plan' | 'reload',
  body: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  io: CliIo,
  json: boolean,
): Promise<ExitCode> {
  const reply = await askService(`/v1/${command}`, body, env, io);
  if ('failed' in reply) return reply.failed;
  const { answer } = reply;
  if (json) io.stdout(`${JSON.stringify(answer, null, 2)}\n`);
  const failed = serviceError(reply, io);
  if (failed !== undefined) return failed;
  if (!json) printAnswer(command, answer, io);
  if (command === 'plan') {
    if (answer.valid === false) return EXIT.invalidInput;
    return answer.changed ? EXIT.changesPresent : EXIT.ok;
  }
  if (answer.outcome === 'invalid' || answer.outcome === 'drift') return EXIT.invalidInput;
  return reply.ok ? EXIT.ok : EXIT.operationalFailure;
}

function printAnswer(command: string, answer: Record<string, unknown>, io: CliIo): void {
  const problems = (answer.problems as string[] | undefined) ?? [];
  if (command === 'plan') {
    for (const p of problems) io.stderr(`error: ${p}\n`);
    if (answer.valid === false) return;
    if (!answer.changed) io.stdout('no changes: the committed config matches the policies\n');
    else io.stdout(String(answer.diff));
    return;
  }
  const commit = typeof answer.commit === 'string' ? ` ${answer.commit.slice(0, 12)}` : '';
  io.stdout(`${command}: ${String(answer.outcome)}${commit}\n`);
  for (const p of problems) io.stderr(`  ${p}\n`);
  if (typeof answer.litellmOutput === 'string' && answer.outcome !== 'applied') {
    io.stderr(`LiteLLM said:\n${answer.litellmOutput}\n`);
  }
}
