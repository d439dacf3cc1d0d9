import { appendFile, mkdir, readFile, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { describeError } from '../shared/errors.js';
import {
  CLEANED_REASONS,
  DEAD_LETTER_REASONS,
  excerpt,
  type CleanedReason,
  type DeadLetterReason,
} from './clean.js';

/** The subset of a pino logger the spend subsystem uses. */
export interface ProblemLogger {
  warn(details: Record<string, unknown>, message: string): void;
}

/** A spool line or ingest payload the ledger could not store, as the dead-letter file keeps it. */
export interface DeadLetter {
  reason: DeadLetterReason;
  /** What exactly is wrong, for a person. */
  detail: string;
  /**
   * Where it came from: `spool` (with file and byte offset), `api` (POST /v1/spend/ingest) or
   * `spend-logs` (the backfill from LiteLLM's database, with the LiteLLM and the row's request id).
   */
  source: 'spool' | 'api' | 'spend-logs';
  file?: string;
  offset?: number;
  /** A spend-logs row's request_id (with `file` naming the LiteLLM it was read from). */
  requestId?: string;
  /** The original line (or payload as JSON), cut to MAX_LINE_CHARS. */
  line: string;
  /** Request records it stands for, when not 1 (a `spool-lost` marker line). */
  records?: number;
}

export type ProblemOutcome = 'cleaned' | 'dead-lettered';

/** What the status shows of the ledger's bad input since the controller started. */
export interface ProblemSummary {
  /** Records stored after cleaning, by what was cleaned (one record may count under several). */
  cleaned: Partial<Record<CleanedReason, number>>;
  /** Lines and payloads not stored, by reason (each in the dead-letter file once). */
  deadLettered: Partial<Record<DeadLetterReason, number>>;
  /** The dead-letter file, when there is one. */
  deadLetterFile?: string;
  /** The most recent dead letter: when, why and where. */
  lastDeadLetter?: { at: string; reason: DeadLetterReason; detail: string; file?: string };
}

export interface DeadLetterBoxOptions {
  /** Directory of the dead-letter file; without it dead letters are only counted and logged. */
  dir?: string;
  /** The file is moved to `.1` (replacing the previous one) when it would pass this size. */
  maxBytes?: number;
  log?: ProblemLogger;
  /** Every count, as it happens (the controller's /metrics). */
  onCount?: (outcome: ProblemOutcome, reason: CleanedReason | DeadLetterReason, n: number) => void;
  now?: () => Date;
}

/** Characters of an original line kept in the dead-letter file. */
export const MAX_LINE_CHARS = 64 * 1024;
const DEFAULT_MAX_BYTES = 10 * 1024 * 1024;
/** Spool lines remembered as written, newest kept. */
const MAX_KEYS = 100_000;
export const DEAD_LETTER_FILE = 'dead-letter.jsonl';

/**
 * The ledger's dead letters: a JSON-lines file in the state directory (bounded: one file of at
 * most maxBytes plus the previous one), counters by reason, and one warning per kind of problem.
 *
 * A spool line is written here before the read position past it is committed, and carries its
 * file and offset: when a crash comes between the two, the line is read again after the restart
 * and recognised, so each line is in the file once. Counts are taken only after the commit.
 */
export class DeadLetterBox {
  readonly file: string | undefined;
  private readonly cleaned = new Map<CleanedReason, number>();
  private readonly dead = new Map<DeadLetterReason, number>();
  private readonly warned = new Set<string>();
  private last: ProblemSummary['lastDeadLetter'];
  /** `file:offset` of the spool lines in the dead-letter files (read on first use). */
  private written: Set<string> | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly options: DeadLetterBoxOptions = {}) {
    this.file = options.dir ? path.join(options.dir, DEAD_LETTER_FILE) : undefined;
  }

  /**
   * Appends dead letters to the file (a spool line or spend-logs row already there is skipped).
   * Resolves when they are written, with the letters that were new (all of them without a file,
   * or when it cannot be written: a failure to write is logged and does not stop ingestion).
   */
  write(letters: readonly DeadLetter[]): Promise<readonly DeadLetter[]> {
    if (letters.length === 0 || !this.file) return Promise.resolve(letters);
    const next = this.writing.then(() => this.append(letters));
    this.writing = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }

  /** Counts problems whose lines were committed past (exactly once per line). */
  count(
    outcome: 'cleaned',
    reason: CleanedReason,
    n: number,
    where?: Record<string, unknown>,
  ): void;
  count(
    outcome: 'dead-lettered',
    letter: DeadLetter,
    n?: number,
    where?: Record<string, unknown>,
  ): void;
  count(
    outcome: ProblemOutcome,
    what: CleanedReason | DeadLetter,
    n = 1,
    where: Record<string, unknown> = {},
  ): void {
    if (n <= 0) return;
    if (outcome === 'cleaned') {
      const reason = what as CleanedReason;
      this.cleaned.set(reason, (this.cleaned.get(reason) ?? 0) + n);
      this.options.onCount?.(outcome, reason, n);
      this.warnOnce(`cleaned:${reason}`, { reason, ...where }, CLEANED_MESSAGES[reason]);
      return;
    }
    const letter = what as DeadLetter;
    this.dead.set(letter.reason, (this.dead.get(letter.reason) ?? 0) + n);
    this.options.onCount?.(outcome, letter.reason, n);
    this.last = {
      at: (this.options.now?.() ?? new Date()).toISOString(),
      reason: letter.reason,
      detail: letter.detail,
      ...(letter.file !== undefined && { file: letter.file }),
    };
    this.warnOnce(
      `dead:${letter.reason}`,
      {
        reason: letter.reason,
        detail: letter.detail,
        source: letter.source,
        ...(letter.file !== undefined && { file: letter.file, offset: letter.offset }),
        deadLetterFile: this.file ?? null,
        ...where,
      },
      `spend record not stored (${letter.reason}); kept in the dead-letter file — later ones of this kind are counted (status, /metrics), not logged`,
    );
  }

  summary(): ProblemSummary {
    return {
      cleaned: Object.fromEntries(this.cleaned),
      deadLettered: Object.fromEntries(this.dead),
      ...(this.file !== undefined && { deadLetterFile: this.file }),
      ...(this.last !== undefined && { lastDeadLetter: this.last }),
    };
  }

  private warnOnce(kind: string, details: Record<string, unknown>, message: string): void {
    if (this.warned.has(kind)) return;
    this.warned.add(kind);
    this.options.log?.warn(details, message);
  }

  private async append(letters: readonly DeadLetter[]): Promise<readonly DeadLetter[]> {
    const file = this.file!;
    const fresh: DeadLetter[] = [];
    try {
      const written = await this.writtenKeys();
      const at = (this.options.now?.() ?? new Date()).toISOString();
      const maxBytes = this.options.maxBytes ?? DEFAULT_MAX_BYTES;
      await mkdir(path.dirname(file), { recursive: true });
      let size = (await stat(file).catch(() => undefined))?.size ?? 0;
      let text = '';
      for (const letter of letters) {
        const key = keyOf(letter);
        if (key !== undefined) {
          if (written.has(key)) continue;
          written.add(key);
          // Only lines past a committed read position can come again: old keys can go.
          if (written.size > MAX_KEYS) written.delete(written.values().next().value!);
        }
        fresh.push(letter);
        const { line, truncated } = excerpt(letter.line, MAX_LINE_CHARS);
        const entry = `${JSON.stringify({
          at,
          reason: letter.reason,
          detail: letter.detail,
          source: letter.source,
          ...(letter.file !== undefined && { file: letter.file, offset: letter.offset }),
          ...(letter.requestId !== undefined && { requestId: letter.requestId }),
          line,
          ...(truncated !== undefined && { lineChars: truncated }),
        })}\n`;
        const bytes = Buffer.byteLength(entry);
        if (size + Buffer.byteLength(text) + bytes > maxBytes && size + text.length > 0) {
          // Full: what is pending goes in, then the file becomes the previous one.
          if (text !== '') await appendFile(file, text);
          await rename(file, `${file}.1`);
          size = 0;
          text = '';
        }
        text += entry;
      }
      if (text !== '') await appendFile(file, text);
      return fresh;
    } catch (error) {
      this.warnOnce(
        'write-failed',
        { error: describeError(error), file },
        'cannot write the spend dead-letter file; dead letters are counted but not kept — check the state directory',
      );
      return letters;
    }
  }

  private async writtenKeys(): Promise<Set<string>> {
    if (this.written) return this.written;
    const keys = new Set<string>();
    for (const name of [`${this.file!}.1`, this.file!]) {
      const text = await readFile(name, 'utf8').catch(() => '');
      for (const line of text.split('\n')) {
        if (!line.includes('"source":"spool"') && !line.includes('"source":"spend-logs"')) continue;
        try {
          const key = keyOf(JSON.parse(line) as DeadLetter);
          if (key !== undefined) keys.add(key);
        } catch {
          // a line cut by a crash: its spool line is written again
        }
      }
    }
    this.written = keys;
    return keys;
  }
}

