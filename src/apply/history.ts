import { appendFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { readIfExists, writeFileAtomically } from '../shared/fs.js';
import type { ApplyOutcome } from './controller.js';

/** One apply, reload or rollback as the dashboard and `GET /v1/applies` show it. */
export interface ApplyRecord {
  /** When it started (UTC, ISO 8601). */
  at: string;
  /** What asked for it: `start`, `api`, `api-reload`, `api-rollback`, `commit`, `watch`, … */
  trigger: string;
  outcome: ApplyOutcome;
  /** The generated commit live afterwards, when there is one. */
  commit?: string;
  durationMs: number;
  problems: string[];
}

/** How many records the file keeps; older ones are dropped when it is compacted. */
const KEEP = 200;

/**
 * The recent applies, newest last, kept in memory and appended to a JSON-lines file in the state
 * directory so a restarted controller still shows what happened before it. The file is compacted
 * to the last KEEP records at start; a line that does not parse (a crash mid-write) is skipped.
 */
export class ApplyHistory {
  private records: ApplyRecord[] = [];

  private constructor(private readonly file: string) {}

  static async open(stateDir: string): Promise<ApplyHistory> {
    const history = new ApplyHistory(path.join(stateDir, 'applies.jsonl'));
    const text = (await readIfExists(history.file)) ?? '';
    history.records = text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as ApplyRecord];
        } catch {
          return [];
        }
      })
      .slice(-KEEP);
    await writeFileAtomically(
      history.file,
      history.records.map((r) => `${JSON.stringify(r)}\n`).join(''),
    );
    return history;
  }

  async record(entry: ApplyRecord): Promise<void> {
    this.records.push(entry);
    if (this.records.length > KEEP) this.records.shift();
    await mkdir(path.dirname(this.file), { recursive: true });
    await appendFile(this.file, `${JSON.stringify(entry)}\n`);
  }

  /** The last `limit` records, newest first. */
  recent(limit: number): ApplyRecord[] {
    return this.records.slice(-limit).reverse();
  }

  /** The generated commit the last apply that ended with a live config made live. */
  liveCommit(): string | undefined {
    for (let i = this.records.length - 1; i >= 0; i -= 1) {
      const r = this.records[i]!;
      if (r.commit && ['applied', 'unchanged', 'rolled-back'].includes(r.outcome)) return r.commit;
    }
    return undefined;
  }
}
