import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorize } from '../../src/api/auth.js';
import { apiRoutes, type ServiceApi } from '../../src/api/routes.js';
import { createApiServer } from '../../src/api/server.js';
import type { ApplyReport } from '../../src/apply/controller.js';

const ADMIN = 'mc-admin-token-for-tests-0123456789';
const READ = 'mc-read-token-for-tests-0123456789';

/** A service that records what the API asked of it; the real one is tested in serve.test.ts. */
function recordingService(): ServiceApi & {
  calls: string[];
  readyState: { ready: boolean; reason?: string };
} {
  const calls: string[] = [];
  const readyState: { ready: boolean; reason?: string } = { ready: true };
  const report = (outcome: ApplyReport['outcome']): ApplyReport => ({ outcome, problems: [] });
  return {
    calls,
    readyState,
    status: () => Promise.resolve({ ok: true }),
    readiness: () => Promise.resolve({ ...readyState }),
    plan: () =>
      Promise.resolve({
        valid: true,
        problems: [],
        warnings: [],
        changed: false,
        added: [],
        removed: [],
        diff: '',
        drift: { workingTreeEdited: false },
      }),
    apply: (options) => {
      calls.push(`apply force=${options.force}`);
      return Promise.resolve(report('applied'));
    },
    reload: () => Promise.resolve(report('applied')),
    rollback: (to) => {
      calls.push(`rollback ${to ?? 'lkg'}`);
      return Promise.resolve(report('rolled-back'));
    },
    drift: () =>
      Promise.resolve({
        workingTreeEdited: false,
        live: { ok: true, instances: [] },
        applying: false,
        drifted: false,
      }),
    jobs: () => [{ name: 'drift-check' }],
    runJob: (name) => Promise.resolve({ name, outcome: 'ok' }),
    metrics: () =>
      Promise.resolve({ text: 'modelcenter_up 1\n', contentType: 'text/plain; version=0.0.4' }),
  };
}

