import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { fingerprint } from '../../src/keys/audit.js';
import { startKeys, type KeysSubsystem } from '../../src/keys/subsystem.js';
import type { KeyAlert } from '../../src/keys/schedule.js';
import { createLogger } from '../../src/log/logger.js';
import { SecretValues } from '../../src/log/redact.js';
import { webhookSink } from '../../src/spend/webhook.js';
import { openDatabase, type Database } from '../../src/store/db.js';
import { migrate } from '../../src/store/migrate.js';
import type { FakeUpstream } from '../fakes/core.js';
import { startOpenAIFake } from '../fakes/openai.js';
import { alertReceiver } from '../helpers/alerts.js';
import { testKey } from '../helpers/secrets.js';
import { scaled } from '../helpers/timing.js';

vi.setConfig({ testTimeout: scaled(60_000) });

/**
 * The key-rotation job without a LiteLLM to swap into: a due rotation gets its new value from the
 * issue hook and passes the provider's probe, then cannot go live — so it must change nothing,
 * alert, and back off; a burst of 401s in the ledger raises an anomaly alert naming the key.
 */
describe('scheduled rotations and anomalies (the key-rotation job)', () => {
  const oldKey = testKey();
  const issued = testKey();
  let fake: FakeUpstream;
  let dir: string;
  let db: Database;
  let keys: KeysSubsystem;
  let receiver: Awaited<ReturnType<typeof alertReceiver>>;
  const secrets = new SecretValues();

  beforeAll(async () => {
    fake = await startOpenAIFake({ name: 'openai-fake', apiKeys: [oldKey, issued] });
    receiver = await alertReceiver();
    dir = await mkdtemp(path.join(tmpdir(), 'mc-keys-schedule-'));
    await mkdir(path.join(dir, 'policies'));
    await writeFile(path.join(dir, 'next-key'), `${issued}\n`, { mode: 0o600 });
    await writeFile(
      path.join(dir, 'policies', 'providers.yaml'),
      `providers:
  openai:
    kind: openai
    base_url: ${fake.url}/v1
    credential: env:OPENAI_API_KEY
    rotation:
      rotate_every: 30d
      issue: [cat, ${path.join(dir, 'next-key')}]
`,
    );
    db = await openDatabase({});
    await migrate(db);
    keys = await startKeys({
      settings: { stateDir: path.join(dir, 'state'), policies: path.join(dir, 'policies') },
      env: { OPENAI_API_KEY: oldKey },
      log: createLogger({ level: 'silent' }),
      db,
      secrets,
      masterKey: testKey('sk-master-'),
      live: () => undefined,
      alert: webhookSink<KeyAlert>({ url: receiver.url }),
    });
  });
  afterAll(async () => {
    await keys?.stop();
    await db?.close();
    await fake?.close();
    await receiver?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a due rotation that cannot go live changes nothing, alerts, and is retried only after its backoff', async () => {
    await keys.schedule.run();
    // The issued value passed the probe at the provider…
    expect(fake.requests.some((r) => r.path === '/v1/models' && r.key === issued)).toBe(true);
    // …but nothing changed: the environment's value is still the one in use.
    const [status] = await keys.credentials();
    expect(status).toMatchObject({ source: 'env', fingerprint: fingerprint(oldKey) });
    expect(keys.store.peek('env:OPENAI_API_KEY')).toBeUndefined();
    const alerts = receiver.received.map((r) => (r as { alert: KeyAlert }).alert);
    expect(alerts).toEqual([
      expect.objectContaining({
        type: 'key-rotation-failed',
        subject: 'provider:openai',
        trigger: 'schedule',
        attempt: 1,
        error: expect.stringMatching(/LiteLLM is not running/) as string,
      }),
    ]);
    const steps = (await keys.audit.list({ subject: 'provider:openai' })).map(
      (e) => `${e.actor} ${e.action} ${e.step} ${e.outcome}`,
    );
    expect(steps).toEqual([
      'schedule credential.rotate.scheduled probe ok',
      'schedule credential.rotate.scheduled swap failed',
    ]);

    // The next run is within the backoff: no new attempt.
    const probes = fake.requests.length;
    await keys.schedule.run();
    expect(fake.requests.length).toBe(probes);
    expect(receiver.received).toHaveLength(1);
  });

  it('a burst of 401s from a provider raises an alert naming the key fingerprint, audited', async () => {
    const now = Date.now();
    for (let i = 0; i < 6; i++) {
      await db.query(
        `INSERT INTO spend_requests (call_id, started_at, status, ended_at, provider, error_code, error_class)
         VALUES ($1, $2, 'failure', $2, 'openai', '401', 'AuthenticationError')`,
        [`burst-${i}`, new Date(now - i * 1000).toISOString()],
      );
    }
    await keys.schedule.run();
    const anomaly = receiver.received
      .map((r) => (r as { alert: KeyAlert }).alert)
      .find((a) => a.type === 'key-anomaly');
    expect(anomaly).toEqual({
      type: 'key-anomaly',
      subject: 'provider:openai',
      kind: 'provider-auth-failures',
      fingerprint: fingerprint(oldKey),
      detail: expect.stringMatching(/6 requests to provider "openai" were refused/) as string,
      action: 'alert',
    });
    const audited = await keys.audit.list({ subject: 'provider:openai' });
    expect(audited.at(-1)).toMatchObject({
      actor: 'anomaly',
      step: 'provider-auth-failures',
      fingerprints: { old: fingerprint(oldKey) },
    });
    // One alert per burst, not one per run.
    const count = receiver.received.length;
    await keys.schedule.run();
    expect(receiver.received).toHaveLength(count);
    expect(JSON.stringify(receiver.received)).not.toContain(oldKey);
    expect(JSON.stringify(receiver.received)).not.toContain(issued);
  });
});
