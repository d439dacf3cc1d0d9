import path from 'node:path';
import { LiteLLMStartError } from '../litellm/errors.js';
import { LiteLLMClient } from '../litellm/client.js';
import { freePort, startLiteLLM, type RunningLiteLLM } from '../litellm/process.js';
import { describeError } from '../shared/errors.js';
import { spoolDirIn } from '../shared/paths.js';
import { ChildRegistry } from './children.js';
import { readLiveConfig, writeSnapshot, type LiveConfig } from './live-config.js';
import { ReloadError, type ReloadStrategy } from './strategy.js';
import {
  PROBE_TIMEOUT_MS,
  Supervisor,
  type InstanceHealth,
  type SupervisionListener,
  type SupervisionOptions,
} from './supervisor.js';
import { describeVerify, verifyInstances } from './verify.js';

export interface RestartOptions {
  port: number;
  /** LiteLLM's master key, read at every start (a rotated key goes live with the next one). */
  masterKey: string | (() => string);
  /** The environment LiteLLM gets; a function is asked again at every start (new providers). */
  env: Record<string, string> | (() => Record<string, string>);
  readinessTimeoutMs?: number;
  binary?: string;
  /** Passed to LiteLLM's spool callback (default: `<stateDir>/spool`; see StartOptions.spoolDir). */
  spoolDir?: string;
  /** Where the record of started processes lives, so a restart after kill -9 stops orphans. */
  stateDir?: string;
  /** Backoff, intensity limit and readiness probing of the supervised process. */
  supervision?: SupervisionOptions;
  /** Told when a LiteLLM had to be killed after its stop grace (records in flight may be lost). */
  onKilledAfterGrace?: (graceMs: number) => void;
  /** Turns the config file into the one LiteLLM loads (demo mode). */
  prepareConfig?: (configFile: string) => Promise<string>;
}

/** uvicorn's answer when the old instance still holds the port: `[Errno 98] … address already in use`. */
const PORT_TAKEN = /address already in use|Errno 98/i;

function asReloadError(error: unknown): ReloadError {
  if (error instanceof LiteLLMStartError) return new ReloadError(error.message, error.output);
  return new ReloadError(`could not start LiteLLM: ${describeError(error)}`);
}

/**
 * `restart`: Model Center supervises LiteLLM as a child process. A new config is first proven on a
 * spare port (readiness and the exact deployment ids) while the live process keeps serving; only
 * then is the live process restarted on it, on the same port. Requests in flight during that
 * restart fail (see bench figures); a config LiteLLM refuses costs none. An exit nobody asked for,
 * or readiness failing N probes in a row, restarts the process on the config it served.
 */
export class RestartStrategy implements ReloadStrategy {
  readonly name = 'restart' as const;
  private running: RunningLiteLLM | undefined;
  /**
   * The config the last process started on: kept while that process is down, so every supervised
   * restart attempt (not only the first) brings it back.
   */
  private live: LiveConfig | undefined;
  private readonly children: ChildRegistry | undefined;
  private readonly supervisor: Supervisor;
  private reaped = false;
  private stopped = false;

  constructor(private readonly options: RestartOptions) {
    if (options.stateDir) {
      this.children = new ChildRegistry(path.join(options.stateDir, 'children.json'));
    }
    this.supervisor = new Supervisor(options.supervision, {
      recover: () => this.recover(),
      probe: async () => {
        const url = this.running?.url;
        // A generous timeout: a LiteLLM busy on a loaded machine is slow, not dead.
        if (url) await new LiteLLMClient(url, options.masterKey, PROBE_TIMEOUT_MS).readiness();
      },
    });
  }

  /**
   * Proves `configFile` on a spare port, then stops the running LiteLLM and starts one on it, on
   * the same port. The new process is spawned while the old one stops (its imports take seconds
   * before it binds the port); if it still finds the port taken, it is started again once the old
   * one is gone. Restoring the config that is already live and healthy costs nothing.
   */
  reload(
    configFile: string,
    intended: readonly string[] = [],
    options: { force?: boolean } = {},
  ): Promise<void> {
    return this.supervisor.exclusive(async () => {
      this.stopped = false;
      const next = await readLiveConfig(configFile, intended);
      const healthy = this.running !== undefined && this.supervisor.health().ready;
      if (healthy && !options.force && this.live?.sha256 === next.sha256) return;
      if (!this.reaped) {
        await this.children?.reapOrphans();
        this.reaped = true;
      }
      // Nothing serves yet (or it is down): there is nothing to protect, so no proof first.
      if (healthy) await this.prove(configFile, intended);
      try {
        await this.replace(configFile, next);
      } catch (error) {
        // The old process is stopped and the new one did not start: nothing serves. Supervision
        // brings back the config that served before (with backoff) unless a reload does first.
        if (this.live)
          this.supervisor.down(
            'litellm',
            'exit',
            `LiteLLM could not be started on port ${this.options.port} and nothing serves there: ${describeError(error)}`,
          );
        throw error;
      }
      this.supervisor.resolved();
    });
  }

