import { describe, expect, it } from 'vitest';
import { createLogger, subsystemLogger, type Logger } from '../../src/log/logger.js';
import { CENSOR, isSecretKey, SecretValues } from '../../src/log/redact.js';
import { testKey } from '../helpers/secrets.js';

function capture(secrets: SecretValues, pretty = false): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const logger = createLogger({
    level: 'debug',
    pretty,
    secrets,
    destination: { write: (line) => lines.push(line) },
  });
  return { logger, lines };
}

/** Every form a secret can take in a JSON line: as is, and JSON-escaped. */
function forms(secret: string): string[] {
  return [secret, JSON.stringify(secret).slice(1, -1)];
}

describe('logger: no secret value reaches a log line', () => {
  it('a run that handles a credential in every shape logs none of it', () => {
    const masterKey = testKey('sk-master-');
    const providerKey = testKey('sk-proj-');
    // A password with characters JSON escapes: the escaped form must be masked as well.
    const dbPassword = `pw"${testKey('')}\\end`;
    const secrets = new SecretValues();
    secrets.add(masterKey);
    secrets.addFromEnv({ OPENAI_API_KEY: providerKey, PATH: '/usr/bin', DB_PASSWORD: dbPassword });
    // A value nobody registered (a caller's token, say): only the field-name layer can catch it.
    const callerToken = testKey('');
    const { logger, lines } = capture(secrets);
    const apply = subsystemLogger(logger, 'apply');

    // By path: a top-level field, and one nested the way LiteLLM's config nests it.
    apply.info({ apiKey: providerKey, deployment: 'gpt-4o' }, 'deployment written');
    apply.debug(
      { model: { litellm_params: { model: 'openai/gpt-4o', api_key: providerKey } } },
      'deployment body',
    );
    // Deeper than any fixed path list reaches.
    apply.debug({ a: { b: { c: { d: { e: { masterKey, token: callerToken } } } } } }, 'deep');
    // In a header, as an HTTP server and an HTTP client each log it.
    const api = subsystemLogger(logger, 'api');
    api.info(
      { req: { headers: { authorization: `Bearer ${masterKey}`, 'x-api-key': callerToken } } },
      'request',
    );
    const clientError = Object.assign(new Error('Request failed with status code 401'), {
      config: { headers: { Authorization: `Bearer ${masterKey}` }, url: '/model/new' },
    });
    api.error({ err: clientError }, 'LiteLLM refused the write');
    // Inside an error message and its cause, the way LiteLLM's output carries it.
    const refused = new Error('LiteLLM did not start', {
      cause: new Error(`AuthenticationError: Incorrect API key provided: ${providerKey}`),
    });
    apply.error(refused);
    apply.warn({ output: `litellm: master_key=${masterKey} loaded` }, 'LiteLLM said');
    // In the message itself, in a child's bindings, and in an environment dump.
    apply.warn(`retrying with key ${providerKey}`);
    apply.child({ token: callerToken }).info('child bound to a token');
    apply.debug({ env: { OPENAI_API_KEY: providerKey, DB_PASSWORD: dbPassword } }, 'child env');
    apply.info({ note: `connecting with ${dbPassword}` }, 'db');

    const output = lines.join('');
    expect(lines).toHaveLength(11);
    for (const secret of [masterKey, providerKey, dbPassword, callerToken]) {
      for (const form of forms(secret)) expect(output).not.toContain(form);
    }
    // What is left still says what happened.
    expect(output).toContain('Incorrect API key provided: [REDACTED]');
    expect(output).toContain('"url":"/model/new"');
    expect(output).toContain('"deployment":"gpt-4o"');
    expect(output).toContain('retrying with key [REDACTED]');
    expect(lines.every((line) => line.includes('"subsystem":'))).toBe(true);
  });

  it('a key registered after the logger was made (a rotation) is masked from then on', () => {
    const secrets = new SecretValues();
    const { logger, lines } = capture(secrets);
    const rotated = testKey('rot-');
    secrets.add(rotated);
    logger.info({ detail: `new key ${rotated} active` }, 'rotated');
    expect(lines.join('')).not.toContain(rotated);
    expect(lines.join('')).toContain('new key [REDACTED] active');
  });

  it('credentials nobody registered are masked by their shape', () => {
    const { logger, lines } = capture(new SecretValues());
    const virtualKey = testKey('sk-');
    const bearer = testKey('tok');
    logger.warn(
      {
        output: `generated ${virtualKey}; header Bearer ${bearer}`,
        url: 'postgres://litellm:s3cret-pass@db:5432/litellm',
      },
      'unregistered',
    );
    const output = lines.join('');
    expect(output).not.toContain(virtualKey);
    expect(output).not.toContain(bearer);
    expect(output).not.toContain('s3cret-pass');
    expect(output).toContain('postgres://litellm:[REDACTED]@db:5432/litellm');
  });

  it('pretty output is masked the same way', () => {
    const key = testKey();
    const secrets = new SecretValues();
    secrets.add(key);
    const { logger, lines } = capture(secrets, true);
    logger.info({ apiKey: 'abcdefgh12345', note: `uses ${key}` }, 'pretty line');
    const output = lines.join('');
    expect(output).toContain('pretty line');
    expect(output).not.toContain(key);
    expect(output).not.toContain('abcdefgh12345');
  });

  it('the logged object itself is not changed, and a cycle does not hang', () => {
    const { logger, lines } = capture(new SecretValues());
    const body: Record<string, unknown> = { api_key: 'still-needed-by-caller' };
    body.self = body;
    logger.info({ body }, 'cyclic');
    expect(body.api_key).toBe('still-needed-by-caller');
    expect(lines.join('')).not.toContain('still-needed-by-caller');
  });
});

describe('which field names are secret', () => {
  it.each([
    'apiKey',
    'api_key',
    'x-api-key',
    'x-litellm-api-key',
    'authorization',
    'Authorization',
    'masterKey',
    'master_key',
    'LITELLM_MASTER_KEY',
    'OPENAI_API_KEY',
    'MODELCENTER_SECRET_OPENAI_PROD',
    'token',
    'access_token',
    'key',
    'password',
    'client_secret',
    'aws_secret_access_key',
    'credential',
    'vertex_credentials',
    'credential_values',
    'database_url',
    'cookie',
  ])('%s is censored', (name) => {
    expect(isSecretKey(name)).toBe(true);
  });

  it.each(['model', 'max_tokens', 'tokens', 'key_alias', 'keys', 'deployment_id', 'api_base'])(
    '%s is kept',
    (name) => {
      expect(isSecretKey(name)).toBe(false);
    },
  );

  it('values too short to be keys are not registered (they would garble every line)', () => {
    const secrets = new SecretValues();
    secrets.add('info');
    expect(secrets.size).toBe(0);
    expect(secrets.mask('level info')).toBe('level info');
    expect(CENSOR).toBe('[REDACTED]');
  });
});
