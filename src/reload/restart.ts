import { LiteLLMStartError } from '../litellm/errors.js';
import type { LiteLLMClient } from '../litellm/client.js';
import { startLiteLLM, type RunningLiteLLM } from '../litellm/process.js';
import { describeError } from '../shared/errors.js';
import { ReloadError, type ReloadStrategy } from './strategy.js';

export interface RestartOptions {
  port: number;
  masterKey: string;
  env: Record<string, string>;
  readinessTimeoutMs?: number;
  binary?: string;
  /** Passed to LiteLLM's spool callback (see StartOptions.spoolDir). */
  spoolDir?: string;
}

/**
 * `restart`: Model Center supervises LiteLLM as a child process and restarts it on the new config
 * behind a readiness gate. Requests in flight during the restart fail (see bench figures).
 */
export class RestartStrategy implements ReloadStrategy {
  readonly name = 'restart' as const;
  private running: RunningLiteLLM | undefined;

  constructor(private readonly options: RestartOptions) {}

  async reload(configFile: string): Promise<void> {
    await this.running?.stop();
    this.running = undefined;
    try {
      this.running = await startLiteLLM({
        configPath: configFile,
        ...this.options,
        port: this.options.port,
      });
    } catch (error) {
      if (error instanceof LiteLLMStartError) throw new ReloadError(error.message, error.output);
      throw new ReloadError(`could not start LiteLLM: ${describeError(error)}`);
    }
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
    this.running = undefined;
  }
}
