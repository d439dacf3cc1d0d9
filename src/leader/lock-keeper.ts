import { setTimeout as sleep } from 'node:timers/promises';
import { describeError } from '../shared/errors.js';
import { LeaderLock, type ActiveController } from '../store/leader-lock.js';

/** Where the active controller stands with its lock right now (for status, readiness, refusals). */
export type LockState =
  | { held: true }
  | {
      held: false;
      /** When the lock's connection died. */
      since: Date;
      reason: string;
      /** Reconnection attempts so far, and why the last one failed. */
      attempts: number;
      lastError?: string;
    };

export interface LockKeeperOptions {
  url: string;
  /** Who this controller is, announced again once the lock is retaken. */
  self: () => Omit<ActiveController, 'since'>;
  /** The lock's connection died while held: once per incident. */
  onLost: (reason: string) => void;
  /** The lock is held again after `downMs`. */
  onRetaken: (downMs: number, attempts: number) => void;
  /** Reconnected, but another controller took the lock meanwhile: this one must step down. */
  onTakenByAnother: (active: ActiveController | undefined) => void;
  /** Reconnection backoff: doubles from `initialMs` up to `maxMs`. */
  backoff?: { initialMs: number; maxMs: number };
}

/**
 * Keeps the active controller's advisory lock across a PostgreSQL outage. PostgreSQL releases a
 * session's lock when the session ends, so a restart, failover, network cut or
 * pg_terminate_backend takes the lock away without any other controller holding it. The keeper
 * then reconnects with capped exponential backoff and takes the lock again; only if another
 * controller holds it by then does it report `onTakenByAnother`. Nothing here stops LiteLLM: the
 * data plane does not need the ledger to answer requests.
 */
export class LockKeeper {
  private state: LockState = { held: true };
  private stopped = false;
  private readonly wake = new AbortController();
  private reconnecting: Promise<void> | undefined;

  constructor(
    private lock: LeaderLock,
    private readonly options: LockKeeperOptions,
  ) {}

  current(): LockState {
    return this.state;
  }

  /** The lock that is held, or undefined while it is being retaken. */
  heldLock(): LeaderLock | undefined {
    return this.state.held ? this.lock : undefined;
  }

  /** Called by the held lock's connection when it dies. */
  connectionLost(reason: string): void {
    if (this.stopped || !this.state.held) return;
    this.state = { held: false, since: new Date(), reason, attempts: 0 };
    this.options.onLost(reason);
    this.reconnecting = this.retake();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake.abort();
    await this.reconnecting;
    await this.lock.release();
  }

  private async retake(): Promise<void> {
    const { initialMs, maxMs } = this.options.backoff ?? { initialMs: 250, maxMs: 10_000 };
    await this.lock.release(); // the dead session's client
    let delay = initialMs;
    while (!this.stopped) {
      await sleep(delay, undefined, { signal: this.wake.signal }).catch(() => undefined);
      if (this.stopped || this.state.held) return;
      const lost = this.state;
      let next: LeaderLock | undefined;
      try {
        // A lock that is no longer held (released, or not yet taken) reports no loss.
        next = await LeaderLock.connect(this.options.url, (why) => this.connectionLost(why));
        if (await next.tryAcquire()) {
          await next.announce(this.options.self());
          if (this.stopped) {
            await next.release();
            return;
          }
          this.lock = next;
          this.state = { held: true };
          this.options.onRetaken(Date.now() - lost.since.getTime(), lost.attempts + 1);
          return;
        }
        const active = await next.active();
        await next.release();
        this.stopped = true;
        this.options.onTakenByAnother(active);
        return;
      } catch (error) {
        await next?.release();
        this.state = { ...lost, attempts: lost.attempts + 1, lastError: describeError(error) };
        delay = Math.min(delay * 2, maxMs);
      }
    }
  }
}
