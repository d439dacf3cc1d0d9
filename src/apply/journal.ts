import { readFile, rm } from 'node:fs/promises';
import { writeFileAtomically } from '../shared/fs.js';

/** What an apply was doing, written before each step so a restart after a crash can converge. */
export interface JournalEntry {
  phase: 'committing' | 'reloading';
  kind: 'apply' | 'rollback';
  /** The generated commit being made live (set from the reloading phase on). */
  commit?: string;
  /**
   * sha256 of the config being written (committing phase): a file on disk with this hash after a
   * crash was written by the interrupted apply, not by hand, and is put back before drift is judged.
   */
  configSha256?: string;
  startedAt: string;
  pid: number;
}

export class Journal {
  constructor(private readonly file: string) {}

  async read(): Promise<JournalEntry | undefined> {
    try {
      return JSON.parse(await readFile(this.file, 'utf8')) as JournalEntry;
    } catch {
      return undefined;
    }
  }

  async write(entry: JournalEntry): Promise<void> {
    await writeFileAtomically(this.file, JSON.stringify(entry));
  }

  async clear(): Promise<void> {
    await rm(this.file, { force: true });
  }
}
