import { rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertReceiver } from '../helpers/alerts.js';
import { killRecorded, recordedChildren } from '../helpers/children.js';
import { stateDirOf } from '../helpers/controller.js';
import { policyRepo } from '../helpers/repo.js';
import { serveEnv, serveInProcess, until, type ServingInProcess } from '../helpers/serve.js';
import { testKey } from '../helpers/secrets.js';
import { allFakes, newKeys, scenarioPolicies, startFakes, type Fakes } from '../helpers/stack.js';
import { coldStartMs } from '../helpers/timing.js';
import { trafficClient } from '../helpers/traffic.js';

/** Another program takes LiteLLM's port: it listens and never answers. */
async function squat(port: number): Promise<{ close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  // The killed LiteLLM's socket may linger for a moment: retry the bind until it is free.
  await until(
    () =>
      new Promise<true | undefined>((resolve) => {
        server.once('error', () => resolve(undefined));
        server.listen(port, '127.0.0.1', () => resolve(true));
      }),
    10_000,
  );
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

interface LogLine {
  msg: string;
  kind?: string;
  error?: string;
}

/**
 * LiteLLM keeps dying: after a kill -9 another program holds its port, so every supervised restart
 * fails. Each attempt must really try the config that was served (not give up on "nothing to
 * restart" after the first), back off, stop at the intensity limit and say so (log, alert,
 * `/readyz`, the given-up gauge); once the port is free an apply brings it back and the gauge clears.
 */
describe('supervision: a restart that keeps failing (port taken), restart strategy', () => {
  const keys = newKeys();
  const admin = testKey('mc-admin-');
  let fakes: Fakes | undefined;
  let repo: string | undefined;
  let alerts: Awaited<ReturnType<typeof alertReceiver>> | undefined;
  let serving: ServingInProcess | undefined;
  let squatter: { close(): Promise<void> } | undefined;
  let port = 0;
  let apiPort = 0;

  const api = (route: string, init: RequestInit & { token?: string } = {}) =>
    fetch(`http://127.0.0.1:${apiPort}${route}`, {
      ...init,
      headers: {
        ...(init.token && { authorization: `Bearer ${init.token}` }),
        ...(init.body !== undefined && { 'content-type': 'application/json' }),
      },
      signal: init.signal ?? AbortSignal.timeout(30_000),
    });
  const logLines = (): LogLine[] =>
    serving!
      .logs()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as LogLine);
  const gauge = async (): Promise<string | undefined> =>
    /modelcenter_supervision_given_up\{process="litellm"\} (\d)/.exec(
      await (await api('/metrics', { token: admin })).text(),
    )?.[1];

  beforeAll(async () => {
    fakes = await startFakes(keys);
    repo = await policyRepo(scenarioPolicies(fakes));
    alerts = await alertReceiver();
    let env: Record<string, string>;
    ({ env, port, apiPort } = await serveEnv(
      keys,
      { admin },
      {
        MODELCENTER_RELOAD_STRATEGY: 'restart',
        MODELCENTER_ALERT_WEBHOOK: alerts.url,
        MODELCENTER_SUPERVISION_MAX_RESTARTS: '2',
      },
    ));
    serving = serveInProcess(repo, env);
    await serving.started();
  });
  afterAll(async () => {
    await squatter?.close();
    serving?.stop();
    await serving?.exit;
    if (repo) await killRecorded(stateDirOf(repo));
    await alerts?.close();
    if (fakes) await Promise.all(allFakes(fakes).map((f) => f.close()));
    if (repo) await rm(repo, { recursive: true, force: true });
  });

  it('every attempt tries the served config, gives up at the limit and says so; an apply brings it back', async () => {
    const [victim] = (await recordedChildren(stateDirOf(repo!))).filter((c) =>
      c.marker.startsWith('--port'),
    );
    expect(victim).toBeDefined();
    process.kill(victim!.pid, 'SIGKILL');
    squatter = await squat(port);

    // Each attempt starts LiteLLM on the served config, which finds the port taken (twice: once
    // while the old one might still hold it, once after): four cold starts before giving up.
    await until(
      () => Promise.resolve(logLines().some((l) => l.kind === 'gave-up') || undefined),
      coldStartMs() * 8 + 60_000,
    );
    const failed = logLines().filter((l) => l.kind === 'restart-failed');
    expect(failed).toHaveLength(2);
    // Each a real attempt on the served config (before the fix the second failed at once on "no
    // config was served yet"); on a loaded machine the import may outlast LiteLLM's start limit
    // before it even tries to bind.
    for (const line of failed) {
      expect(line.error).toMatch(/address already in use|did not become ready/);
      expect(line.error).not.toMatch(/no config was served/);
    }
    const restarting = logLines().filter((l) => l.kind === 'restarting');
    expect(restarting.map((l) => (l as { delayMs?: number }).delayMs)).toEqual([0, 250]);

    const notReady = await api('/readyz');
    expect(notReady.status).toBe(503);
    expect(((await notReady.json()) as { reason: string }).reason).toMatch(
      /supervision gave up after 2 (failed )?restarts .*exited unexpectedly.*apply or POST \/v1\/reload/,
    );
    expect(await gauge()).toBe('1');
    await until(() => Promise.resolve(alerts!.received.length >= 2 || undefined), 10_000);
    expect(alerts!.received.map((a) => (a as { alert: { event: string } }).alert.event)).toEqual([
      'down',
      'gave-up',
    ]);

    // The port is free again: an apply reloads (not `unchanged`), and the incident is over.
    await squatter.close();
    squatter = undefined;
    const answer = await api('/v1/apply', {
      method: 'POST',
      token: admin,
      body: '{}',
      signal: AbortSignal.timeout(Math.round(coldStartMs() * 6 + 60_000)),
    });
    const report = (await answer.json()) as { outcome: string; problems: string[] };
    expect(report.problems).toEqual([]);
    expect(report.outcome).toBe('applied');
    expect((await api('/readyz')).status).toBe(200);
    expect(await gauge()).toBe('0');
    const client = trafficClient(`http://127.0.0.1:${port}`, keys.master);
    const reply = await client.chat.completions.create({
      model: 'fast',
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(reply.choices[0]?.message.content).toContain('reply from');
  }, 900_000);
});
