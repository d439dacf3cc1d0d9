import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import path from 'node:path';
import { readIfExists } from '../shared/fs.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import type { CliIo } from './io.js';
import { cliStateDir, readServiceFile } from './service-file.js';

/** What the running service answered, or the exit code when it could not be asked. */
export type ServiceAnswer =
  | { status: number; ok: boolean; statusText: string; answer: Record<string, unknown> }
  | { failed: ExitCode };

/**
 * Where the running service is: MODELCENTER_URL, else the API URL in `.modelcenter/service.json`
 * (written by `serve`, whatever port it chose), else 127.0.0.1:MODELCENTER_API_PORT.
 */
export async function serviceBase(env: NodeJS.ProcessEnv, cwd: string): Promise<string> {
  if (env.MODELCENTER_URL) return env.MODELCENTER_URL;
  const running = await readServiceFile(cliStateDir(env, cwd));
  return running?.apiUrl ?? `http://127.0.0.1:${env.MODELCENTER_API_PORT ?? 4100}`;
}

/** Whether a `serve` is running for this directory (its service.json names a live pid). */
export async function serviceRunning(env: NodeJS.ProcessEnv, cwd: string): Promise<boolean> {
  return (await readServiceFile(cliStateDir(env, cwd))) !== undefined;
}

/**
 * Asks the running service's API (see serviceBase) with MODELCENTER_TOKEN or the generated admin
 * token: POST with a body, GET with `body` as the query; says on stderr why it could not.
 */
export async function askService(
  route: string,
  body: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  io: CliIo,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' = 'POST',
): Promise<ServiceAnswer> {
  const target = await serviceTarget(env, io);
  if ('failed' in target) return target;
  const { base, token } = target;
  try {
    if (method === 'GET') {
      const query = new URLSearchParams(
        Object.entries(body).map(([k, v]) => [k, String(v)] as [string, string]),
      ).toString();
      return await sendJson(
        'GET',
        `${base}${route}${query ? `?${query}` : ''}`,
        token,
        undefined,
        5 * 60_000,
      );
    }
    return await sendJson(method, `${base}${route}`, token, body, 30 * 60_000);
  } catch (error) {
    io.stderr(
      `modelcenter: the service at ${base} did not answer (${(error as Error).message}) — is "modelcenter serve" running? (MODELCENTER_URL)\n`,
    );
    return { failed: EXIT.operationalFailure };
  }
}

/** The running service's address (see serviceBase) and the token to call it with, or why there is none (said on stderr). */
export async function serviceTarget(
  env: NodeJS.ProcessEnv,
  io: CliIo,
): Promise<{ base: string; token: string } | { failed: ExitCode }> {
  const base = await serviceBase(env, io.cwd);
  const stateDir = cliStateDir(env, io.cwd);
  const token =
    env.MODELCENTER_TOKEN ?? (await readIfExists(path.join(stateDir, 'api-token')))?.trim();
  if (!token) {
    io.stderr(
      `modelcenter: no API token — set MODELCENTER_TOKEN (an admin token of the running service)\n`,
    );
    return { failed: EXIT.invalidInput };
  }
  return { base, token };
}

/**
 * node:http(s), not fetch: fetch gives up waiting for an answer's headers after 300 s, and an
 * apply or a backfill through the service may take longer.
 */
function sendJson(
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  url: string,
  token: string,
  body: Record<string, unknown> | undefined,
  timeoutMs: number,
): Promise<{ status: number; ok: boolean; statusText: string; answer: Record<string, unknown> }> {
  const text = body === undefined ? '' : JSON.stringify(body);
  const send = url.startsWith('https:') ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const request = send(
      url,
      {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body !== undefined && {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(text),
          }),
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
    request.end(body !== undefined ? text : undefined);
  });
}

/** The exit code for an error answer of the service (its message printed), or undefined. */
export function serviceError(reply: Exclude<ServiceAnswer, { failed: ExitCode }>, io: CliIo) {
  const error = reply.answer.error as { message?: string } | undefined;
  if (!error) return undefined;
  io.stderr(`modelcenter: ${error.message ?? reply.statusText}\n`);
  // What the caller asked for is wrong (a bad flag value, an unknown commit or call id, a bad
  // token): invalid input. Busy (409), shutting down and every 5xx: operational.
  return [400, 401, 403, 404, 413, 422].includes(reply.status)
    ? EXIT.invalidInput
    : EXIT.operationalFailure;
}
