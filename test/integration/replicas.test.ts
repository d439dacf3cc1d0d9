import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { alive, killRecorded, recordedChildren } from '../helpers/children.js';
import { stateDirOf } from '../helpers/controller.js';
import { commitPolicies, policyRepo } from '../helpers/repo.js';
import { serveEnv, serveInProcess, until, type ServingInProcess } from '../helpers/serve.js';
import { testKey } from '../helpers/secrets.js';
import { allFakes, newKeys, scenarioPolicies, startFakes, type Fakes } from '../helpers/stack.js';
import { scaled } from '../helpers/timing.js';

// Three LiteLLMs start at once, twice (start-up and an apply), and one more after a kill -9.
vi.setConfig({ testTimeout: scaled(420_000), hookTimeout: scaled(300_000) });

interface Verified {
  outcome: string;
  verify?: { ok: boolean; instances: { url: string; ready: boolean; missing: string[] }[] };
}

describe('MODELCENTER_REPLICAS=3: three LiteLLM replicas behind the nginx front', () => {
  const keys = newKeys();
  const admin = testKey('mc-admin-');
  let fakes: Fakes | undefined;
  let repo: string | undefined;
  let serving: ServingInProcess | undefined;
  let port = 0;
  let apiPort = 0;

  const api = async (method: string, route: string): Promise<Response> =>
    fetch(`http://127.0.0.1:${apiPort}${route}`, {
      method,
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      ...(method === 'POST' && { body: '{}' }),
      signal: AbortSignal.timeout(scaled(300_000)),
    });
  const litellms = async (): Promise<{ pid: number; marker: string }[]> =>
    (await recordedChildren(stateDirOf(repo!))).filter((c) => c.marker.startsWith('--port'));

  beforeAll(async () => {
    fakes = await startFakes(keys);
    repo = await policyRepo(scenarioPolicies(fakes));
    let env: Record<string, string>;
    ({ env, port, apiPort } = await serveEnv(
      keys,
      { admin },
      { MODELCENTER_RELOAD_STRATEGY: 'blue-green', MODELCENTER_REPLICAS: '3' },
    ));
    serving = serveInProcess(repo, env);
    await serving.started();
  });
  afterAll(async () => {
    serving?.stop();
    await serving?.exit;
    if (repo) await killRecorded(stateDirOf(repo));
    if (fakes) await Promise.all(allFakes(fakes).map((f) => f.close()));
    if (repo) await rm(repo, { recursive: true, force: true });
  });

  it('an apply verifies all three (and the front); kill -9 of one replica is healed', async () => {
    const before = await litellms();
    expect(before).toHaveLength(3);
    // A policy change: three new replicas, each verified before the front switches to them.
    const policies = scenarioPolicies(fakes!).replace(
      'input_per_mtok: 0.15',
      'input_per_mtok: 0.16',
    );
    expect(policies).not.toBe(scenarioPolicies(fakes!));
    await commitPolicies(repo!, policies, 'policies: a price change');
    // The commit trigger may apply it first: then this apply finds it live.
    const applied = (await (await api('POST', '/v1/apply')).json()) as Verified;
    expect(['applied', 'unchanged']).toContain(applied.outcome);
    if (applied.outcome === 'applied') {
      expect(applied.verify?.ok).toBe(true);
      expect(applied.verify?.instances).toHaveLength(4);
    } else {
      expect(serving!.logs()).toMatch(/"trigger":"policy-commit","outcome":"applied"/);
    }
    const replaced = await litellms();
    expect(replaced).toHaveLength(3);
    expect(replaced.some((c) => before.some((b) => b.pid === c.pid))).toBe(false);
    const status = (await (await api('GET', '/v1/status')).json()) as {
      instances: { url: string; ready: boolean; missing: string[]; unexpected: string[] }[];
    };
    const urls = status.instances.map((i) => i.url);
    expect(urls).toContain(`http://127.0.0.1:${port}`);
    expect(new Set(urls).size).toBe(4); // the front and three replicas
    for (const instance of status.instances) {
      expect(instance, instance.url).toMatchObject({ ready: true, missing: [], unexpected: [] });
    }
    const replicas = await litellms();
    expect(replicas).toHaveLength(3);

    // kill -9 of one replica: supervision replaces it; the other two keep serving meanwhile.
    const victim = replicas[0]!;
    process.kill(victim.pid, 'SIGKILL');
    const answer = await fetch(`http://127.0.0.1:${port}/v1/models`, {
      headers: { authorization: `Bearer ${keys.master}` },
    });
    expect(answer.status).toBe(200);
    await until(async () => {
      const now = await litellms();
      return now.length === 3 && !now.some((c) => c.pid === victim.pid) ? true : undefined;
    }, 240_000);
    expect(await alive(victim)).toBe(false);
    await until(async () => ((await api('GET', '/readyz')).status === 200 ? true : undefined));
    const healed = (await (await api('GET', '/v1/status')).json()) as {
      instances: { url: string; ready: boolean; missing: string[] }[];
    };
    expect(healed.instances).toHaveLength(4);
    for (const instance of healed.instances) expect(instance.ready, instance.url).toBe(true);
    expect(serving!.logs()).toContain('supervised process is serving again');
  });
});