/** What makes a letter the same one read again: a spool line's place, a spend-logs row's id. */
function keyOf(
  letter: Pick<DeadLetter, 'source' | 'file' | 'offset' | 'requestId'>,
): string | undefined {
  if (letter.source === 'spend-logs' && letter.requestId !== undefined)
    return `spend-logs ${letter.file ?? ''} ${letter.requestId}`;
  return letter.source === 'spool' && letter.file !== undefined && letter.offset !== undefined
    ? `${letter.file}:${letter.offset}`
    : undefined;
}

const CLEANED_MESSAGES: Record<CleanedReason, string> = {
  nul: 'spend record held NUL characters; removed and stored — later ones are counted (status, /metrics), not logged',
  surrogate:
    'spend record held lone UTF-16 surrogates; replaced by U+FFFD and stored — later ones are counted, not logged',
  'long-value':
    'spend record held an over-long text value; cut and stored — later ones are counted, not logged',
  cost: 'spend record had a negative, non-finite or absurd cost; stored with the cost unknown (0, flagged "cost") — later ones are counted, not logged',
  tokens:
    'spend record had a negative, non-finite or out-of-range token count; stored as 0, flagged "tokens" — later ones are counted, not logged',
  time: 'spend record had an end or first-token time out of range; stored without it, flagged "time" — later ones are counted, not logged',
};

/** Every label pair of the problem counter, so /metrics shows 0 rather than nothing. */
export const PROBLEM_LABELS: readonly [ProblemOutcome, CleanedReason | DeadLetterReason][] = [
  ...CLEANED_REASONS.map((r) => ['cleaned', r] as [ProblemOutcome, CleanedReason]),
  ...DEAD_LETTER_REASONS.map((r) => ['dead-lettered', r] as [ProblemOutcome, DeadLetterReason]),
];
