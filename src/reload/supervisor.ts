import { describeError } from '../shared/errors.js';

/** The processes a strategy runs and watches. */
export type SupervisedProcess = 'litellm' | 'nginx';

/** Why a process is being restarted: it exited on its own, or stopped answering readiness. */
export type DownCause = 'exit' | 'unready';

/** What supervision saw and did, for logs, metrics and alerts. Never carries a secret. */
export type SupervisionEvent =
  | { kind: 'down'; process: SupervisedProcess; cause: DownCause; reason: string }
  | {
      kind: 'restarting';
      process: SupervisedProcess;
      cause: DownCause;
      attempt: number;
      delayMs: number;
    }
  | {
      kind: 'restarted';
      process: SupervisedProcess;
      attempt: number;
      downForMs: number;
      url: string;
      /** The cold start of the process that replaced it (spawn to readiness), when one started. */
      coldStartMs?: number;
    }
  | { kind: 'restart-failed'; process: SupervisedProcess; attempt: number; error: string }
  /** A reload (an apply, POST /v1/reload) put fresh processes in place during an incident or after giving up. */
  | { kind: 'replaced-by-reload'; process: SupervisedProcess; gaveUp: boolean }
  | {
      kind: 'gave-up';
      process: SupervisedProcess;
      restarts: number;
      windowMs: number;
      /** What health() says from now on: how many restarts, why, what to do. */
      message: string;
      reason: string;
    };

export interface SupervisionOptions {
  /** Readiness is asked this often while nothing is wrong. */
  probeIntervalMs?: number;
  /** This many failed readiness probes in a row count as a crash. */
  readinessFailures?: number;
  /** The second restart in the window waits this long (the first is immediate); each further one twice as long … */
  backoffInitialMs?: number;
  /** … up to this. */
  backoffMaxMs?: number;
  /**
   * Intensity limit: at most `restarts` attempts in `windowMs` (or `restarts` failed attempts in
   * a row, however long they took), then supervision stops trying.
   */
  intensity?: { restarts: number; windowMs: number };
}

/** How long one readiness probe may take before it counts as failed. */
export const PROBE_TIMEOUT_MS = 5000;

export const DEFAULT_SUPERVISION: Required<SupervisionOptions> = {
  // Tolerant: a LiteLLM busy on a loaded machine answers slowly; only ~15 s of silence is a crash.
  probeIntervalMs: 3000,
  readinessFailures: 5,
  backoffInitialMs: 250,
  backoffMaxMs: 30_000,
  intensity: { restarts: 5, windowMs: 300_000 },
};

/** Whether the strategy's processes are up, and if not, why (for `/readyz` and apply). */
export interface InstanceHealth {
  ready: boolean;
  reason?: string;
}

export type SupervisionListener = (event: SupervisionEvent) => void;

interface GiveUp {
  process: SupervisedProcess;
  message: string;
}

interface Incident {
  process: SupervisedProcess;
  cause: DownCause;
  reason: string;
  since: number;
}

/**
 * OTP-style supervision for one strategy's processes: the strategy reports a process down (an
 * exit it did not ask for, or readiness failing N probes in a row); the supervisor restarts it
 * through `recover` after a capped exponential backoff, at most `intensity.restarts` times in
 * `intensity.windowMs`, then stops trying and says so (an event the service logs and alerts on).
 * Reloads and recoveries never overlap: both run through `exclusive`. A successful reload ends
 * an incident and resets the count.
 */
export class Supervisor {
  private readonly options: Required<SupervisionOptions>;
  private readonly listeners: SupervisionListener[] = [];
  private incident: Incident | undefined;
  private gaveUp: GiveUp | undefined;
  private attempts: number[] = [];
  /** Failed restart attempts in a row in the current incident. */
  private failedInARow = 0;
  private timer: NodeJS.Timeout | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private failedProbes = 0;
  private busy = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private stopped = false;

  constructor(
    options: SupervisionOptions | undefined,
    private readonly hooks: {
      /** Bring every process back on the config it served; throws when it could not. */
      recover: (incident: {
        process: SupervisedProcess;
        cause: DownCause;
      }) => Promise<{ url: string; coldStartMs?: number }>;
      /** Throws when the processes do not answer readiness. */
      probe: () => Promise<void>;
    },
  ) {
    this.options = { ...DEFAULT_SUPERVISION, ...options };
  }

  on(listener: SupervisionListener): void {
    this.listeners.push(listener);
  }

