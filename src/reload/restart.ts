import path from 'node:path';
import { LiteLLMStartError } from '../litellm/errors.js';
import type { LiteLLMClient } from '../litellm/client.js';
import { startLiteLLM, type RunningLiteLLM } from '../litellm/process.js';
import { describeError } from '../shared/errors.js';
import { spoolDirIn } from '../shared/paths.js';
import { ChildRegistry } from './children.js';
import { ReloadError, type ReloadStrategy } from './strategy.js';

export interface RestartOptions {
  port: number;
  masterKey: string;
  /** The environment LiteLLM gets; a function is asked again at every start (new providers). */
  env: Record<string, string> | (() => Record<string, string>);
  readinessTimeoutMs?: number;
  binary?: string;
  /** Passed to LiteLLM's spool callback (default: `<stateDir>/spool`; see StartOptions.spoolDir). */
  spoolDir?: string;
  /** Where the record of started processes lives, so a restart after kill -9 stops orphans. */
  stateDir?: string;
}

/** uvicorn's answer when the old instance still holds the port: `[Errno 98] … address already in use`. */
const PORT_TAKEN = /address already in use|Errno 98/i;

function asReloadError(error: unknown): ReloadError {
  if (error instanceof LiteLLMStartError) return new ReloadError(error.message, error.output);
  return new ReloadError(`could not start LiteLLM: ${describeError(error)}`);
}

/**
 * `restart`: Model Center supervises LiteLLM as a child process and restarts it on the new config
 * behind a readiness gate. Requests in flight during the restart fail (see bench figures).
 */
export class RestartStrategy implements ReloadStrategy {
  readonly name = 'restart' as const;
  private running: RunningLiteLLM | undefined;
  private readonly children: ChildRegistry | undefined;
  private reaped = false;

  constructor(private readonly options: RestartOptions) {
    if (options.stateDir) {
      this.children = new ChildRegistry(path.join(options.stateDir, 'children.json'));
    }
  }

  /**
   * Stops the running LiteLLM and starts one on `configFile`, on the same port. The new process
   * is spawned while the old one stops (its imports take seconds before it binds the port); if it
   * still finds the port taken, it is started again once the old one is gone.
   */
  async reload(configFile: string): Promise<void> {
    const old = this.running;
    this.running = undefined;
    const stopped = (async () => {
      if (!old) return;
      await old.stop().catch(() => undefined);
      await this.children?.forget(old.pid).catch(() => undefined); // reaped next start anyway
    })();
    if (!this.reaped) {
      await stopped;
      await this.children?.reapOrphans();
      this.reaped = true;
    }
    try {
      this.running = await this.start(configFile, stopped);
    } catch (error) {
      await stopped;
      if (!(error instanceof LiteLLMStartError && PORT_TAKEN.test(error.message + error.output)))
        throw asReloadError(error);
      try {
        this.running = await this.start(configFile);
      } catch (again) {
        throw asReloadError(again);
      }
    }
  }

  private start(configFile: string, portFreedBy?: Promise<unknown>): Promise<RunningLiteLLM> {
    return startLiteLLM({
      configPath: configFile,
      masterKey: this.options.masterKey,
      env: typeof this.options.env === 'function' ? this.options.env() : this.options.env,
      port: this.options.port,
      ...(this.options.readinessTimeoutMs !== undefined && {
        readinessTimeoutMs: this.options.readinessTimeoutMs,
      }),
      ...(this.options.binary && { binary: this.options.binary }),
      ...spoolOption(this.options),
      ...(portFreedBy && { portFreedBy }),
      onSpawn: (pid, port) => this.children?.record(pid, `--port ${port}`),
    });
  }

  instances(): LiteLLMClient[] {
    return this.running ? [this.running.client] : [];
  }

  /** The supervised process, for callers that wait on it (the `up` command). */
  process(): RunningLiteLLM | undefined {
    return this.running;
  }

  async stop(): Promise<void> {
    await this.running?.stop();
    if (this.running) await this.children?.forget(this.running.pid);
    this.running = undefined;
  }
}

/** The spool directory LiteLLM's callback writes to: explicit, else inside the state directory. */
export function spoolOption(options: { spoolDir?: string; stateDir?: string }): {
  spoolDir?: string;
} {
  const dir = options.spoolDir ?? (options.stateDir ? spoolDirIn(options.stateDir) : undefined);
  return dir ? { spoolDir: dir } : {};
}
