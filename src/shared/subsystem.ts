import { describeError, ModelCenterError } from './errors.js';

/** Whether a subsystem serves what it should right now; `reason` says what is missing. */
export interface Readiness {
  ready: boolean;
  reason?: string;
  /** Ready, but something short of serving does not work (e.g. changes refused): what and why. */
  degraded?: string;
}

/**
 * What a started subsystem adds to the service, the way a Fastify plugin registers its routes and
 * its `onClose` (STYLE.md §16). A subsystem is a folder with one `start(deps)` returning this.
 * `TRoute` and `TJob` are the API's route and the scheduler's job (src/shared names no domain
 * folder; src/main.ts fixes them).
 */
export interface Subsystem<TRoute = unknown, TJob = unknown> {
  /** Its HTTP routes, served by the API (started last). */
  routes?: readonly TRoute[];
  /** Jobs it offers the scheduler, by name; a schedule in the settings turns one on. */
  jobs?: Readonly<Record<string, TJob>>;
  /** Whether it serves what it should; a subsystem without one is always ready. */
  readiness?: () => Promise<Readiness>;
  /** The fields it adds to `GET /v1/status`, merged in start order. */
  status?: () => Promise<Record<string, unknown>>;
  /** Undoes its start: called once, in reverse start order (also when a later start fails). */
  stop(): Promise<void>;
}

/**
 * Start-up could not finish: `invalid` when the input (policies, settings) is wrong, `failed`
 * when something outside it failed. A subsystem's `start` that throws has undone its own work.
 */
export class ServiceStartError extends ModelCenterError {
  constructor(
    message: string,
    readonly kind: 'invalid' | 'failed',
  ) {
    super(message);
  }
}

/**
 * The started subsystems, in start order: each is started through `start`, and if one throws,
 * those already started are stopped in reverse before the error goes on. `stop` stops them all
 * in reverse, once.
 */
export class Subsystems<TRoute, TJob> {
  private readonly started: { name: string; subsystem: Subsystem<TRoute, TJob> }[] = [];
  private stopping: Promise<void> | undefined;

  constructor(private readonly onStopError: (name: string, error: string) => void) {}

  async start<T extends Subsystem<TRoute, TJob>>(
    name: string,
    start: () => Promise<T>,
  ): Promise<T> {
    if (this.stopping) throw new ServiceStartError(`${name} not started: shutting down`, 'failed');
    let subsystem: T;
    try {
      subsystem = await start();
    } catch (error) {
      await this.stop();
      throw error;
    }
    this.started.push({ name, subsystem });
    return subsystem;
  }

  /** Every route of the subsystems started so far, in start order. */
  routes(): TRoute[] {
    return this.started.flatMap(({ subsystem }) => subsystem.routes ?? []);
  }

  /** Every job of the subsystems started so far. */
  jobs(): Record<string, TJob> {
    return Object.assign(
      {},
      ...this.started.map(({ subsystem }) => subsystem.jobs ?? {}),
    ) as Record<string, TJob>;
  }

  /**
   * The status fields of every subsystem, merged in start order. One that cannot answer (its
   * database unreachable) is named under `unavailable` with why: the others still answer.
   */
  async status(): Promise<Record<string, unknown>> {
    const unavailable: Record<string, string> = {};
    const parts = await Promise.all(
      this.started.map(({ name, subsystem }) =>
        (subsystem.status?.() ?? Promise.resolve({})).catch((error: unknown) => {
          unavailable[name] = describeError(error);
          return {};
        }),
      ),
    );
    return Object.assign(
      {},
      ...parts,
      Object.keys(unavailable).length > 0 ? { unavailable } : {},
    ) as Record<string, unknown>;
  }

  /** Ready when every subsystem is; otherwise the first reason, named by its subsystem. */
  async readiness(): Promise<Readiness> {
    const checks = await Promise.all(
      this.started.map(async ({ name, subsystem }) => ({
        name,
        readiness: (await subsystem.readiness?.()) ?? { ready: true },
      })),
    );
    const failing = checks.find((c) => !c.readiness.ready);
    const degraded = checks
      .filter((c) => c.readiness.degraded)
      .map((c) => `${c.name}: ${c.readiness.degraded}`)
      .join('; ');
    return failing
      ? { ready: false, reason: `${failing.name}: ${failing.readiness.reason ?? 'not ready'}` }
      : { ready: true, ...(degraded && { degraded }) };
  }

  /** Stops every started subsystem in reverse order; a failing stop is reported, the rest go on. */
  stop(): Promise<void> {
    return (this.stopping ??= (async () => {
      for (const { name, subsystem } of [...this.started].reverse()) {
        try {
          await subsystem.stop();
        } catch (error) {
          this.onStopError(name, describeError(error));
        }
      }
    })());
  }
}
