import { availableParallelism } from 'node:os';
import path from 'node:path';
import { LiteLLMClient } from '../litellm/client.js';
import { LiteLLMStartError } from '../litellm/errors.js';
import { startLiteLLM, type RunningLiteLLM } from '../litellm/process.js';
import { describeError } from '../shared/errors.js';
import { ChildRegistry } from './children.js';
import { readLiveConfig, writeSnapshot, type LiveConfig } from './live-config.js';
import { NginxFront, type KeyAlias } from './nginx.js';
import { currentKey, spoolOption } from './restart.js';
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
  /** LiteLLM's master key, read at every start (a rotated key goes live with the next one). */
  masterKey: string | (() => string);
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
  /** Told when a LiteLLM had to be killed after its stop grace (records in flight may be lost). */
  onKilledAfterGrace?: (graceMs: number) => void;
  /** Keys the front maps to others (a master key rotation's grace period); asked at every write. */
  keyAliases?: () => readonly KeyAlias[];
  /** LiteLLM replicas behind the front, each verified and supervised (default 1). */
  replicas?: number;
  /** Turns the config file into the one LiteLLM loads (demo mode). */
  prepareConfig?: (configFile: string) => Promise<string>;
}

interface Active {
  /** The replicas behind the front, all on `live`. */
  replicas: RunningLiteLLM[];
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
        // A generous timeout: a LiteLLM busy on a loaded machine is slow, not dead.
        await Promise.all(
          (this.active?.replicas ?? []).map((replica) =>
            new LiteLLMClient(replica.url, options.masterKey, PROBE_TIMEOUT_MS).readiness(),
          ),
        );
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
      ...(options.keyAliases && { keyAliases: options.keyAliases }),
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
   * Starts `configFile` on spare ports (one per replica), verifies each directly, then points the
   * front at them (or starts the front) and retires the old ones. Until the switch the old serve.
   */
  private async takeOver(configFile: string, live: LiveConfig, what: string): Promise<void> {
    const next = await this.startReplicas(configFile, this.options.replicas ?? 1);
    const check = await verifyInstances(
      next.map((r) => r.client),
      live.intended,
    );
    if (!check.ok) {
      await Promise.all(next.map((r) => this.retire(r)));
      throw new ReloadError(
        `${what} did not verify, so it never took traffic: ${describeVerify(check)}`,
        next[0]?.output(),
      );
    }
    try {
      await this.point(next);
    } catch (error) {
      await Promise.all(next.map((r) => this.retire(r)));
      throw error;
    }
    const old = this.active;
    this.active = { replicas: next, live };
    for (const replica of next) this.watch(replica);
    if (old) await Promise.all(old.replicas.map((r) => this.retire(r)));
  }

