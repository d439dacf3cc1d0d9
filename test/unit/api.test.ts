import { rm } from 'node:fs/promises';
import { connect, type AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { authorize } from '../../src/api/auth.js';
import { apiRoutes, type ServiceApi } from '../../src/api/routes.js';
import {
  createApiServer,
  errorBodySchema,
  openApiDocument,
  type Route,
} from '../../src/api/server.js';
import type { ApplyReport } from '../../src/apply/controller.js';
import { GitState, GitStateError } from '../../src/gitstate/git-state.js';
import { applyCommitMessage } from '../../src/gitstate/messages.js';
import { InputError } from '../../src/shared/errors.js';
import { apiRequests, checkAnswer, type OpenApiDocument } from '../helpers/api-property.js';
import { git, policyRepo } from '../helpers/repo.js';

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
        orderChanges: [],
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
    expect(authorize(`Bearer ${ADMIN}`, tokens)).toMatchObject({ ok: true, scope: 'admin' });
    expect(authorize(`bearer ${READ}`, tokens)).toMatchObject({ ok: true, scope: 'read' });
    expect(authorize(`Bearer ${ADMIN.slice(0, -1)}`, tokens)).toEqual({ ok: false });
    expect(authorize(ADMIN, tokens)).toEqual({ ok: false });
    expect(authorize(undefined, tokens)).toEqual({ ok: false });
    expect(authorize('Bearer ', { admin: [], read: [] })).toEqual({ ok: false });
  });

  it('names a token written name=value by its name (it authors policy commits), a bare one by scope and fingerprint', () => {
    const named = { admin: [`research-agent=${ADMIN}`], read: [READ] };
    expect(authorize(`Bearer ${ADMIN}`, named)).toEqual({
      ok: true,
      scope: 'admin',
      name: 'research-agent',
    });
    expect(authorize(`Bearer research-agent=${ADMIN}`, named)).toEqual({ ok: false });
    const bare = authorize(`Bearer ${READ}`, named);
    expect(bare).toMatchObject({ ok: true, scope: 'read' });
    expect((bare as { name: string }).name).toMatch(/^read:[0-9a-f]{12}$/);
    expect(JSON.stringify(bare)).not.toContain(READ);
  });

  // A timing comparison: on a shared, loaded machine one noisy round can tip it, so it gets two retries.
  it('takes the same time for a near miss as for a far miss (constant-time)', { retry: 2 }, () => {
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

/** Routes as the spend subsystem adds them: a query schema, a path parameter, a typed input error. */
const probeRoutes: Route[] = [
  {
    method: 'GET',
    path: '/v1/probe/{id}',
    scope: 'read',
    summary: 'a path parameter and a query schema',
    query: z.strictObject({
      since: z.string().default('7d'),
      sort: z.enum(['cost', 'key']).default('cost'),
    }),
    handle: ({ params, query }) => {
      if (params.id === 'gone') throw new InputError(`no request "${params.id}"`, { status: 404 });
      if (query.since === 'later')
        throw new InputError('since: not understood', { field: 'since' });
      return Promise.resolve({ status: 200, body: { id: params.id, query } });
    },
  },
  // GET and POST on one template, as /v1/providers: an error of the POST names its body field.
  {
    method: 'GET',
    path: '/v1/probe-items',
    scope: 'read',
    summary: 'a list',
    handle: ({ head }) => {
      reads.push(head ? 'HEAD' : 'GET');
      return Promise.resolve({ status: 200, body: { items: [] } });
    },
  },
  {
    method: 'POST',
    path: '/v1/probe-items',
    scope: 'admin',
    summary: 'add one (a policy commit)',
    body: z.strictObject({ name: z.string() }),
    handle: ({ body }) => {
      const { name } = body as { name: string };
      if (name === 'locked')
        throw new GitStateError(
          "could not commit policies/x.yaml: fatal: Unable to create '/r/.git/index.lock': File exists.",
        );
      throw new InputError(`"${name}" is not a valid name`, { status: 422, field: 'name' });
    },
  },
];
/** What the GET /v1/probe-items handler was called for: HEAD must be told it is one. */
const reads: string[] = [];

describe('HTTP API: client input never gets a 5xx (in-process, real git for rollback targets)', () => {
  let server: Server;
  let base: string;
  let repo: string;
  let generated: string;
  const tokens = { admin: ADMIN, read: READ };
  let routes: Route[];

  beforeAll(async () => {
    repo = await policyRepo('models: {}\n');
    const state = await GitState.open(repo, 'litellm/config.yaml');
    generated = (
      await state.commitConfig(
        'a: 1\n',
        applyCommitMessage({
          policyCommit: undefined,
          policiesDirty: false,
          configSha256: 'b'.repeat(64),
          change: { added: [], removed: [] },
        }),
      )
    ).commit;
    git(repo, 'commit', '-q', '--allow-empty', '-m', 'policies: later');
    const service: ServiceApi = {
      ...recordingService(),
      // As the controller does: the target is checked before anything is locked or recorded.
      rollback: async (to) => {
        if (to !== undefined) await state.generatedCommit(to);
        return { outcome: 'applied', problems: [] };
      },
      extraRoutes: probeRoutes,
    };
    routes = apiRoutes(service, 'test');
    server = createApiServer({
      routes,
      tokens: { admin: [ADMIN], read: [READ] },
      maxBodyBytes: 64 * 1024,
      log: { info: () => undefined, warn: () => undefined, error: () => undefined },
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(repo, { recursive: true, force: true });
  });

  const send = async (method: string, target: string, body?: string) => {
    const response = await fetch(`${base}${target}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      ...(body !== undefined && { body }),
    });
    const text = await response.text();
    return {
      status: response.status,
      text,
      allow: response.headers.get('allow'),
      error:
        text && response.status >= 400 ? errorBodySchema.parse(JSON.parse(text)).error : undefined,
    };
  };

  it('HEAD is answered by every GET route, without a body; a POST route answers 405 naming what it accepts', async () => {
    expect((await fetch(`${base}/healthz`, { method: 'HEAD' })).status).toBe(200);
    for (const route of routes.filter((r) => r.method === 'GET')) {
      const target = route.path.replace('{id}', 'x');
      const head = await send('HEAD', target);
      const get = await send('GET', target);
      expect(head.status, target).toBe(get.status);
      expect(head.text, target).toBe('');
    }
    const post = await send('HEAD', '/v1/apply');
    expect(post).toMatchObject({ status: 405, text: '', allow: 'POST' });
    expect((await send('PUT', '/healthz')).error?.message).toBe('/healthz accepts GET, HEAD');
  });

  it('NUL and control characters in a path parameter, a query parameter or a body field are 400 naming it', async () => {
    expect((await send('GET', '/v1/probe/a%00b')).error).toMatchObject({
      code: 'invalid_request',
      field: 'path.id',
    });
    expect((await send('GET', '/v1/probe/x?since=7d%00')).error).toMatchObject({
      field: 'query.since',
    });
    expect((await send('GET', '/v1/probe/x?sort=cost&goal%01=1')).error).toMatchObject({
      field: 'query.goal\\u0001',
    });
    expect((await send('POST', '/v1/rollback', '{"to": "HEAD\\u0000"}')).error).toMatchObject({
      field: 'body.to',
    });
    expect((await send('POST', '/v1/apply', '{"\\u0007": true}')).error).toMatchObject({
      field: 'body.\\u0007',
    });
    expect((await send('POST', '/v1/rollback', '{"to": "\\ud800"}')).error?.message).toMatch(
      /lone surrogate/,
    );
  });

  it('a request node:http cannot parse (NUL in the request line or a header) is a 400 in the one error shape', async () => {
    const raw = (request: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
        let answer = '';
        socket.on('data', (chunk: Buffer) => (answer += chunk.toString('utf8')));
        socket.on('end', () => resolve(answer));
        socket.on('error', reject);
        socket.write(request);
      });
    for (const request of [
      'GET /v1/probe/a\u0000b HTTP/1.1\r\nHost: x\r\n\r\n',
      `GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN}\u0000\r\n\r\n`,
    ]) {
      const answer = await raw(request);
      expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
      const body = answer.slice(answer.indexOf('\r\n\r\n') + 4);
      expect(errorBodySchema.parse(JSON.parse(body)).error.code).toBe('bad_request');
    }
  });

  it('an InputError from a handler answers its status in the one error shape, naming the parameter', async () => {
    expect(await send('GET', '/v1/probe/gone')).toMatchObject({
      status: 404,
      error: { code: 'not_found', message: 'no request "gone"' },
    });
    expect(await send('GET', '/v1/probe/x?since=later')).toMatchObject({
      status: 400,
      error: { code: 'invalid_request', field: 'query.since' },
    });
  });

  it('an error of a POST sharing its template with a GET names the body field; the GET handler learns a HEAD is one', async () => {
    expect(await send('POST', '/v1/probe-items', '{"name": "A b"}')).toMatchObject({
      status: 422,
      error: { code: 'invalid_request', field: 'body.name' },
    });
    reads.length = 0;
    await send('HEAD', '/v1/probe-items');
    await send('GET', '/v1/probe-items');
    expect(reads).toEqual(['HEAD', 'GET']);
  });

  it("git refusing a commit is 503 git_failed with git's message, not a 500", async () => {
    const answer = await send('POST', '/v1/probe-items', '{"name": "locked"}');
    expect(answer).toMatchObject({ status: 503, error: { code: 'git_failed' } });
    expect(answer.error?.message).toMatch(/index\.lock': File exists\./);
  });

  it('a rollback target that is not one generated commit is 400/404 naming why; a generated one goes through', async () => {
    const range = await send('POST', '/v1/rollback', '{"to": "HEAD~1..HEAD"}');
    expect(range).toMatchObject({ status: 400, error: { field: 'body.to' } });
    expect(range.error?.message).toMatch(/range or an expression, not one commit/);
    const policy = await send('POST', '/v1/rollback', '{"to": "HEAD"}');
    expect(policy).toMatchObject({ status: 400, error: { code: 'not_generated' } });
    expect(policy.error?.message).toMatch(/"policies: later"\) is not a generated commit/);
    expect(await send('POST', '/v1/rollback', '{"to": "HEAD~9"}')).toMatchObject({
      status: 404,
      error: { code: 'not_found' },
    });
    expect((await send('POST', '/v1/rollback', '{"to": "--all"}')).status).toBe(400);
    expect((await send('POST', '/v1/rollback', '{"to": "HEAD~1"}')).status).toBe(200);
    expect((await send('POST', '/v1/rollback', `{"to": "${generated}"}`)).status).toBe(200);
  });

  it('property: any path, query and body on any route (from the route table) gets no 5xx, and every error has the one shape', async () => {
    const doc = openApiDocument(routes, 'test') as OpenApiDocument;
    await fc.assert(
      fc.asyncProperty(apiRequests(doc, ['drift-check', generated, 'gone', 'later']), (request) =>
        checkAnswer(base, request, tokens),
      ),
      { numRuns: 600 },
    );
  });
});
