import { open, readFile, rm, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { ModelCenterError } from '../shared/errors.js';

export class ApplyBusyError extends ModelCenterError {}

/**
 * One mutation at a time. Inside a process, callers queue; across processes an exclusive lock
 * file refuses a second controller with a clear answer. A lock left by a dead process is taken over.
 */
export class MutationLock {
  private tail: Promise<unknown> = Promise.resolve();
  private pending = 0;

  constructor(private readonly file: string) {}

  /** Runs `work` after every earlier call in this process has finished, holding the file lock. */
  run<T>(work: () => Promise<T>): Promise<T> {
    this.pending++;
    const next = this.tail.then(async () => {
      await this.acquire();
      try {
        return await work();
      } finally {
        await rm(this.file, { force: true });
      }
    });
    this.tail = next.catch(() => undefined);
    void this.tail.then(() => this.pending--);
    return next;
  }

  /** A mutation is running or queued in this process. */
  get busy(): boolean {
    return this.pending > 0;
  }

  /** Resolves when every call queued so far has finished (whatever its outcome). */
  async settled(): Promise<void> {
    await this.tail;
  }

  private async acquire(): Promise<void> {
    await mkdir(path.dirname(this.file), { recursive: true });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const handle = await open(this.file, 'wx');
        try {
          await handle.writeFile(String(process.pid));
        } catch (error) {
          // A full disk: no lock left behind (nor an open descriptor); the mutation is refused.
          await rm(this.file, { force: true });
          throw error;
        } finally {
          await handle.close();
        }
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const holder = Number((await readFile(this.file, 'utf8').catch(() => '')).trim());
        if (holder && holder !== process.pid && isAlive(holder)) {
          throw new ApplyBusyError(
            `another apply is running (pid ${holder}); wait for it to finish, or stop that controller`,
          );
        }
        await rm(this.file, { force: true }); // stale: its process is gone
      }
    }
    throw new ApplyBusyError(`could not take the apply lock ${this.file}`);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
