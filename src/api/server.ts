import { randomUUID } from 'node:crypto';
import { createServer, STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { z } from 'zod';
import { GitStateError } from '../gitstate/git-state.js';
import { isDiskFull } from '../shared/disk.js';
import { describeError, InputError, ModelCenterError } from '../shared/errors.js';
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
  /**
   * Who asks: the token's name — `name` for a token configured as `name=value`, else its scope
   * and fingerprint (`admin:3fa1…`, `tokenName`) — or `anonymous` on public routes. The audit
   * records it; policy commits through the API are authored by it.
   */
  actor: string;
  /** The token's scope; undefined on public routes. */
  scope?: Scope;
  /**
   * A HEAD request served by this GET route: the answer's body is dropped, so a handler whose GET
   * hands something out once (a key's delivery) must only look, not consume.
   */
  head?: boolean;
}

export interface Reply {
  status: number;
  body: unknown;
  /** Plain text instead of JSON (Prometheus). */
  contentType?: string;
  /**
   * The answer carries a secret on purpose (a new key's one authenticated read): it is not masked.
   * Only for admin routes that hand a key to its owner once.
   */
  unmasked?: boolean;
  /**
   * Streamed after the head instead of `body` (NDJSON progress): each piece is masked and written
   * as it comes; `body` is ignored.
   */
  stream?: AsyncIterable<string>;
}

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
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
    /** The parameter the answer is about: `path.name`, or a bare name placed like InputError's. */
    readonly field?: string,
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

/** Control characters: refused in every path and query parameter (no value we keep has them). */
const CONTROL = /\p{Cc}/u;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** In body strings tab, newline and carriage return are text; every other control character is refused. */
const BODY_CONTROL = /(?![\t\n\r])\p{Cc}/u;

/**
 * A small JSON HTTP API on node:http: bearer auth with read/admin scopes, body size limit, zod
 * validation of every body and query, one error shape, no stack traces, a request id per request.
 * Client input never causes a 5xx: control characters in any parameter, bad encodings and
 * InputError from a handler are answered 4xx naming the parameter; HEAD is served by every GET
 * route without a body.
 */
