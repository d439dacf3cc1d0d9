import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { z } from 'zod';
import { describeError, ModelCenterError } from '../shared/errors.js';
import { allows, authorize, type Scope, type Tokens } from './auth.js';

/** The slice of a logger the API uses (pino's Logger fits). */
export interface ApiLog {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}

export interface HandlerContext {
  body: unknown;
  query: Record<string, unknown>;
  params: Record<string, string>;
  requestId: string;
}

export interface Reply {
  status: number;
  body: unknown;
  /** Plain text instead of JSON (Prometheus). */
  contentType?: string;
}

export interface Route {
  method: 'GET' | 'POST';
  /** OpenAPI-style template: `/v1/jobs/{name}/run`. */
  path: string;
  scope: Scope | 'public';
  summary: string;
  body?: z.ZodType;
  /** Hand the body to the handler as text (size-limited, not parsed): for formats such as NDJSON. */
  rawBody?: boolean;
  /** This route's body limit, when it differs from the server's. */
  maxBodyBytes?: number;
  query?: z.ZodObject;
  /** For the OpenAPI document only. */
  response?: z.ZodType;
  handle(context: HandlerContext): Promise<Reply>;
}

/** An error a handler throws to answer with a status other than 500. */
export class HttpError extends ModelCenterError {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ApiServerOptions {
  routes: readonly Route[];
  tokens: Tokens;
  maxBodyBytes: number;
  log: ApiLog;
  /** Masks secret values in every answer (error messages, LiteLLM output in reports). */
  mask?: (text: string) => string;
  /** Called once per request with the route template (never the raw path). */
  onRequest?: (method: string, route: string, status: number, seconds: number) => void;
}

/** The stable error body: `{"error": {"code", "message", "requestId", "field"?}}`. */
export const errorBodySchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    requestId: z.string(),
    field: z.string().optional(),
  }),
});

interface CompiledRoute {
  route: Route;
  pattern: RegExp;
  names: string[];
}

/**
 * A small JSON HTTP API on node:http: bearer auth with read/admin scopes, body size limit, zod
 * validation of every body and query, one error shape, no stack traces, a request id per request.
 */
export function createApiServer(options: ApiServerOptions): Server {
  const compiled = options.routes.map(compileRoute);
  return createServer((request, response) => {
    const started = performance.now();
    const requestId = requestIdOf(request);
    let template = 'unmatched';
    const send = (status: number, body: unknown, contentType?: string): void => {
      const raw = contentType ? String(body) : JSON.stringify(body);
      const text = options.mask ? options.mask(raw) : raw;
      response.writeHead(status, {
        'content-type': contentType ?? 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(text),
        'x-request-id': requestId,
        ...(status === 401 && { 'www-authenticate': 'Bearer' }),
      });
      response.end(text);
      const seconds = (performance.now() - started) / 1000;
      options.onRequest?.(request.method ?? 'GET', template, status, seconds);
      const details = {
        requestId,
        method: request.method,
        route: template,
        status,
        ms: Math.round(seconds * 1000),
      };
      if (status >= 500) options.log.error(details, 'http request failed');
      else options.log.info(details, 'http request');
    };
    const fail = (status: number, code: string, message: string, field?: string): void =>
      send(status, { error: { code, message, requestId, ...(field && { field }) } });

    void (async () => {
      const url = new URL(request.url ?? '/', 'http://localhost');
      const matches = compiled
        .map((c) => ({ c, m: c.pattern.exec(url.pathname) }))
        .filter((x) => x.m !== null);
      if (matches.length === 0) return fail(404, 'not_found', `no route ${url.pathname}`);
      const hit = matches.find((x) => x.c.route.method === request.method);
      if (!hit) {
        return fail(
          405,
          'method_not_allowed',
          `${url.pathname} accepts ${matches.map((x) => x.c.route.method).join(', ')}`,
        );
      }
      const { route } = hit.c;
      template = route.path;
      if (route.scope !== 'public') {
        const auth = authorize(request.headers.authorization, options.tokens);
        if (!auth.ok) {
          return fail(
            401,
            'unauthorized',
            'a valid bearer token is required: send "Authorization: Bearer <token>"',
          );
        }
        if (!allows(auth.scope, route.scope)) {
          return fail(
            403,
            'forbidden',
            `${request.method} ${route.path} needs an admin token; this token has read scope`,
          );
        }
      }
      let params: Record<string, string>;
      try {
        params = Object.fromEntries(
          hit.c.names.map((name, i) => [name, decodeURIComponent(hit.m![i + 1]!)]),
        );
      } catch {
        return fail(
          400,
          'invalid_request',
          `${url.pathname}: a path segment is not valid URL encoding`,
        );
      }
      const query = parseWith(route.query, Object.fromEntries(url.searchParams), 'query');
      if (!query.ok) return fail(400, 'invalid_request', query.message, query.field);
      let body: unknown = undefined;
      if (route.body || route.rawBody) {
        const limit = route.maxBodyBytes ?? options.maxBodyBytes;
        const raw = await readBody(request, limit);
        if (raw.tooLarge) {
          response.setHeader('connection', 'close');
          return fail(413, 'payload_too_large', `the body is larger than ${limit} bytes`);
        }
        let json: unknown = {};
        if (route.rawBody) json = raw.text;
        else if (raw.text.trim() !== '') {
          try {
            json = JSON.parse(raw.text);
          } catch (error) {
            return fail(400, 'invalid_json', `the body is not valid JSON: ${describeError(error)}`);
          }
        }
        const parsed = route.rawBody
          ? { ok: true as const, value: json }
          : parseWith(route.body, json, 'body');
        if (!parsed.ok) return fail(400, 'invalid_request', parsed.message, parsed.field);
        body = parsed.value;
      }
      const reply = await route.handle({
        body,
        query: query.value as Record<string, unknown>,
        params,
        requestId,
      });
      send(reply.status, reply.body, reply.contentType);
    })().catch((error: unknown) => {
      if (response.headersSent) return;
      if (error instanceof HttpError) return fail(error.status, error.code, error.message);
      options.log.error({ requestId, err: describeError(error) }, 'handler failed');
      const known = error instanceof ModelCenterError;
      fail(
        500,
        'internal',
        known ? error.message : `internal error — see the controller log for request ${requestId}`,
      );
    });
  });
}