  /**
   * `count` new instances on `configFile`; if one fails, the others are stopped too. LiteLLM's
   * start is CPU-bound (seconds of imports): at most one per spare core starts at a time, so a
   * small machine is not asked for several cold starts at once (each would time out).
   */
  private async startReplicas(configFile: string, count: number): Promise<RunningLiteLLM[]> {
    const parallel = Math.max(1, Math.min(count, availableParallelism() - 1));
    const running: RunningLiteLLM[] = [];
    let failure: unknown;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count && failure === undefined) {
        next++;
        try {
          running.push(await this.startInstance(configFile));
        } catch (error) {
          failure ??= error;
        }
      }
    };
    await Promise.all(Array.from({ length: parallel }, worker));
    if (failure !== undefined) {
      await Promise.all(running.map((r) => this.retire(r)));
      throw failure instanceof Error ? failure : new ReloadError(describeError(failure));
    }
    return running;
  }

  /** The front sends traffic to exactly these replicas. */
  private async point(replicas: readonly RunningLiteLLM[]): Promise<void> {
    const ports = replicas.map((r) => r.port);
    if (!this.front.running) await this.front.start(ports);
    else await this.front.switchTo(ports);
  }

  /** An exit nobody asked for is a crash: the supervisor replaces the instance. */
  private watch(instance: RunningLiteLLM): void {
    if (this.stopped) return; // stop() retires it once the restart that started it is done
    void instance.exited.then((code) => {
      if (this.stopped || instance.stopping || !this.active?.replicas.includes(instance)) return;
      this.supervisor.down(
        'litellm',
        'exit',
        `LiteLLM on port ${instance.port} (pid ${instance.pid}) behind the front exited unexpectedly with code ${code}`,
      );
    });
    this.supervisor.watch();
  }

  /**
   * The supervisor's restart: each replica that died or stopped answering is replaced by a new one
   * on the config it served (on a spare port, verified, then switched to) while the others keep
   * serving; a dead front is restarted.
   */
  private async recover(): Promise<{ url: string; coldStartMs?: number }> {
    const active = this.active;
    if (!active) throw new ReloadError('no config was served yet: nothing to restart');
    const alive = await Promise.all(
      active.replicas.map((r) =>
        r.client.readiness().then(
          () => true,
          () => false,
        ),
      ),
    );
    const dead = active.replicas.filter((_, i) => !alive[i]);
    if (dead.length === 0) {
      if (!this.front.running) await this.front.start(active.replicas.map((r) => r.port));
      return { url: this.front.url };
    }
    const file = await writeSnapshot(this.options.stateDir, active.live);
    const fresh = await this.startReplicas(file, dead.length);
    const check = await verifyInstances(
      fresh.map((r) => r.client),
      active.live.intended,
    );
    if (!check.ok) {
      await Promise.all(fresh.map((r) => this.retire(r)));
      throw new ReloadError(`the restarted LiteLLM did not verify: ${describeVerify(check)}`);
    }
    const replicas = active.replicas.map((r) => (dead.includes(r) ? fresh[dead.indexOf(r)]! : r));
    try {
      await this.point(replicas);
    } catch (error) {
      await Promise.all(fresh.map((r) => this.retire(r)));
      throw error;
    }
    this.active = { replicas, live: active.live };
    for (const replica of fresh) this.watch(replica);
    await Promise.all(dead.map((r) => r.kill().then(() => this.retire(r))));
    return { url: this.front.url, coldStartMs: fresh[0]?.readyAfterMs ?? 0 };
  }

  readiness(): InstanceHealth {
    // Supervision's reason (what died, a restart under way, or giving up) says more than "none".
    const health = this.supervisor.health();
    if (!health.ready) return health;
    if (!this.active) return { ready: false, reason: 'no LiteLLM instance is running' };
    if (!this.front.running) {
      return { ready: false, reason: 'the nginx front is not running' };
    }
    return health;
  }

  onSupervision(listener: SupervisionListener): void {
    this.supervisor.on(listener);
  }

  /**
   * Verification goes through the front: what clients reach is what must be right. With several
   * replicas each is verified directly too (the front balances, so asking it shows one at random).
   */
  instances(): LiteLLMClient[] {
    if (this.front.upstream === undefined) return [];
    const replicas = this.active?.replicas ?? [];
    return replicas.length > 1
      ? [this.frontClient, ...replicas.map((r) => r.client)]
      : [this.frontClient];
  }

  /** The (first) LiteLLM instance behind the front. */
  process(): RunningLiteLLM | undefined {
    return this.active?.replicas[0];
  }

  /** Every LiteLLM replica behind the front. */
  replicas(): readonly RunningLiteLLM[] {
    return this.active?.replicas ?? [];
  }

  get url(): string {
    return this.front.url;
  }

  /**
   * Rewrites the front's config (its key aliases changed: a master key's grace period ended) and
   * reloads it gracefully; LiteLLM is not touched.
   */
  refreshFront(): Promise<void> {
    return this.supervisor.exclusive(() => this.front.refresh());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.supervisor.stop();
    // A supervised restart under way may start replicas (or the front) before it is done: let it
    // finish, then stop what it started too (else it outlives the controller, holding ports).
    await this.supervisor.exclusive(async () => {
      this.supervisor.stop();
      await this.front.stop();
      const active = this.active;
      this.active = undefined;
      if (active) await Promise.all(active.replicas.map((r) => this.retire(r)));
    });
  }

  private async startInstance(configFile: string): Promise<RunningLiteLLM> {
    try {
      return await startLiteLLM({
        configPath: configFile,
        masterKey: currentKey(this.options.masterKey),
        env: typeof this.options.env === 'function' ? this.options.env() : this.options.env,
        ...(this.options.readinessTimeoutMs !== undefined && {
          readinessTimeoutMs: this.options.readinessTimeoutMs,
        }),
        ...(this.options.binary && { binary: this.options.binary }),
        ...spoolOption(this.options),
        ...(this.options.onKilledAfterGrace && {
          onKilledAfterGrace: this.options.onKilledAfterGrace,
        }),
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
