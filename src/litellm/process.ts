import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { constants } from 'node:os';
import path from 'node:path';
import { LiteLLMClient } from './client.js';
import { LiteLLMStartError } from './errors.js';
import { litellmBinary, litellmVenv } from './install.js';
import { projectRoot, spoolDirIn } from '../shared/paths.js';

/** Environment that keeps LiteLLM from reaching the internet at start (litellm-facts §6). */
export const OFFLINE_ENV: Readonly<Record<string, string>> = {
  LITELLM_LOCAL_MODEL_COST_MAP: 'True',
  LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS: 'True',
  LITELLM_LOCAL_BLOG_POSTS: 'True',
  LITELLM_LOCAL_POLICY_TEMPLATES: 'True',
  HF_HUB_OFFLINE: '1',
  TRANSFORMERS_OFFLINE: '1',
  NO_PROXY: '127.0.0.1,localhost',
};

/** SIGTERM → SIGKILL: LiteLLM's drain plus its 5 s exit flush of the logging queue, with room. */
export const DEFAULT_STOP_GRACE_MS = 30_000;

export interface StartOptions {
  configPath: string;
  masterKey: string;
  port?: number;
  host?: string;
  /** Provider credentials and anything else the config references as os.environ/NAME. */
  env?: Record<string, string>;
  readinessTimeoutMs?: number;
  binary?: string;
  /** Where the spool callback writes request records (default: .modelcenter/spool under the cwd). */
  spoolDir?: string;
  /** Called with the pid as soon as the process is spawned (for orphan clean-up after a crash). */
  onSpawn?: (pid: number, port: number) => void | Promise<void>;
  /**
   * The port is still held by an instance being stopped: readiness is asked only once this
   * resolves (so the old instance cannot answer for the new one). LiteLLM imports for seconds
   * before it binds, so starting it meanwhile saves the stop time.
   */
  portFreedBy?: Promise<unknown>;
  /**
   * How long stop() waits after SIGTERM before SIGKILL (default 30 s). LiteLLM drains requests
   * in flight, then runs its logging queue at exit (up to 5 s): what is killed before that is an
   * answered request missing from the ledger.
   */
  stopGraceMs?: number;
  /** Called when stop() had to SIGKILL after the grace (the caller logs it: records may be lost). */
  onKilledAfterGrace?: (graceMs: number) => void;
  /** Turns the config file into the one LiteLLM loads (demo mode); the path it returns is used. */
  prepareConfig?: (configPath: string) => Promise<string>;
}

export interface RunningLiteLLM {
  url: string;
  port: number;
  pid: number;
  client: LiteLLMClient;
  /** What LiteLLM printed so far, with secret values masked. */
  output(): string;
  /** Resolves with the exit code once the process has ended. */
  exited: Promise<number | null>;
  /** Graceful: SIGTERM, SIGKILL after the grace. An exit after this was asked for is not a crash. */
  stop(): Promise<void>;
  /** stop() was called: an exit now is expected. */
  readonly stopping: boolean;
  /** SIGKILL, for a process that stopped answering (an exit then is expected too). */
  kill(): Promise<void>;
  /** Its cold start: spawn to readiness, in ms. */
  readyAfterMs: number;
}

/**
 * `program args` run through litellm/modelcenter_launch.py, which makes the kernel stop the
 * process when this controller dies, even by kill -9 (PR_SET_PDEATHSIG, kept across exec), so no
 * orphan holds a port. Add `watchdogEnv()` to its environment.
 */
export function underWatchdog(
  program: string,
  args: readonly string[],
): { command: string; args: string[] } {
  const venvPython = path.join(litellmVenv(), 'bin', 'python');
  return {
    command: existsSync(venvPython) ? venvPython : 'python3',
    args: [path.join(projectRoot(), 'litellm', 'modelcenter_launch.py'), program, ...args],
  };
}

/** What the watchdog launcher needs: this controller's pid, to notice it died before it started. */
export function watchdogEnv(): Record<string, string> {
  return { MODELCENTER_PARENT_PID: String(process.pid) };
}

