import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { Supervisor, type SupervisionEvent } from '../../src/reload/supervisor.js';

/** A supervisor whose recover() fails `failures` times, then succeeds. */
function supervisor(failures: number, options = {}) {
  const events: SupervisionEvent[] = [];
  let left = failures;
  let recovered = 0;
  const s = new Supervisor(
    { backoffInitialMs: 10, backoffMaxMs: 40, probeIntervalMs: 10, ...options },
    {
      recover: () => {
        if (left-- > 0) return Promise.reject(new Error('port still taken'));
        recovered++;
        return Promise.resolve({ url: 'http://127.0.0.1:4000' });
      },
      probe: () => Promise.resolve(),
    },
  );
  s.on((e) => events.push(e));
  return { s, events, recovered: () => recovered };
}

const kinds = (events: SupervisionEvent[]) => events.map((e) => e.kind);

async function settle(events: SupervisionEvent[], last: SupervisionEvent['kind']): Promise<void> {
  for (let i = 0; i < 200 && events.at(-1)?.kind !== last; i++) await sleep(10);
}

describe('supervisor: backoff, intensity limit, readiness', () => {
  it('a crash is one incident: down, one restart, served again; health says why meanwhile', async () => {
    const { s, events, recovered } = supervisor(0);
    s.down('litellm', 'exit', 'LiteLLM exited with code 137');
    s.down('litellm', 'exit', 'the same crash seen twice'); // one incident, not two
    expect(s.health()).toEqual({
      ready: false,
      reason: 'LiteLLM exited with code 137; restarting on the config it served',
    });
    await settle(events, 'restarted');
    expect(kinds(events)).toEqual(['down', 'restarting', 'restarted']);
    expect(recovered()).toBe(1);
    expect(s.health()).toEqual({ ready: true });
    s.stop();
  });

  it('failed restarts back off exponentially (capped) and stop at the intensity limit', async () => {
    const { s, events } = supervisor(100, { intensity: { restarts: 4, windowMs: 60_000 } });
    s.down('litellm', 'exit', 'crashed');
    await settle(events, 'gave-up');
    const delays = events.flatMap((e) => (e.kind === 'restarting' ? [e.delayMs] : []));
    expect(delays).toEqual([0, 10, 20, 40]);
    expect(events.at(-1)).toMatchObject({ kind: 'gave-up', restarts: 4 });
    expect(s.health().ready).toBe(false);
    expect(s.health().reason).toMatch(/gave up after 4 restarts/);
    // A reload that works ends it all: the count starts afresh, and it says so (the given-up
    // gauge and the log follow this event).
    s.resolved();
    expect(s.health()).toEqual({ ready: true });
    expect(events.at(-1)).toEqual({ kind: 'replaced-by-reload', process: 'litellm', gaveUp: true });
    s.stop();
  });

  it('an ordinary reload with nothing wrong says nothing', () => {
    const { s, events } = supervisor(0);
    s.resolved();
    expect(events).toEqual([]);
    s.stop();
  });

  it('restarts that fail slowly still back off and give up: failures in a row count, not only the window', async () => {
    // Each attempt takes longer than the window allows for (a LiteLLM cold start that finds its
    // port taken): the window alone would never fill, and the delay would never grow.
    const events: SupervisionEvent[] = [];
    const s = new Supervisor(
      { backoffInitialMs: 10, backoffMaxMs: 1000, intensity: { restarts: 4, windowMs: 30 } },
      {
        recover: async () => {
          await sleep(40);
          throw new Error('address already in use');
        },
        probe: () => Promise.resolve(),
      },
    );
    s.on((e) => events.push(e));
    s.down('litellm', 'exit', 'LiteLLM exited with code 137');
    for (let i = 0; i < 300 && events.at(-1)?.kind !== 'gave-up'; i++) await sleep(10);
    const restarting = events.flatMap((e) => (e.kind === 'restarting' ? [e] : []));
    expect(restarting.map((e) => e.delayMs)).toEqual([0, 10, 20, 40]);
    expect(restarting.map((e) => e.attempt)).toEqual([1, 2, 3, 4]);
    expect(events.at(-1)).toMatchObject({ kind: 'gave-up', restarts: 4 });
    expect(s.health().reason).toMatch(
      /gave up after 4 failed restarts in a row \(LiteLLM exited with code 137\)/,
    );
    s.stop();
  });

  it('readiness failing N probes in a row counts as down; a reload in progress is not probed', async () => {
    const events: SupervisionEvent[] = [];
    let answering = true;
    const s = new Supervisor(
      { probeIntervalMs: 10, readinessFailures: 3, backoffInitialMs: 10 },
      {
        recover: () => {
          answering = true;
          return Promise.resolve({ url: 'http://127.0.0.1:4000' });
        },
        probe: () => (answering ? Promise.resolve() : Promise.reject(new Error('timeout'))),
      },
    );
    s.on((e) => events.push(e));
    s.watch();
    await s.exclusive(async () => {
      answering = false;
      await sleep(80); // a reload: probes wait
      answering = true;
    });
    expect(events).toEqual([]);
    answering = false;
    await settle(events, 'restarted');
    expect(events[0]).toMatchObject({
      kind: 'down',
      cause: 'unready',
      reason: 'readiness failed 3 times in a row: timeout',
    });
    expect(kinds(events)).toEqual(['down', 'restarting', 'restarted']);
    s.stop();
  });
});