export function createApiServer(options: ApiServerOptions): Server {
  const compiled = options.routes.map(compileRoute);
  const server = createServer((request, response) => {
    const started = performance.now();
    const requestId = requestIdOf(request);
    let template = 'unmatched';
    const head = request.method === 'HEAD';
    const method = head ? 'GET' : request.method;
    const send = (status: number, body: unknown, contentType?: string, unmasked = false): void => {
      const raw = contentType ? String(body) : JSON.stringify(body);
      const text = options.mask && !unmasked ? options.mask(raw) : raw;
      response.writeHead(status, {
        'content-type': contentType ?? 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(text),
        'x-request-id': requestId,
        ...(status === 401 && { 'www-authenticate': 'Bearer' }),
        ...(unmasked && { 'cache-control': 'no-store' }),
      });
      response.end(head ? undefined : text);
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
    /** A streamed answer: the head now, each piece masked as it comes; a failure mid-way ends it with an error line. */
    const stream = async (
      status: number,
      pieces: AsyncIterable<string>,
      contentType = 'application/x-ndjson',
    ): Promise<void> => {
      response.writeHead(status, { 'content-type': contentType, 'x-request-id': requestId });
      try {
        for await (const piece of pieces) {
          response.write(options.mask ? options.mask(piece) : piece);
        }
      } catch (error) {
        const message = error instanceof ModelCenterError ? error.message : 'internal error';
        const line = JSON.stringify({ error: { code: 'failed', message, requestId } });
        response.write(`${options.mask ? options.mask(line) : line}\n`);
      }
      response.end();
      const seconds = (performance.now() - started) / 1000;
      options.onRequest?.(request.method ?? 'GET', template, status, seconds);
      options.log.info(
        { requestId, method: request.method, route: template, status },
        'http request',
      );
    };
    const fail = (status: number, code: string, message: string, field?: string): void =>
      send(status, { error: { code, message, requestId, ...(field && { field }) } });

    void (async () => {
      let url: URL;
      try {
        url = new URL(request.url ?? '/', 'http://localhost');
      } catch {
        return fail(400, 'invalid_request', 'the request target is not a valid URL path', 'path');
      }
      const matches = compiled
        .map((c) => ({ c, m: c.pattern.exec(url.pathname) }))
        .filter((x) => x.m !== null);
      if (matches.length === 0)
        return fail(404, 'not_found', `no route ${printable(url.pathname)}`);
      const hit = matches.find((x) => x.c.route.method === method);
      if (!hit) {
        const allowed = matches.flatMap((x) =>
          x.c.route.method === 'GET' ? ['GET', 'HEAD'] : [x.c.route.method],
        );
        response.setHeader('allow', allowed.join(', '));
        return fail(
          405,
          'method_not_allowed',
          `${printable(url.pathname)} accepts ${allowed.join(', ')}`,
        );
      }
      const { route } = hit.c;
      template = route.path;
      let actor = 'anonymous';
      let scope: Scope | undefined;
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
            `${method} ${route.path} needs an admin token; this token has read scope`,
          );
        }
        actor = auth.name;
        scope = auth.scope;
      }
      const params: Record<string, string> = {};
      for (const [i, name] of hit.c.names.entries()) {
        try {
          params[name] = decodeURIComponent(hit.m![i + 1]!);
        } catch {
          return fail(
            400,
            'invalid_request',
            `path.${name}: ${printable(hit.m![i + 1]!)} is not valid URL encoding (percent-encoded UTF-8)`,
            `path.${name}`,
          );
        }
      }
      for (const [name, value] of Object.entries(params)) {
        if (CONTROL.test(value))
          return fail(
            400,
            'invalid_request',
            `path.${name}: must not contain control characters (NUL, newline, …)`,
            `path.${name}`,
          );
      }
      for (const [name, value] of url.searchParams) {
        if (CONTROL.test(name) || CONTROL.test(value)) {
          const field = `query.${printable(name)}`;
          return fail(
            400,
            'invalid_request',
            `${field}: must not contain control characters (NUL, newline, …)`,
            field,
          );
        }
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
          const bad = badText(json);
          if (bad) return fail(400, 'invalid_request', `${bad.field}: ${bad.problem}`, bad.field);
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
        actor,
        ...(scope && { scope }),
        head,
      });
      if (reply.stream) return stream(reply.status, reply.stream, reply.contentType);
      send(
        reply.status,
        reply.body,
        reply.contentType,
        reply.unmasked === true && route.scope === 'admin',
      );
    })().catch((error: unknown) => {
      if (response.headersSent) return;
      if (error instanceof HttpError || error instanceof InputError)
        return fail(
          error.status,
          error.code,
          error.message,
          fieldOf(error.field, method, template, compiled),
        );
      if (isDiskFull(error)) {
        // Not a bug to hunt in the log: say what to do (writes are retried by whoever asked).
        options.log.warn({ requestId, err: describeError(error) }, 'request failed: disk full');
        return fail(
          507,
          'disk_full',
          `the disk is full (${describeError(error)}) — free space in the state directory and the repository, then retry`,
        );
      }
      // Git refused a commit (a lock left behind, a read-only .git): the repository's state, not
      // the request's nor a bug; the files are back as they were and the next attempt retries.
      if (error instanceof GitStateError) return fail(503, 'git_failed', error.message);
      options.log.error({ requestId, err: describeError(error) }, 'handler failed');
      const known = error instanceof ModelCenterError;
      fail(
        500,
        'internal',
        known ? error.message : `internal error — see the controller log for request ${requestId}`,
      );
    });
  });
  // A request node:http cannot parse (a NUL or control character in the request line or a
  // header, a header block over the limit) is answered here, still in the one error shape.
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
    const requestId = randomUUID();
    const body = JSON.stringify({
      error: {
        code: 'bad_request',
        message:
          status === 431
            ? 'the request headers are too large'
            : 'the request is not valid HTTP (a control character in the path or a header?)',
        requestId,
      },
    });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-request-id: ${requestId}\r\nconnection: close\r\n\r\n${body}`,
    );
  });
  return server;
}

/**
 * Where an InputError's (or HttpError's) field lives in the request: `query.since`, `body.to`,
 * `path.callId`; a dotted field inside the body (`provider.base_url`) gets the `body.` prefix.
 */
function fieldOf(
  field: string | undefined,
  method: string | undefined,
  template: string,
  compiled: readonly CompiledRoute[],
): string | undefined {
  if (!field || /^(path|query|body)(\.|$)/.test(field)) return field;
  // GET and POST /v1/providers share a template: the route that answered is the one with both.
  const found = compiled.find((c) => c.route.path === template && c.route.method === method);
  if (!found) return field;
  const head = field.split('.')[0]!;
  if (found.names.includes(head)) return `path.${field}`;
  if (found.route.query?.shape && Object.hasOwn(found.route.query.shape, head))
    return `query.${field}`;
  return found.route.body ? `body.${field}` : field;
}

/**
 * The first string in a parsed JSON body (a key or a value) with a control character other than
 * tab and newlines, or that is not well-formed Unicode (a lone surrogate). Iterative: a deeply
 * nested body cannot overflow the stack.
 */
function badText(json: unknown): { field: string; problem: string } | undefined {
  const stack: { value: unknown; path: string }[] = [{ value: json, path: 'body' }];
  const check = (text: string, path: string) => {
    if (BODY_CONTROL.test(text))
      return { field: path, problem: 'must not contain control characters (NUL, …)' };
    if (LONE_SURROGATE.test(text))
      return { field: path, problem: 'must be well-formed Unicode (a lone surrogate)' };
    return undefined;
  };
  while (stack.length > 0) {
    const { value, path } = stack.pop()!;
    if (typeof value === 'string') {
      const bad = check(value, path);
      if (bad) return bad;
    } else if (Array.isArray(value)) {
      value.forEach((item, i) => stack.push({ value: item, path: `${path}.${i}` }));
    } else if (value !== null && typeof value === 'object') {
      for (const [key, item] of Object.entries(value)) {
        const keyPath = `${path}.${printable(key)}`;
        const bad = check(key, keyPath);
        if (bad) return bad;
        stack.push({ value: item, path: keyPath });
      }
    }
  }
  return undefined;
}

/** Client text in a message or field: control characters escaped, long text cut. */
function printable(text: string): string {
  const cut = text.length > 100 ? `${text.slice(0, 100)}…` : text;
  return JSON.stringify(cut).slice(1, -1);
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
      ...(route.rawBody && {
        requestBody: {
          required: false,
          content: { 'text/plain': { schema: { type: 'string', description: 'read as text' } } },
        },
      }),
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
        ...((route.body ?? route.rawBody) && {
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