function compileRoute(route: Route): CompiledRoute {
  const names: string[] = [];
  const source = route.path
    .replace(/[.*+?^$()|[\]\\]/g, '\\$&')
    .replace(/\{(\w+)\}/g, (_, name: string) => {
      names.push(name);
      return '([^/]+)';
    });
  return { route, pattern: new RegExp(`^${source}$`), names };
}

function requestIdOf(request: IncomingMessage): string {
  const given = request.headers['x-request-id'];
  return typeof given === 'string' && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
}

type Parsed = { ok: true; value: unknown } | { ok: false; message: string; field: string };

function parseWith(schema: z.ZodType | undefined, value: unknown, where: 'body' | 'query'): Parsed {
  if (!schema) return { ok: true, value: {} };
  const result = schema.safeParse(value);
  if (result.success) return { ok: true, value: result.data };
  const issue = result.error.issues[0]!;
  const field = [where, ...issue.path.map(String)].join('.');
  const message =
    issue.code === 'unrecognized_keys'
      ? `${field}: unknown field ${issue.keys.join(', ')}`
      : `${field}: ${issue.message}`;
  return {
    ok: false,
    message,
    field: issue.code === 'unrecognized_keys' ? `${field}.${issue.keys[0]}` : field,
  };
}

async function readBody(
  request: IncomingMessage,
  limit: number,
): Promise<{ text: string; tooLarge: boolean }> {
  const declared = Number(request.headers['content-length'] ?? 0);
  if (declared > limit) {
    request.resume();
    return { text: '', tooLarge: true };
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      request.resume();
      return { text: '', tooLarge: true };
    }
    chunks.push(chunk);
  }
  return { text: Buffer.concat(chunks).toString('utf8'), tooLarge: false };
}

/** The OpenAPI 3.1 document, generated from the same zod schemas that validate requests. */
export function openApiDocument(routes: readonly Route[], version: string): object {
  const paths: Record<string, Record<string, unknown>> = {};
  const errorRef = { $ref: '#/components/schemas/Error' };
  const errorResponse = (description: string) => ({
    description,
    content: { 'application/json': { schema: errorRef } },
  });
  for (const route of routes) {
    const parameters = [
      ...[...route.path.matchAll(/\{(\w+)\}/g)].map((m) => ({
        name: m[1],
        in: 'path',
        required: true,
        schema: { type: 'string' },
      })),
      ...Object.entries(route.query?.shape ?? {}).map(([name, schema]) => ({
        name,
        in: 'query',
        required: !(schema as z.ZodType).safeParse(undefined).success,
        schema: z.toJSONSchema(schema as z.ZodType, { io: 'input', unrepresentable: 'any' }),
      })),
    ];
    paths[route.path] ??= {};
    paths[route.path]![route.method.toLowerCase()] = {
      summary: route.summary,
      ...(route.scope !== 'public' && { security: [{ bearer: [] }], 'x-scope': route.scope }),
      ...(parameters.length > 0 && { parameters }),
      ...(route.body && {
        requestBody: {
          required: false,
          content: {
            'application/json': {
              schema: z.toJSONSchema(route.body, { io: 'input', unrepresentable: 'any' }),
            },
          },
        },
      }),
      responses: {
        '200': {
          description: 'OK',
          ...(route.response && {
            content: {
              'application/json': {
                schema: z.toJSONSchema(route.response, { io: 'output', unrepresentable: 'any' }),
              },
            },
          }),
        },
        ...(route.body && {
          '400': errorResponse('invalid body'),
          '413': errorResponse('body too large'),
        }),
        ...(route.scope !== 'public' && {
          '401': errorResponse('no or wrong token'),
          '403': errorResponse('token lacks the scope'),
        }),
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Model Center API', version },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: { Error: z.toJSONSchema(errorBodySchema) },
    },
    paths,
  };
}