  /** Runs `work` alone: no recovery and no probe runs meanwhile. */
  exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(async () => {
      this.busy++;
      try {
        return await work();
      } finally {
        this.busy--;
      }
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Starts readiness probing (once something runs). */
  watch(): void {
    this.stopped = false;
    if (this.probeTimer) return;
    const tick = async (): Promise<void> => {
      if (this.busy > 0 || this.incident || this.gaveUp) return;
      try {
        await this.hooks.probe();
        this.failedProbes = 0;
      } catch (error) {
        if (this.busy > 0 || this.incident) return; // a reload or an exit got there first
        this.failedProbes++;
        if (this.failedProbes >= this.options.readinessFailures) {
          this.down(
            'litellm',
            'unready',
            `readiness failed ${this.failedProbes} times in a row: ${describeError(error)}`,
          );
        }
      }
    };
    let running = false;
    this.probeTimer = setInterval(() => {
      if (running) return;
      running = true;
      void tick().finally(() => (running = false));
    }, this.options.probeIntervalMs);
    this.probeTimer.unref();
  }

  /** A process is down: restart it after the backoff, unless an incident is already handled. */
  down(process: SupervisedProcess, cause: DownCause, reason: string): void {
    if (this.stopped || this.incident || this.gaveUp) return;
    this.incident = { process, cause, reason, since: Date.now() };
    this.failedInARow = 0;
    this.emit({ kind: 'down', process, cause, reason });
    this.schedule();
  }

  /** A reload put fresh processes in place: any incident is over, the count starts afresh. */
  resolved(): void {
    const process = this.gaveUp?.process ?? this.incident?.process;
    if (process) this.emit({ kind: 'replaced-by-reload', process, gaveUp: !!this.gaveUp });
    clearTimeout(this.timer);
    this.timer = undefined;
    this.incident = undefined;
    this.gaveUp = undefined;
    this.attempts = [];
    this.failedInARow = 0;
    this.failedProbes = 0;
  }

  health(): InstanceHealth {
    if (this.gaveUp) return { ready: false, reason: this.gaveUp.message };
    if (this.incident) {
      return {
        ready: false,
        reason: `${this.incident.reason}; restarting on the config it served`,
      };
    }
    return { ready: true };
  }

  stop(): void {
    this.stopped = true;
    this.incident = undefined;
    this.gaveUp = undefined;
    clearTimeout(this.timer);
    clearInterval(this.probeTimer);
    this.probeTimer = undefined;
  }

  private schedule(): void {
    const incident = this.incident;
    if (!incident || this.stopped) return;
    const now = Date.now();
    const { restarts, windowMs } = this.options.intensity;
    this.attempts = this.attempts.filter((t) => now - t < windowMs);
    // Attempts that fail slowly (each a LiteLLM cold start, a minute on a loaded machine) slide
    // out of the window: failures in a row count too, or a cause that never goes away (its port
    // taken) is retried back to back forever.
    if (this.attempts.length >= restarts || this.failedInARow >= restarts) {
      const message =
        this.attempts.length >= restarts
          ? `supervision gave up after ${this.attempts.length} restarts in ${Math.round(windowMs / 1000)} s (${incident.reason}) — fix the cause, then apply or POST /v1/reload`
          : `supervision gave up after ${this.failedInARow} failed restarts in a row (${incident.reason}) — fix the cause, then apply or POST /v1/reload`;
      this.gaveUp = { process: incident.process, message };
      this.emit({
        kind: 'gave-up',
        process: incident.process,
        restarts: Math.max(this.attempts.length, this.failedInARow),
        windowMs,
        message,
        reason: incident.reason,
      });
      return;
    }
    // The first restart is immediate (as in OTP); each further one (in the window, or failed in
    // a row) waits twice as long as the one before, from backoffInitialMs up to backoffMaxMs.
    const n = Math.max(this.attempts.length, this.failedInARow);
    const delayMs =
      n === 0
        ? 0
        : Math.min(this.options.backoffMaxMs, this.options.backoffInitialMs * 2 ** (n - 1));
    this.attempts.push(now);
    const attempt = this.failedInARow + 1; // of this incident
    this.emit({
      kind: 'restarting',
      process: incident.process,
      cause: incident.cause,
      attempt,
      delayMs,
    });
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.exclusive(() => this.attempt(incident, attempt));
    }, delayMs);
    this.timer.unref();
  }

  private async attempt(incident: Incident, attempt: number): Promise<void> {
    if (this.stopped || this.incident !== incident) return; // a reload fixed it meanwhile
    try {
      const { url, coldStartMs } = await this.hooks.recover(incident);
      if (this.incident !== incident) return;
      this.incident = undefined;
      this.failedProbes = 0;
      this.emit({
        kind: 'restarted',
        process: incident.process,
        attempt,
        downForMs: Date.now() - incident.since,
        url,
        ...(coldStartMs !== undefined && { coldStartMs }),
      });
    } catch (error) {
      if (this.stopped || this.incident !== incident) return;
      this.failedInARow++;
      this.emit({
        kind: 'restart-failed',
        process: incident.process,
        attempt,
        error: describeError(error),
      });
      this.schedule();
    }
  }

  private emit(event: SupervisionEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // a listener's failure is its own; supervision goes on
      }
    }
  }
}