describe('HTTP API: auth, validation, errors (in-process)', () => {
  let server: Server;
  let base: string;
  let service: ReturnType<typeof recordingService>;
  const logged: object[] = [];

  beforeAll(async () => {
    service = recordingService();
    const log = {
      info: (d: object) => logged.push(d),
      warn: (d: object) => logged.push(d),
      error: (d: object) => logged.push(d),
    };
    server = createApiServer({
      routes: apiRoutes(service, 'test'),
      tokens: { admin: [ADMIN], read: [READ] },
      maxBodyBytes: 1024,
      log,
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const call = (method: string, route: string, token?: string, body?: string) =>
    fetch(`${base}${route}`, {
      method,
      headers: {
        ...(token && { authorization: `Bearer ${token}` }),
        'content-type': 'application/json',
      },
      ...(body !== undefined && { body }),
    });

  const everyRoute = (): { method: string; path: string; scope: string }[] =>
    apiRoutes(service, 'test').map((r) => ({
      method: r.method,
      path: r.path.replace('{name}', 'drift-check'),
      scope: r.scope,
    }));

  it('/readyz needs no token: 200 when every instance serves the committed set, else 503 with the reason', async () => {
    const ready = await call('GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true });
    service.readyState.ready = false;
    service.readyState.reason = 'LiteLLM on port 4000 exited unexpectedly with code 137';
    try {
      const down = await call('GET', '/readyz');
      expect(down.status).toBe(503);
      expect(await down.json()).toEqual({
        ready: false,
        reason: 'LiteLLM on port 4000 exited unexpectedly with code 137',
      });
      expect((await call('GET', '/healthz')).status).toBe(200); // liveness is the controller's own
    } finally {
      service.readyState.ready = true;
      delete service.readyState.reason;
    }
  });

  it('every route but /healthz answers 401 without a token, and the same for a wrong one', async () => {
    for (const route of everyRoute()) {
      const none = await call(route.method, route.path);
      const wrong = await call(route.method, route.path, `${ADMIN}x`);
      if (route.scope === 'public') {
        expect(none.status, route.path).toBe(200);
        continue;
      }
      expect(none.status, `${route.method} ${route.path}`).toBe(401);
      expect(wrong.status, `${route.method} ${route.path}`).toBe(401);
      expect(none.headers.get('www-authenticate')).toBe('Bearer');
      const body = (await wrong.json()) as {
        error: { code: string; message: string; requestId: string };
      };
      expect(body.error.code).toBe('unauthorized');
      expect(body.error.requestId).toBe(wrong.headers.get('x-request-id'));
      expect(JSON.stringify(body)).not.toContain(ADMIN);
    }
    expect(service.calls).toEqual([]);
  });

  it('a read token gets 403 on every mutating route and 200 on every read route', async () => {
    for (const route of everyRoute()) {
      if (route.scope === 'public') continue;
      const response = await call(
        route.method,
        route.path,
        READ,
        route.method === 'POST' ? '{}' : undefined,
      );
      expect(response.status, `${route.method} ${route.path}`).toBe(
        route.scope === 'admin' ? 403 : 200,
      );
    }
    expect(service.calls).toEqual([]);
  });

  it('a malformed or oversized body gets 400/413 naming the field, never 500, and nothing is applied', async () => {
    const wrongType = await call('POST', '/v1/apply', ADMIN, '{"force": "yes"}');
    expect(wrongType.status).toBe(400);
    expect(
      ((await wrongType.json()) as { error: { field: string; message: string } }).error,
    ).toMatchObject({
      field: 'body.force',
      message: expect.stringContaining('body.force: must be true or false') as unknown,
    });
    const unknownField = await call('POST', '/v1/apply', ADMIN, '{"forse": true}');
    expect(unknownField.status).toBe(400);
    expect(((await unknownField.json()) as { error: { message: string } }).error.message).toContain(
      'unknown field forse',
    );
    const notJson = await call('POST', '/v1/rollback', ADMIN, '{to: HEAD}');
    expect(notJson.status).toBe(400);
    expect(((await notJson.json()) as { error: { code: string } }).error.code).toBe('invalid_json');
    const badRef = await call('POST', '/v1/rollback', ADMIN, '{"to": "HEAD; rm -rf /"}');
    expect(badRef.status).toBe(400);
    const big = await call(
      'POST',
      '/v1/apply',
      ADMIN,
      JSON.stringify({ force: true, pad: 'x'.repeat(5000) }),
    );
    expect(big.status).toBe(413);
    expect(((await big.json()) as { error: { code: string } }).error.code).toBe(
      'payload_too_large',
    );
    expect(service.calls).toEqual([]);
  });

  it('an admin token applies and rolls back; outcomes map to statuses', async () => {
    const applied = await call('POST', '/v1/apply', ADMIN, '{"force": true}');
    expect(applied.status).toBe(200);
    const rolled = await call('POST', '/v1/rollback', ADMIN, '{"to": "abc123"}');
    expect(rolled.status).toBe(502);
    expect(service.calls).toEqual(['apply force=true', 'rollback abc123']);
    expect((await call('GET', '/v1/nope', ADMIN)).status).toBe(404);
    expect((await call('GET', '/v1/apply', ADMIN)).status).toBe(405);
  });

  it('serves an OpenAPI document generated from the same schemas', async () => {
    const doc = (await (await call('GET', '/openapi.json', READ)).json()) as {
      paths: Record<
        string,
        Record<
          string,
          { requestBody?: { content: { 'application/json': { schema: { properties: object } } } } }
        >
      >;
    };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/v1/apply', '/v1/rollback', '/v1/status', '/healthz']),
    );
    expect(
      doc.paths['/v1/apply']!.post!.requestBody!.content['application/json'].schema.properties,
    ).toHaveProperty('force');
    expect(
      doc.paths['/v1/rollback']!.post!.requestBody!.content['application/json'].schema.properties,
    ).toHaveProperty('to');
  });

  it('logs each request with its route template and status, never the token', () => {
    expect(logged).toContainEqual(expect.objectContaining({ route: '/v1/apply', status: 403 }));
    expect(JSON.stringify(logged)).not.toContain(ADMIN);
    expect(JSON.stringify(logged)).not.toContain(READ);
  });
});

describe('token comparison', () => {
  const tokens = { admin: [ADMIN], read: [READ] };
  it('grants the scope of the matching token only', () => {
    expect(authorize(`Bearer ${ADMIN}`, tokens)).toEqual({ ok: true, scope: 'admin' });
    expect(authorize(`bearer ${READ}`, tokens)).toEqual({ ok: true, scope: 'read' });
    expect(authorize(`Bearer ${ADMIN.slice(0, -1)}`, tokens)).toEqual({ ok: false });
    expect(authorize(ADMIN, tokens)).toEqual({ ok: false });
    expect(authorize(undefined, tokens)).toEqual({ ok: false });
    expect(authorize('Bearer ', { admin: [], read: [] })).toEqual({ ok: false });
  });

  it('takes the same time for a near miss as for a far miss (constant-time)', () => {
    const many = { admin: Array.from({ length: 50 }, (_, i) => `${ADMIN}${i}`), read: [READ] };
    const time = (header: string): number => {
      const start = process.hrtime.bigint();
      for (let i = 0; i < 500; i++) authorize(header, many);
      return Number(process.hrtime.bigint() - start);
    };
    time(`Bearer warm-up`);
    const near: number[] = [];
    const far: number[] = [];
    for (let round = 0; round < 7; round++) {
      near.push(time(`Bearer ${ADMIN}4`)); // shares all but the last character with a real token
      far.push(time('Bearer zzzzzzzz'));
    }
    const [a, b] = [Math.min(...near), Math.min(...far)];
    // Every token is hashed and compared whatever the input: near and far misses cost the same.
    expect(Math.max(a, b) / Math.min(a, b)).toBeLessThan(1.5);
  });
});
