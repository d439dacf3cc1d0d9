import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { descendantsOf, killAll, leftoverProcesses } from '../helpers/processes.js';
import { loadFactor, scaled } from '../helpers/timing.js';

/** The harness that keeps the suite honest on a loaded machine and leaves nothing running. */
describe('test harness', () => {
  it('finds every process a test started, grandchildren included, and stops them', async () => {
    // A shell that starts a grandchild and waits: what a LiteLLM launcher or pg_ctl looks like.
    const child = spawn('sh', ['-c', 'sleep 600 & sleep 600 & wait'], { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    let below = descendantsOf(process.pid);
    for (let i = 0; i < 50 && below.filter((p) => p.command.startsWith('sleep')).length < 2; i++) {
      await sleep(50);
      below = descendantsOf(process.pid);
    }
    const sleepers = below.filter((p) => p.command === 'sleep 600');
    expect(sleepers).toHaveLength(2);
    expect(below.map((p) => p.pid)).toContain(child.pid);

    await killAll(below);
    await exited;
    const alive = sleepers.filter((p) => {
      try {
        process.kill(p.pid, 0);
        return true;
      } catch {
        return false;
      }
    });
    expect(alive).toEqual([]);
  });

  it('never counts the test runner or its ancestors as left over', () => {
    const left = leftoverProcesses().map((p) => p.pid);
    expect(left).not.toContain(process.pid);
    expect(left).not.toContain(process.ppid);
  });

  it('scales timeouts by the measured LiteLLM cold start, never below the idle figures', () => {
    expect(loadFactor()).toBeGreaterThanOrEqual(1);
    expect(loadFactor()).toBeLessThanOrEqual(10);
    expect(scaled(60_000)).toBeGreaterThanOrEqual(60_000);
  });
});