  /**
   * Starts `configFile` on a spare port and checks readiness and the exact deployment ids, then
   * stops it. Throws a ReloadError naming the cause; the live process is never touched.
   */
  private async prove(configFile: string, intended: readonly string[]): Promise<void> {
    let candidate: RunningLiteLLM;
    try {
      candidate = await this.start(configFile, await freePort());
    } catch (error) {
      const cause = asReloadError(error);
      throw new ReloadError(
        `the new config failed on a spare LiteLLM, so the live one was not touched: ${cause.message}`,
        cause.output,
      );
    }
    try {
      const check = await verifyInstances([candidate.client], intended);
      if (!check.ok) {
        throw new ReloadError(
          `the new config did not verify on a spare LiteLLM, so the live one was not touched: ${describeVerify(check)}`,
          candidate.output(),
        );
      }
    } finally {
      await candidate.stop();
      await this.children?.forget(candidate.pid).catch(() => undefined);
    }
  }

  /** Stops the running process and starts `next` on the service port. */
  private async replace(configFile: string, next: LiveConfig): Promise<void> {
    const old = this.running;
    this.running = undefined;
    const stopped = (async () => {
      if (!old) return;
      await old.stop().catch(() => undefined);
      await this.children?.forget(old.pid).catch(() => undefined); // reaped next start anyway
    })();
    let started: RunningLiteLLM;
    try {
      started = await this.start(configFile, this.options.port, stopped);
    } catch (error) {
      await stopped;
      if (!(error instanceof LiteLLMStartError && PORT_TAKEN.test(error.message + error.output)))
        throw asReloadError(error);
      try {
        started = await this.start(configFile, this.options.port);
      } catch (again) {
        throw asReloadError(again);
      }
    }
    this.running = started;
    this.live = next;
    this.watch(started);
  }

  /** An exit nobody asked for is a crash: the supervisor restarts it. */
  private watch(instance: RunningLiteLLM): void {
    if (this.stopped) return; // stop() stops it once the restart that started it is done
    void instance.exited.then((code) => {
      if (this.stopped || instance.stopping || this.running !== instance) return;
      this.supervisor.down(
        'litellm',
        'exit',
        `LiteLLM on port ${instance.port} (pid ${instance.pid}) exited unexpectedly with code ${code}`,
      );
    });
    this.supervisor.watch();
  }

  /** The supervisor's restart: the config the process served, on the same port, verified. */
  private async recover(): Promise<{ url: string; coldStartMs?: number }> {
    const live = this.live;
    if (!live) throw new ReloadError('no config was served yet: nothing to restart');
    const old = this.running;
    if (old) {
      // It exited, or stopped answering: nothing in flight is worth a graceful stop's wait.
      await old.kill().catch(() => undefined);
      await this.children?.forget(old.pid).catch(() => undefined);
    }
    const file = await writeSnapshot(this.options.stateDir, live);
    await this.replace(file, live);
    const check = await verifyInstances(this.instances(), live.intended);
    if (!check.ok)
      throw new ReloadError(`restarted LiteLLM did not verify: ${describeVerify(check)}`);
    return {
      url: this.running?.url ?? '',
      ...(this.running && { coldStartMs: this.running.readyAfterMs }),
    };
  }

  private start(
    configFile: string,
    port: number,
    portFreedBy?: Promise<unknown>,
  ): Promise<RunningLiteLLM> {
    return startLiteLLM({
      configPath: configFile,
      masterKey: currentKey(this.options.masterKey),
      env: typeof this.options.env === 'function' ? this.options.env() : this.options.env,
      port,
      ...(this.options.readinessTimeoutMs !== undefined && {
        readinessTimeoutMs: this.options.readinessTimeoutMs,
      }),
      ...(this.options.binary && { binary: this.options.binary }),
      ...spoolOption(this.options),
      ...(this.options.onKilledAfterGrace && {
        onKilledAfterGrace: this.options.onKilledAfterGrace,
      }),
      ...(this.options.prepareConfig && { prepareConfig: this.options.prepareConfig }),
      ...(portFreedBy && { portFreedBy }),
      onSpawn: (pid, spawnedOn) => this.children?.record(pid, `--port ${spawnedOn}`),
    });
  }

  instances(): LiteLLMClient[] {
    return this.running ? [this.running.client] : [];
  }

  readiness(): InstanceHealth {
    // Supervision's reason (what died, a restart under way, or giving up) says more than "none".
    const health = this.supervisor.health();
    if (!health.ready) return health;
    if (!this.running) return { ready: false, reason: 'no LiteLLM process is running' };
    return health;
  }

  onSupervision(listener: SupervisionListener): void {
    this.supervisor.on(listener);
  }

  /** The supervised process, for callers that wait on it (the `up` command). */
  process(): RunningLiteLLM | undefined {
    return this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.supervisor.stop();
    // A supervised restart under way holds its new process outside `running` until it is ready:
    // let it finish, then stop that one too (else it outlives the controller, holding the port).
    await this.supervisor.exclusive(async () => {
      this.supervisor.stop();
      const running = this.running;
      this.running = undefined;
      await running?.stop();
      if (running) await this.children?.forget(running.pid);
    });
  }
}

/** The spool directory LiteLLM's callback writes to: explicit, else inside the state directory. */
export function spoolOption(options: { spoolDir?: string; stateDir?: string }): {
  spoolDir?: string;
} {
  const dir = options.spoolDir ?? (options.stateDir ? spoolDirIn(options.stateDir) : undefined);
  return dir ? { spoolDir: dir } : {};
}

/** The master key now, from a fixed value or a getter. */
export function currentKey(masterKey: string | (() => string)): string {
  return typeof masterKey === 'function' ? masterKey() : masterKey;
}
