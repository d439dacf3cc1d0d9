import { describeError } from './errors.js';
import { isDiskFull } from './disk.js';

/** The subset of a pino logger a FailureStreak writes to. */
export interface StreakLogger {
  info(details: Record<string, unknown>, message: string): void;
  warn(details: Record<string, unknown>, message: string): void;
  error?(details: Record<string, unknown>, message: string): void;
}

/** What a status shows of a repeating job that is failing now. */
export interface StreakStatus {
  failing: boolean;
  /** When the current run of failures began (ISO 8601). */
  since?: string;
  failedRuns?: number;
  error?: string;
  /** The failures are a full disk. */
  diskFull?: boolean;
}

/**
 * Logs a job retried every second or so once per kind of failure, not once per run: the first
 * failure (and a change of kind) is a warning, the repeats are counted, and the recovery is one
 * line with how many runs failed. A full disk is one kind whatever file it names.
 */
export class FailureStreak {
  private kind: string | undefined;
  private since: Date | undefined;
  private runs = 0;
  private last = '';

  constructor(
    private readonly log: StreakLogger,
    private readonly what: string,
    private readonly options: { level?: 'warn' | 'error'; now?: () => Date } = {},
  ) {}

  failed(error: unknown, details: Record<string, unknown> = {}): void {
    const message = describeError(error);
    const diskFull = isDiskFull(error);
    const kind = diskFull ? 'disk-full' : message;
    this.runs += 1;
    this.last = message;
    if (kind === this.kind) return;
    this.kind = kind;
    this.since ??= (this.options.now ?? (() => new Date()))();
    const write =
      this.options.level === 'error' && this.log.error
        ? this.log.error.bind(this.log)
        : this.log.warn.bind(this.log);
    write(
      { error: message, ...(diskFull && { diskFull: true }), ...details },
      diskFull
        ? `${this.what} failed: the disk is full; retrying, and logging again only when it works or fails otherwise`
        : `${this.what} failed; retrying, and logging again only when it works or fails otherwise`,
    );
  }

  succeeded(): void {
    if (this.kind === undefined) return;
    this.log.info(
      { failedRuns: this.runs, since: this.since?.toISOString() },
      `${this.what} works again`,
    );
    this.kind = undefined;
    this.since = undefined;
    this.runs = 0;
  }

  status(): StreakStatus {
    if (this.kind === undefined) return { failing: false };
    return {
      failing: true,
      ...(this.since && { since: this.since.toISOString() }),
      failedRuns: this.runs,
      error: this.last,
      ...(this.kind === 'disk-full' && { diskFull: true }),
    };
  }
}