/** A free TCP port on the loopback interface. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts `litellm --config …` as a child process and resolves once `/health/readiness` answers
 * 200. If the process exits first, or readiness does not come in time, it is stopped and a
 * LiteLLMStartError carries the cause from its output.
 */
export async function startLiteLLM(options: StartOptions): Promise<RunningLiteLLM> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? (await freePort(host));
  const secrets = [
    options.masterKey,
    ...Object.values(options.env ?? {}).filter((v) => v.length >= 8),
  ];
  const mask = (text: string): string =>
    secrets.reduce((acc, secret) => acc.split(secret).join('***'), text);

  const configPath = options.prepareConfig
    ? await options.prepareConfig(options.configPath)
    : options.configPath;
  const launch = underWatchdog(options.binary ?? litellmBinary(), [
    '--config',
    configPath,
    '--host',
    host,
    '--port',
    String(port),
    '--num_workers',
    '1',
  ]);
  const spawnedAt = performance.now();
  const child: ChildProcess = spawn(launch.command, launch.args, {
    cwd: path.dirname(configPath),
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/tmp',
      LANG: process.env.LANG ?? 'C.UTF-8',
      ...OFFLINE_ENV,
      ...spoolEnv(options.spoolDir),
      ...options.env,
      ...watchdogEnv(),
      LITELLM_MASTER_KEY: options.masterKey,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const append = (chunk: Buffer): void => {
    log = (log + chunk.toString('utf8')).slice(-200_000);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code, signal) =>
      resolve(code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : null)),
    );
    child.on('error', () => resolve(127));
  });
  let done = false;
  void exited.then(() => {
    done = true;
  });
  if (child.pid) {
    try {
      await options.onSpawn?.(child.pid, port);
    } catch (error) {
      child.kill('SIGKILL');
      throw error;
    }
  }

  const url = `http://${host}:${port}`;
  const client = new LiteLLMClient(url, options.masterKey, 2000);
  let stopping = false;
  const stop = async (): Promise<void> => {
    stopping = true;
    if (done) return;
    child.kill('SIGTERM');
    const graceMs = options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS;
    const timer = setTimeout(() => {
      if (done) return;
      child.kill('SIGKILL');
      options.onKilledAfterGrace?.(graceMs);
    }, graceMs);
    await exited;
    clearTimeout(timer);
  };
  const output = (): string => mask(log);

  const timeoutMs = options.readinessTimeoutMs ?? 90_000;
  try {
    await options.portFreedBy;
  } catch (error) {
    await stop();
    throw error;
  }
  const ready = await client
    .waitReady(timeoutMs, { givenUp: () => done })
    .catch(() => 'timeout' as const);
  if (ready === 'gave-up') {
    throw new LiteLLMStartError(
      `LiteLLM exited with code ${await exited} before it was ready: ${lastError(output())}`,
      tail(output()),
    );
  }
  if (ready === 'timeout') {
    await stop();
    throw new LiteLLMStartError(
      `LiteLLM did not become ready on ${url} within ${timeoutMs} ms`,
      tail(output()),
    );
  }
  return {
    readyAfterMs: Math.round(performance.now() - spawnedAt),
    url,
    port,
    pid: child.pid ?? -1,
    client,
    output,
    exited,
    stop,
    kill: async () => {
      stopping = true;
      if (!done) child.kill('SIGKILL');
      await exited;
    },
    get stopping() {
      return stopping;
    },
  };
}

/** The spool callback module (litellm/modelcenter_spool.py) on the path, and its directory. */
function spoolEnv(spoolDir: string | undefined): Record<string, string> {
  return {
    PYTHONPATH: path.join(projectRoot(), 'litellm'),
    MODELCENTER_SPOOL_DIR: path.resolve(spoolDir ?? spoolDirIn('.modelcenter')),
  };
}

function tail(text: string, lines = 40): string {
  return text.split('\n').slice(-lines).join('\n');
}

/** The most telling line of a failed start: the last exception, else the last line. */
function lastError(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const error = [...lines].reverse().find((l) => /(Error|Exception)\b.*:/.test(l));
  return (error ?? lines.at(-1) ?? 'no output').slice(0, 500);
}
