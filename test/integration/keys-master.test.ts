import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runCli } from '../../src/cli/run.js';
import { fingerprint } from '../../src/keys/audit.js';
import { leaks } from '../helpers/keys.js';
import { policyRepo } from '../helpers/repo.js';
import { testKey } from '../helpers/secrets.js';
import { serveEnv, serveInProcess, until, type ServingInProcess } from '../helpers/serve.js';
import { allFakes, newKeys, scenarioPolicies, startFakes, type Fakes } from '../helpers/stack.js';
import { scaled } from '../helpers/timing.js';
import { underTraffic } from '../helpers/traffic.js';

// Serve starts LiteLLM, the rotation starts another behind the nginx front.
vi.setConfig({ testTimeout: scaled(360_000) });

describe('rotating the master key in configuration mode (blue-green, real nginx and LiteLLM)', () => {
  const keys = newKeys();
  const adminToken = testKey('mc-admin-');
  let fakes: Fakes;
  let repo: string;
  let deliveryDir: string;
  let service: ServingInProcess | undefined;

  beforeAll(async () => {
    fakes = await startFakes(keys);
    deliveryDir = await mkdtemp(path.join(tmpdir(), 'mc-delivery-'));
    // Long enough to see both keys work on a loaded machine.
    const grace = `${Math.ceil(scaled(12_000) / 1000)}s`;
    // Background probes on: health reads LiteLLM's /health with the master key of the moment.
    repo = await policyRepo(
      `${scenarioPolicies(fakes)}\nhealth:\n  probe_interval: 3s\n  demotion: { enabled: false }\nmaster_key:\n  grace: ${grace}\n  deliver:\n    file: ${path.join(deliveryDir, 'master.key')}\n`,
    );
  });
  afterAll(async () => {
    if (service) {
      service.stop();
      await service.exit;
    }
    await Promise.all(allFakes(fakes).map((f) => f.close()));
    await rm(repo, { recursive: true, force: true });
    await rm(deliveryDir, { recursive: true, force: true });
  });

  it('the new key works at once, the old one until the grace period ends and is refused after it', async () => {
    const { env, port, apiPort } = await serveEnv(
      keys,
      { admin: adminToken },
      { MODELCENTER_RELOAD_STRATEGY: 'blue-green' },
    );
    service = serveInProcess(repo, env);
    await service.started();
    const api = `http://127.0.0.1:${apiPort}`;
    const answers: string[] = [];
    const call = async (method: 'GET' | 'POST', route: string, body?: unknown) => {
      const response = await fetch(`${api}${route}`, {
        method,
        headers: {
          authorization: `Bearer ${adminToken}`,
          ...(body !== undefined && { 'content-type': 'application/json' }),
        },
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
      const text = await response.text();
      return { status: response.status, text, json: JSON.parse(text) as Record<string, unknown> };
    };
    const client = (key: string): OpenAI =>
      new OpenAI({
        baseURL: `http://127.0.0.1:${port}/v1`,
        apiKey: key,
        maxRetries: 0,
        timeout: scaled(30_000),
      });
    const ask = async (key: string): Promise<string> => {
      try {
        const answer = await client(key).chat.completions.create({
          model: 'fast',
          messages: [{ role: 'user', content: 'hi' }],
        });
        return answer.choices[0]?.message.content ?? 'empty';
      } catch (error) {
        return `failed: ${(error as { status?: number }).status ?? String(error)}`;
      }
    };
    expect(await ask(keys.master)).toMatch(/reply from/);

    // Clients keep using the old key throughout the rotation: none of their requests fails.
    const rotation = await underTraffic(client(keys.master), () =>
      call('POST', '/v1/keys/master/rotate', {}),
    );
    answers.push(rotation.result.text);
    expect(rotation.result.status, rotation.result.text).toBe(200);
    expect(rotation.failures).toEqual([]);
    expect(rotation.sent).toBeGreaterThan(5);
    const report = rotation.result.json;
    expect(report.oldFingerprint).toBe(fingerprint(keys.master));
    expect(report.delivered).toEqual([`file:${path.join(deliveryDir, 'master.key')}`, 'api-read']);

    // Delivered: a 0600 file, and one authenticated API read (then it is gone).
    const file = path.join(deliveryDir, 'master.key');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const newKey = (await readFile(file, 'utf8')).trim();
    expect(fingerprint(newKey)).toBe(report.newFingerprint);
    // HEAD (a monitor, curl -I) only looks: it answered 200 and spent the one read before.
    const head = await fetch(`${api}/v1/keys/master/delivery`, {
      method: 'HEAD',
      headers: { authorization: `Bearer ${adminToken}` },
    });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    const read = await call('GET', '/v1/keys/master/delivery');
    expect(read.status).toBe(200);
    expect(read.json.value).toBe(newKey);
    const again = await call('GET', '/v1/keys/master/delivery');
    answers.push(again.text);
    expect(again.status).toBe(404);
    const headAgain = await fetch(`${api}/v1/keys/master/delivery`, {
      method: 'HEAD',
      headers: { authorization: `Bearer ${adminToken}` },
    });
    expect(headAgain.status).toBe(404);

    // The new key works at once; the old one still works during the grace period.
    expect(await ask(newKey)).toMatch(/reply from/);
    expect(await ask(keys.master)).toMatch(/reply from/);
    // The front holds the old key only in a file only the controller's user can read.
    const nginxConf = path.join(repo, '.modelcenter', 'nginx', 'nginx.conf');
    expect((await stat(nginxConf)).mode & 0o777).toBe(0o600);

    // The grace period ends: the old key is refused (LiteLLM without a database answers a key
    // that is not its master key with 400 "No connected db", or 401), the new one keeps working.
    await until(
      async () => (/^failed: (400|401)$/.test(await ask(keys.master)) ? true : undefined),
      120_000,
    );
    expect(await ask(newKey)).toMatch(/reply from/);
    expect(await readFile(nginxConf, 'utf8')).not.toContain(keys.master);

    // The retire step records itself just after the front stopped accepting the old key.
    const auditCli = await until(async () => {
      let out = '';
      const code = await runCli(
        ['keys', 'audit', '--subject', 'master-key'],
        { stdout: (t) => (out += t), stderr: (t) => (out += t), cwd: repo },
        { MODELCENTER_URL: api, MODELCENTER_TOKEN: adminToken },
      );
      return code === 0 && /retire\s+ok/.test(out) ? out : undefined;
    }, 30_000);
    answers.push(auditCli);
    const steps = auditCli
      .trim()
      .split('\n')
      .map((line) => line.split(/\s+/).slice(3, 6).join(' '));
    expect(steps).toEqual([
      'master-key store ok',
      'master-key swap ok',
      'master-key deliver ok',
      'master-key grace ok',
      'master-key api-read ok',
      'master-key retire ok',
    ]);
    const status = await call('GET', '/v1/status');
    answers.push(status.text);
    // Health still reads LiteLLM's probes with the rotated key (it kept the first one: 401).
    const health = await call('POST', '/v1/health/evaluate');
    answers.push(health.text);
    expect(health.status, health.text).toBe(200);
    expect(health.json.probesError).toBeUndefined();

    service.stop();
    expect(await service.exit).toBe(0);
    const logs = service.logs() + service.stderr();
    service = undefined;
    // The new key left only through its delivery (the file and the one read); nowhere else.
    expect(
      leaks(
        { 'old master key': keys.master, 'new master key': newKey, 'admin token': adminToken },
        { logs, 'API and CLI answers': answers.join('\n') },
        repo,
      ),
    ).toEqual([]);
  });
});
