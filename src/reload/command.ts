import { spawn } from 'node:child_process';
import { LiteLLMClient } from '../litellm/client.js';
import { ReloadError, type ReloadStrategy } from './strategy.js';

export interface CommandRestartOptions {
  /** Shell command that restarts the LiteLLM instances (systemctl, docker compose, kubectl …). */
  command: string;
  /** The instances it restarts, verified after it returns. */
  instances: readonly string[];
  /** The master key, or where to read it (it changes when rotated). */
  masterKey: string | (() => string);
  readinessTimeoutMs?: number;
}

/**
 * `restart` for a LiteLLM that Model Center does not start itself: runs the configured command with
 * MODELCENTER_CONFIG_FILE set to the new config, then waits until every instance answers readiness.
 */
export class CommandRestartStrategy implements ReloadStrategy {
  readonly name = 'restart' as const;
  private readonly clients: LiteLLMClient[];

  constructor(private readonly options: CommandRestartOptions) {
    this.clients = options.instances.map((url) => new LiteLLMClient(url, options.masterKey, 3000));
  }

  async reload(configFile: string): Promise<void> {
    let output = '';
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn('sh', ['-c', this.options.command], {
        // The controller's environment without its tokens and keys (KUBECONFIG, DOCKER_HOST … stay).
        env: {
          ...Object.fromEntries(
            Object.entries(process.env).filter(
              ([name]) => !/TOKEN|SECRET|MASTER_KEY|API_KEY|PASSWORD/i.test(name),
            ),
          ),
          MODELCENTER_CONFIG_FILE: configFile,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const append = (chunk: Buffer): void => {
        output = (output + chunk.toString('utf8')).slice(-20_000);
      };
      child.stdout.on('data', append);
      child.stderr.on('data', append);
      child.on('close', resolve); // after its output is read to the end
      child.on('error', () => resolve(127));
    });
    if (code !== 0) {
      throw new ReloadError(
        `the restart command exited with code ${code} — check MODELCENTER_RESTART_COMMAND and its output`,
        output.split('\n').slice(-40).join('\n'),
      );
    }
    const deadline = Date.now() + (this.options.readinessTimeoutMs ?? 120_000);
    for (const client of this.clients) {
      try {
        await client.waitReady(Math.max(0, deadline - Date.now()), { intervalMs: 200 });
      } catch (error) {
        throw new ReloadError(
          `${client.baseUrl} was not ready after the restart command: ${(error as Error).message}`,
        );
      }
    }
  }

  instances(): LiteLLMClient[] {
    return this.clients;
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }
}
