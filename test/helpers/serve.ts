import { PassThrough } from 'node:stream';
import { serveCommand } from '../../src/cli/commands/serve.js';
import { freePort } from '../../src/litellm/process.js';
import { providerEnv, type Keys } from './stack.js';
import { scaled } from './timing.js';

/** Polls `probe` until it gives a value (errors count as "not yet"); the timeout scales with load. */
export async function until<T>(
  probe: () => Promise<T | undefined>,
  timeoutMs = 90_000,
): Promise<T> {
  const deadline = Date.now() + scaled(timeoutMs);
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 200));
  }
}

export interface ServingInProcess {
  /** Asks it to stop (as SIGTERM does); `exit` resolves with the exit code. */
  stop: () => void;
  exit: Promise<number>;
  /** JSON log lines so far. */
  logs: () => string;
  stderr: () => string;
  /** Resolves once start-up has finished ("model center is serving"). */
  started: () => Promise<void>;
}

/** `modelcenter serve` in-process, as a user runs it: env settings, logs captured. */
export function serveInProcess(repo: string, env: Record<string, string>): ServingInProcess {
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const logs = new PassThrough();
  let logText = '';
  logs.on('data', (chunk: Buffer) => (logText += chunk.toString('utf8')));
  let stderr = '';
  const exit = serveCommand(
    { env, until: stopped, logTo: logs },
    { stdout: () => undefined, stderr: (t) => (stderr += t), cwd: repo },
  );
  return {
    stop,
    exit,
    logs: () => logText,
    stderr: () => stderr,
    started: async () => {
      await Promise.race([
        until(() => Promise.resolve(logText.includes('model center is serving') || undefined)),
        exit.then((code) => {
          throw new Error(`serve exited with ${code} before it started:\n${stderr}\n${logText}`);
        }),
      ]);
    },
  };
}

/**
 * The environment `serve` runs with in the tests: the test's keys, free ports for LiteLLM and
 * the API, the given bearer tokens, and `extra` (poll interval, …) on top.
 */
export async function serveEnv(
  keys: Keys,
  tokens: { admin: string; read?: string },
  extra: Record<string, string> = {},
): Promise<{ env: Record<string, string>; port: number; apiPort: number }> {
  const port = await freePort();
  const apiPort = await freePort();
  const env = {
    LITELLM_MASTER_KEY: keys.master,
    ...providerEnv(keys),
    MODELCENTER_LITELLM_PORT: String(port),
    MODELCENTER_API_PORT: String(apiPort),
    MODELCENTER_ADMIN_TOKENS: tokens.admin,
    ...(tokens.read && { MODELCENTER_READ_TOKENS: tokens.read }),
    ...extra,
  };
  return { env, port, apiPort };
}
