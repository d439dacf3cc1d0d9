import { setTimeout as sleep } from 'node:timers/promises';
import { readFile } from 'node:fs/promises';
import { readIfExists, writeFileAtomically } from '../shared/fs.js';

interface Entry {
  pid: number;
  /** A string the process's command line contains, so a recycled pid is never killed. */
  marker: string;
}

/**
 * The processes a strategy started (LiteLLM, nginx), in a file in the state directory. A controller
 * killed with -9 leaves them running and holding their ports; the next start stops them first.
 */
export class ChildRegistry {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly file: string) {}

  record(pid: number, marker: string): Promise<void> {
    return this.update((entries) => [...entries.filter((e) => e.pid !== pid), { pid, marker }]);
  }

  forget(pid: number): Promise<void> {
    return this.update((entries) => entries.filter((e) => e.pid !== pid));
  }

  /** Stops every recorded process that is still ours; returns their pids. */
  async reapOrphans(): Promise<number[]> {
    const reaped: number[] = [];
    for (const entry of await this.read()) {
      if (!(await isRunning(entry))) continue;
      process.kill(entry.pid, 'SIGTERM');
      const deadline = Date.now() + 10_000;
      while ((await isRunning(entry)) && Date.now() < deadline) await sleep(50);
      if (await isRunning(entry)) process.kill(entry.pid, 'SIGKILL');
      reaped.push(entry.pid);
    }
    await this.update(() => []);
    return reaped;
  }

  private update(change: (entries: Entry[]) => Entry[]): Promise<void> {
    const next = this.queue.then(async () => {
      await writeFileAtomically(this.file, `${JSON.stringify(change(await this.read()))}\n`);
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async read(): Promise<Entry[]> {
    const text = await readIfExists(this.file);
    if (!text) return [];
    try {
      return JSON.parse(text) as Entry[];
    } catch {
      return []; // a torn file from a crash: nothing trustworthy to reap
    }
  }
}

async function isRunning(entry: Entry): Promise<boolean> {
  const cmdline = await readFile(`/proc/${entry.pid}/cmdline`, 'utf8').catch(() => undefined);
  return cmdline !== undefined && cmdline.split('\0').join(' ').includes(entry.marker);
}
