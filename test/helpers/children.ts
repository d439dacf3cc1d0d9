import { readFile } from 'node:fs/promises';
import path from 'node:path';

export interface ChildEntry {
  pid: number;
  marker: string;
}

/** The processes a strategy recorded in `<stateDir>/children.json` (LiteLLM: `--port N`; nginx: its prefix). */
export async function recordedChildren(stateDir: string): Promise<ChildEntry[]> {
  const text = await readFile(path.join(stateDir, 'children.json'), 'utf8').catch(() => '[]');
  return JSON.parse(text) as ChildEntry[];
}

/** The process is alive and still ours (a zombie or a recycled pid is not). */
export async function alive(entry: ChildEntry): Promise<boolean> {
  const cmdline = await readFile(`/proc/${entry.pid}/cmdline`, 'utf8').catch(() => '');
  return cmdline.split('\0').join(' ').includes(entry.marker);
}

/** Test clean-up: SIGKILL every recorded process that is still ours. */
export async function killRecorded(stateDir: string): Promise<void> {
  for (const entry of await recordedChildren(stateDir)) {
    if (!(await alive(entry))) continue;
    try {
      process.kill(entry.pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}
