import path from 'node:path';
import { LiteLLMClient } from '../litellm/client.js';
import { LiteLLMStartError } from '../litellm/errors.js';
import { startLiteLLM, type RunningLiteLLM } from '../litellm/process.js';
import { describeError } from '../shared/errors.js';
import { ChildRegistry } from './children.js';
import { readLiveConfig, writeSnapshot, type LiveConfig } from './live-config.js';
import { NginxFront } from './nginx.js';
import { spoolOption } from './restart.js';
import { ReloadError, type ReloadStrategy } from './strategy.js';
import {
  PROBE_TIMEOUT_MS,
  Supervisor,
  type InstanceHealth,
  type SupervisionListener,
  type SupervisionOptions,
} from './supervisor.js';
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
  /** Backoff, intensity limit and readiness probing of LiteLLM and nginx. */
  supervision?: SupervisionOptions;
  /** Turns the config file into the one LiteLLM loads (demo mode). */
  prepareConfig?: (configFile: string) => Promise<string>;
}

interface Active {
  litellm: RunningLiteLLM;
  live: LiveConfig;
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
  private readonly supervisor: Supervisor;
  private reaped = false;
  private stopped = false;

  constructor(private readonly options: BlueGreenOptions) {
    this.supervisor = new Supervisor(options.supervision, {
      recover: () => this.recover(),
      probe: async () => {
        const url = this.active?.litellm.url;
        // A generous timeout: a LiteLLM busy on a loaded machine is slow, not dead.
        if (url) await new LiteLLMClient(url, options.masterKey, PROBE_TIMEOUT_MS).readiness();
      },
    });
    const prefix = path.join(options.stateDir, 'nginx');
    this.children = new ChildRegistry(path.join(options.stateDir, 'children.json'));
    this.front = new NginxFront({
      prefix,
      listenPort: options.port,
      ...(options.host && { listenHost: options.host }),
      ...(options.nginxBinary && { binary: options.nginxBinary }),
      ...(options.drainTimeoutMs !== undefined && { drainTimeoutMs: options.drainTimeoutMs }),
      onSpawn: (pid) => this.children.record(pid, prefix),
      onUnexpectedExit: (code, pid) => {
        void this.children.forget(pid).catch(() => undefined);
        if (this.stopped) return;
        this.supervisor.down(
          'nginx',
          'exit',
          `the nginx front (pid ${pid}) exited unexpectedly with code ${code}`,
        );
      },
    });
    this.frontClient = new LiteLLMClient(this.front.url, options.masterKey, 5000);
  }

  reload(
    configFile: string,
    intended: readonly string[] = [],
    options: { force?: boolean } = {},
  ): Promise<void> {
    return this.supervisor.exclusive(async () => {
      this.stopped = false;
      const live = await readLiveConfig(configFile, intended);
      // Restoring the config that is already live and healthy (after a rejected change) costs nothing.
      if (!options.force && this.active?.live.sha256 === live.sha256 && this.readiness().ready)
        return;
      if (!this.reaped) {
        await this.children.reapOrphans();
        this.reaped = true;
      }
      await this.takeOver(configFile, live, 'the new LiteLLM instance');
      this.supervisor.resolved();
    });
  }

  /**
   * Starts `configFile` on a spare port, verifies it directly, then points the front at it (or
   * starts the front) and retires the old instance. Until the switch the old one serves.
   */
  private async takeOver(configFile: string, live: LiveConfig, what: string): Promise<void> {
    const next = await this.startInstance(configFile);
    const check = await verifyInstances([next.client], live.intended);
    if (!check.ok) {
      await this.retire(next);
      throw new ReloadError(
        `${what} did not verify, so it never took traffic: ${describeVerify(check)}`,
        next.output(),
      );
    }
    try {
      if (!this.front.running) await this.front.start(next.port);
      else await this.front.switchTo(next.port);
    } catch (error) {
      await this.retire(next);
      throw error;
    }
    const old = this.active;
    this.active = { litellm: next, live };
    this.watch(next);
    if (old) await this.retire(old.litellm);
  }

  /** An exit nobody asked for is a crash: the supervisor replaces the instance. */
  private watch(instance: RunningLiteLLM): void {
    void instance.exited.then((code) => {
      if (this.stopped || instance.stopping || this.active?.litellm !== instance) return;
      this.supervisor.down(
        'litellm',
        'exit',
        `LiteLLM on port ${instance.port} (pid ${instance.pid}) behind the front exited unexpectedly with code ${code}`,
      );
    });
    this.supervisor.watch();
  }

  /**
   * The supervisor's restart: a LiteLLM that died or stopped answering is replaced by a new one on
   * the config it served (on a spare port, verified, then switched to); a dead front is restarted.
   */
  private async recover(): Promise<{ url: string; coldStartMs?: number }> {
    const active = this.active;
    if (!active) throw new ReloadError('no config was served yet: nothing to restart');
    const alive = await active.litellm.client.readiness().then(
      () => true,
      () => false,
    );
    if (!alive) {
      const file = await writeSnapshot(this.options.stateDir, active.live);
      await this.takeOver(file, active.live, 'the restarted LiteLLM instance');
      return { url: this.front.url, coldStartMs: this.active?.litellm.readyAfterMs ?? 0 };
    }
    if (!this.front.running) await this.front.start(active.litellm.port);
    return { url: this.front.url };
  }

  readiness(): InstanceHealth {
    if (!this.active) return { ready: false, reason: 'no LiteLLM instance is running' };
    if (!this.front.running) {
      return { ready: false, reason: 'the nginx front is not running' };
    }
    return this.supervisor.health();
  }

  onSupervision(listener: SupervisionListener): void {
    this.supervisor.on(listener);
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
    this.stopped = true;
    this.supervisor.stop();
    await this.front.stop();
    const active = this.active;
    this.active = undefined;
    if (active) await this.retire(active.litellm);
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
        ...(this.options.prepareConfig && { prepareConfig: this.options.prepareConfig }),
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
