import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { projectRoot } from '../../src/shared/paths.js';

export interface ProcessInfo {
  pid: number;
  ppid: number;
  session: number;
  command: string;
}

/** Every process this user can see (Linux /proc), with its parent, session and command line. */
export function processes(): ProcessInfo[] {
  const found: ProcessInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // "pid (comm) state ppid pgrp session …": comm may hold spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const command = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim();
      found.push({
        pid: Number(entry),
        ppid: Number(fields[1]),
        session: Number(fields[3]),
        command,
      });
    } catch {
      // gone between readdir and read
    }
  }
  return found;
}

/** Every living process below `root` (children, their children, …). */
export function descendantsOf(root: number): ProcessInfo[] {
  const all = processes();
  const below: ProcessInfo[] = [];
  let frontier = new Set([root]);
  while (frontier.size > 0) {
    const next = new Set<number>();
    for (const p of all) {
      if (frontier.has(p.ppid)) {
        below.push(p);
        next.add(p.pid);
      }
    }
    frontier = next;
  }
  return below.filter((p) => p.command !== ''); // zombies have no command line
}

/**
 * Processes the tests start (this checkout's LiteLLM, nginx, throw-away PostgreSQL clusters) that
 * are still running in this session and are not one of our own ancestors: what a test that failed
 * before its clean-up left behind. A Model Center started by hand in another terminal is another
 * session and is left alone.
 */
export function leftoverProcesses(): ProcessInfo[] {
  const all = processes();
  const self = all.find((p) => p.pid === process.pid);
  if (!self) return [];
  const ancestors = new Set<number>();
  for (let p: ProcessInfo | undefined = self; p; p = all.find((q) => q.pid === p.ppid)) {
    ancestors.add(p.pid);
    if (p.ppid <= 1) break;
  }
  const litellmDir = `${projectRoot()}/litellm/`;
  return all.filter(
    (p) =>
      p.session === self.session &&
      !ancestors.has(p.pid) &&
      (p.command.includes(litellmDir) ||
        /^nginx: master process/.test(p.command) ||
        p.command.includes('modelcenter-pg-')),
  );
}

/** SIGTERM, then SIGKILL for what is still there after 3 s. */
export async function killAll(targets: readonly ProcessInfo[]): Promise<void> {
  if (targets.length === 0) return;
  const signal = (sig: NodeJS.Signals): void => {
    for (const p of targets) {
      try {
        process.kill(p.pid, sig);
      } catch {
        // already gone
      }
    }
  };
  signal('SIGTERM');
  const deadline = Date.now() + 3_000;
  while (Date.now() < deadline && targets.some((p) => alive(p.pid))) await sleep(100);
  signal('SIGKILL');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
