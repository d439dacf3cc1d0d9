import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LiteLLMClient } from '../litellm/client.js';
import { LiteLLMStartError } from '../litellm/errors.js';
import { startLiteLLM, type RunningLiteLLM } from '../litellm/process.js';
import { describeError } from '../shared/errors.js';
import { ChildRegistry } from './children.js';
import { NginxFront } from './nginx.js';
import { spoolOption } from './restart.js';
import { ReloadError, type ReloadStrategy } from './strategy.js';
import { describeVerify, verifyInstances } from './verify.js';

export interface BlueGreenOptions {
  /** The port clients use: nginx listens here. */
  port: number;
  host?: string;
  masterKey: string;
  /** The environment LiteLLM gets; a function is asked again at every start (new providers). */
  env: Record<string, string> | (() => Record<string, string>);
  /** nginx's prefix (config, pid, logs) and the record of started processes live here. */
  stateDir: string;
  readinessTimeoutMs?: number;
  /** How long the old instance may take to finish requests in flight. */
  drainTimeoutMs?: number;
  binary?: string;
  nginxBinary?: string;
  /** Where LiteLLM's spool callback writes (default: `<stateDir>/spool`). */
  spoolDir?: string;
}

interface Active {
  litellm: RunningLiteLLM;
  sha256: string;
}

/**
 * `blue-green`: every change starts a new LiteLLM on a spare port, verifies it directly, then
 * switches a real nginx front to it with a graceful reload; the old instance finishes what it
 * serves and stops. A new instance that fails to start or to verify never takes traffic: the old
 * one keeps serving throughout, so a rejected config costs no request.
 */
export class BlueGreenStrategy implements ReloadStrategy {
  readonly name = 'blue-green' as const;
  private active: Active | undefined;
  private readonly front: NginxFront;
  private readonly frontClient: LiteLLMClient;
  private readonly children: ChildRegistry;
  private reaped = false;

  constructor(private readonly options: BlueGreenOptions) {
    const prefix = path.join(options.stateDir, 'nginx');
    this.children = new ChildRegistry(path.join(options.stateDir, 'children.json'));
    this.front = new NginxFront({
      prefix,
      listenPort: options.port,
      ...(options.host && { listenHost: options.host }),
      ...(options.nginxBinary && { binary: options.nginxBinary }),
      ...(options.drainTimeoutMs !== undefined && { drainTimeoutMs: options.drainTimeoutMs }),
      onSpawn: (pid) => this.children.record(pid, prefix),
    });
    this.frontClient = new LiteLLMClient(this.front.url, options.masterKey, 5000);
  }

  async reload(configFile: string, intended: readonly string[]): Promise<void> {
    const sha256 = createHash('sha256')
      .update(await readFile(configFile))
      .digest('hex');
    // Restoring the config that is already live (after a rejected change) costs nothing.
    if (this.active?.sha256 === sha256 && this.front.upstream === this.active.litellm.port) return;
    if (!this.reaped) {
      await this.children.reapOrphans();
      this.reaped = true;
    }
    const next = await this.startInstance(configFile);
    const check = await verifyInstances([next.client], intended);
    if (!check.ok) {
      await this.retire(next);
      throw new ReloadError(
        `the new LiteLLM instance did not verify, so it never took traffic: ${describeVerify(check)}`,
        next.output(),
      );
    }
    try {
      if (this.front.upstream === undefined) await this.front.start(next.port);
      else await this.front.switchTo(next.port);
    } catch (error) {
      await this.retire(next);
      throw error;
    }
    const old = this.active;
    this.active = { litellm: next, sha256 };
    if (old) await this.retire(old.litellm);
  }

  /** Verification goes through the front: what clients reach is what must be right. */
  instances(): LiteLLMClient[] {
    return this.front.upstream === undefined ? [] : [this.frontClient];
  }

  /** The LiteLLM instance behind the front. */
  process(): RunningLiteLLM | undefined {
    return this.active?.litellm;
  }

  get url(): string {
    return this.front.url;
  }

  async stop(): Promise<void> {
    await this.front.stop();
    if (this.active) await this.retire(this.active.litellm);
    this.active = undefined;
  }

  private async startInstance(configFile: string): Promise<RunningLiteLLM> {
    try {
      return await startLiteLLM({
        configPath: configFile,
        masterKey: this.options.masterKey,
        env: typeof this.options.env === 'function' ? this.options.env() : this.options.env,
        ...(this.options.readinessTimeoutMs !== undefined && {
          readinessTimeoutMs: this.options.readinessTimeoutMs,
        }),
        ...(this.options.binary && { binary: this.options.binary }),
        ...spoolOption(this.options),
        onSpawn: (pid, port) => this.children.record(pid, `--port ${port}`),
      });
    } catch (error) {
      if (error instanceof LiteLLMStartError) {
        throw new ReloadError(
          `${error.message} (the previous instance keeps serving)`,
          error.output,
        );
      }
      throw new ReloadError(`could not start LiteLLM: ${describeError(error)}`);
    }
  }

  /** Graceful stop (uvicorn finishes requests in flight), then forget the pid. */
  private async retire(instance: RunningLiteLLM): Promise<void> {
    await instance.stop();
    await this.children.forget(instance.pid);
  }
}
