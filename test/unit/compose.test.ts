import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { SPOOL_CALLBACK } from '../../src/compile/compile.js';
import { isSecretKey } from '../../src/log/redact.js';
import { loadSettings, SETTINGS_ENV } from '../../src/settings/settings.js';
import { spendSettings } from '../../src/spend/config.js';
import { testKey } from '../helpers/secrets.js';

// docker-compose.yml cannot start here (no container engine): it is held to what can be checked.
const ROOT = path.resolve(import.meta.dirname, '..', '..');

interface Service {
  image: string;
  command?: string[];
  env_file?: string;
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}

async function compose(): Promise<{ services: Record<string, Service> }> {
  return parse(await readFile(path.join(ROOT, 'docker-compose.yml'), 'utf8'), {
    merge: true,
  }) as { services: Record<string, Service> };
}

/** `NAME=value` lines of the env file template. */
async function envExample(): Promise<Record<string, string>> {
  const text = await readFile(path.join(ROOT, 'deploy', 'env.example'), 'utf8');
  return Object.fromEntries(
    text
      .split('\n')
      .filter((l) => /^[A-Z_]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

describe('docker-compose.yml, the deployment users copy', () => {
  it("runs LiteLLM's official database image at the version of litellm/requirements.lock", async () => {
    const lock = await readFile(path.join(ROOT, 'litellm', 'requirements.lock'), 'utf8');
    const pinned = /^litellm==([\d.]+)/m.exec(lock)?.[1];
    expect(pinned).toBeDefined();
    const { image } = (await compose()).services.litellm!;
    const match = /^ghcr\.io\/berriai\/litellm-database:v([\d.]+)(@sha256:[0-9a-f]{64})?$/.exec(
      image,
    );
    expect(match, image).not.toBeNull();
    expect(match![1]).toBe(pinned);
  });

  it('gives the controller settings its schema accepts: admin-api on the compose LiteLLM, ledger in PostgreSQL', async () => {
    const controller = (await compose()).services.controller!;
    expect(controller.env_file).toBe('.env');
    // The env file as a user fills it in: each empty secret gets a value.
    const filled = Object.fromEntries(
      Object.entries(await envExample()).map(([k, v]) => [k, v || testKey('sk-')]),
    );
    const env = { ...filled, ...controller.environment };
    for (const name of Object.keys(controller.environment ?? {})) {
      if (!name.startsWith('MODELCENTER_')) continue;
      const spendVariables = await readFile(path.join(ROOT, 'src', 'spend', 'config.ts'), 'utf8');
      expect(name in SETTINGS_ENV || spendVariables.includes(name), `${name} is a setting`).toBe(
        true,
      );
    }
    const settings = await loadSettings(env, await mkdtemp(path.join(tmpdir(), 'mc-compose-')));
    expect(settings.strategy).toBe('admin-api');
    expect(settings.litellmUrls).toEqual(['http://litellm:4000']);
    expect(settings.apiPort).toBe(4100);
    const spend = spendSettings(env, settings.stateDir);
    expect('url' in spend.ledger && spend.ledger.url).toMatch(/^postgresql:\/\/.*@postgres:5432\//);
    expect(spend.spoolDir).toBe('/spool');
  });

  it('mounts the spool callback into LiteLLM and shares the spool with the controller', async () => {
    const { litellm, controller } = (await compose()).services;
    expect(litellm!.volumes).toContain(
      './litellm/modelcenter_spool.py:/srv/litellm/modelcenter_spool.py:ro',
    );
    expect(litellm!.environment?.PYTHONPATH).toBe('/srv/litellm');
    const shared = (s: Service): string | undefined =>
      s.volumes?.find((v) => v.endsWith(`:${s.environment?.MODELCENTER_SPOOL_DIR}`));
    expect(shared(litellm!)).toBe('spool:/spool');
    expect(shared(controller!)).toBe('spool:/spool');
    const configMount = litellm!.volumes!.find((v) => v.endsWith(':/srv/litellm/deploy.yaml:ro'))!;
    const config = parse(await readFile(path.join(ROOT, configMount.split(':')[0]!), 'utf8')) as {
      litellm_settings: { callbacks: string[] };
      general_settings: Record<string, unknown>;
    };
    expect(config.litellm_settings.callbacks).toContain(SPOOL_CALLBACK);
    expect(config.general_settings.store_model_in_db).toBe(true);
    expect(litellm!.command).toContain('/srv/litellm/deploy.yaml');
  });

  it('publishes ports on loopback only, checks health, starts in order, keeps secrets in the env file', async () => {
    const { services } = await compose();
    expect(Object.keys(services).sort()).toEqual(['controller', 'litellm', 'postgres']);
    const secretNames = Object.keys(await envExample());
    for (const [name, service] of Object.entries(services)) {
      for (const port of service.ports ?? []) expect(port, name).toMatch(/^127\.0\.0\.1:\d+:\d+$/);
      expect(service.healthcheck?.test.length, `${name} health check`).toBeGreaterThan(1);
      for (const dependency of Object.values(service.depends_on ?? {}))
        expect(dependency.condition).toBe('service_healthy');
      expect(service.env_file).toBe('.env');
      for (const key of Object.keys(service.environment ?? {})) {
        expect(isSecretKey(key) || /PASSWORD|DATABASE_URL|LEDGER_URL/.test(key), key).toBe(false);
      }
    }
    expect(secretNames).toEqual(expect.arrayContaining(['LITELLM_MASTER_KEY', 'DATABASE_URL']));
    const gitignore = await readFile(path.join(ROOT, '.gitignore'), 'utf8');
    expect(gitignore.split('\n')).toContain('.env');
  });
});
