import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { healthPolicies, startHealthFakes, type HealthFakes } from '../helpers/health-scenario.js';
import { policyRepo } from '../helpers/repo.js';
import { serveEnv, serveInProcess, until, type ServingInProcess } from '../helpers/serve.js';
import { newKeys } from '../helpers/stack.js';
import { scaled } from '../helpers/timing.js';

vi.setConfig({ testTimeout: scaled(300_000), hookTimeout: scaled(120_000) });

interface Report {
  providers: {
    provider: string;
    condition: string;
    why: string;
    probes?: { healthy: number; unhealthy: number };
    deployments: { deployment: string; probe?: { healthy: boolean; error?: string } }[];
  }[];
}

/**
 * LiteLLM's background health checks, compiled from `health.probe_interval` and read through its
 * `/health`: the real service and LiteLLM, with no traffic at all. One probe per model (the
 * profile's copies are not probed); an upstream that fails its probes makes its provider failing.
 */
describe('health: LiteLLM background probes', () => {
  const keys = newKeys();
  const token = 'mc-admin-token-for-probe-tests-0123456789';
  let fakes: HealthFakes;
  let repo: string;
  let service: ServingInProcess;
  let apiPort: number;

  beforeAll(async () => {
    fakes = await startHealthFakes(keys);
    repo = await policyRepo(
      healthPolicies(
        fakes,
        `  probe_interval: 3s
  evaluate_every: 1s
  demotion: { enabled: false }`,
        '  chat: { requires: [chat], prefer: [quality] }',
      ),
    );
    const served = await serveEnv(keys, { admin: token }, { MODELCENTER_POLL_SECONDS: '0.5' });
    apiPort = served.apiPort;
    service = serveInProcess(repo, served.env);
    await service.started();
  });
  afterAll(async () => {
    service?.stop();
    await service?.exit;
    await Promise.all([fakes?.alpha.close(), fakes?.beta.close()]);
    if (repo) await rm(repo, { recursive: true, force: true });
  });

  const report = async (): Promise<Report> =>
    (await (
      await fetch(`http://127.0.0.1:${apiPort}/v1/health/providers`, {
        headers: { authorization: `Bearer ${token}` },
      })
    ).json()) as Report;
  const probeOf = (r: Report, provider: string, deployment: string) =>
    r.providers
      .find((p) => p.provider === provider)
      ?.deployments.find((d) => d.deployment === deployment)?.probe;

  it('shows each model probed once, and a provider whose probes fail as failing', async () => {
    const healthy = await until(async () => {
      const r = await report();
      return probeOf(r, 'alpha', 'alpha-chat')?.healthy && probeOf(r, 'beta', 'beta-chat')?.healthy
        ? r
        : undefined;
    }, 120_000);
    // The profile's copies carry disable_background_health_check: no probe of their own.
    expect(probeOf(healthy, 'alpha', 'chat/alpha-chat')).toBeUndefined();
    expect(healthy.providers.find((p) => p.provider === 'alpha')?.probes).toEqual({
      healthy: 1,
      unhealthy: 0,
    });
    // The probes are real requests to the upstream (no traffic was sent by the test).
    expect(fakes.alpha.generations().length).toBeGreaterThan(0);

    fakes.alpha.setFault({ kind: 'status', status: 500 });
    const failing = await until(async () => {
      const r = await report();
      return r.providers.find((p) => p.provider === 'alpha')?.condition === 'failing'
        ? r
        : undefined;
    }, 120_000);
    const alpha = failing.providers.find((p) => p.provider === 'alpha')!;
    expect(alpha.why).toMatch(/^every background probe failed \(1\)/);
    expect(probeOf(failing, 'alpha', 'alpha-chat')).toMatchObject({ healthy: false });
    expect(probeOf(failing, 'alpha', 'alpha-chat')?.error).not.toContain(keys.openai);
    expect(failing.providers.find((p) => p.provider === 'beta')?.condition).toBe('recovered');
  });
});
