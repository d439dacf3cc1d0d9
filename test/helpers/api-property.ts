import fc from 'fast-check';
import { errorBodySchema } from '../../src/api/server.js';

/**
 * Property-based requests for the HTTP API, generated from its OpenAPI document (which the server
 * builds from its route table), so a new route, parameter or body field is exercised without
 * touching the tests. Each request mixes what the route itself names as valid (enum values,
 * defaults) with values that broke it before: impossible or far-away dates, control characters,
 * bad percent-encoding, lone surrogates, ranges where one commit is wanted, huge and nested bodies.
 */

/** Values worth trying in any parameter or body field. */
export const TRICKY_VALUES = [
  '',
  ' ',
  '-',
  ',',
  '7d',
  '1h',
  '2w',
  '0d',
  '99999999d',
  `${'9'.repeat(400)}w`,
  '2026-11-01',
  '2026-02-30',
  '2026-02-29',
  '0000-01-01',
  '1969-12-31',
  '9999-12-31T23:59:59Z',
  '2026-11-01T24:00',
  '2026-11-01T12:00:00+02:00',
  'HEAD',
  'HEAD~1',
  'HEAD~1..HEAD',
  'HEAD^!',
  'HEAD^-',
  'HEAD@{1}',
  '--all',
  'true',
  'false',
  'null',
  '0',
  '-1',
  '1.5',
  '1e309',
  'NaN',
  '100001',
  '9007199254740993',
  'x\u0000y',
  '\u0000',
  'a\nb',
  '\t',
  '\u007f',
  '\u0085',
  'é',
  '😀',
  '\uD800',
  'a'.repeat(3000),
  '../../etc/passwd',
  '%00',
  '{}',
  '[]',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  '../x',
  'x'.repeat(301),
  "'; drop table spend; --",
];

/** Raw path segments and query fragments sent without encoding. */
const RAW_FRAGMENTS = ['%00', '%ZZ', '%', '%2F', '..', '.', '%E0%A4%A', '%ED%A0%80', '%0A', '%7F'];

const NESTED = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;

interface Parameter {
  name: string;
  in: 'path' | 'query';
  schema?: unknown;
}

interface Operation {
  parameters?: Parameter[];
  requestBody?: { content: Record<string, { schema?: unknown }> };
  'x-scope'?: string;
}

export interface OpenApiDocument {
  paths: Record<string, Record<string, Operation>>;
}

export interface ApiRequest {
  method: string;
  /** Path and query, encoded. */
  target: string;
  /** The route template it was made from (for messages). */
  route: string;
  body?: string;
  token: 'admin' | 'read' | 'none';
}

/** Enum, const and default values a JSON Schema names. */
function namedValues(schema: unknown): string[] {
  const found = new Set<string>();
  const stack = [schema];
  while (stack.length > 0) {
    const node = stack.pop();
    if (Array.isArray(node)) {
      stack.push(...(node as unknown[]));
      continue;
    }
    if (node === null || typeof node !== 'object') continue;
    for (const [key, value] of Object.entries(node)) {
      if (key === 'enum' && Array.isArray(value)) value.forEach((v) => found.add(String(v)));
      else if ((key === 'const' || key === 'default') && typeof value !== 'object')
        found.add(String(value));
      else if (typeof value === 'object') stack.push(value);
    }
  }
  return [...found];
}

const PROTOTYPE_NAMES = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf'];

/** Characters that broke handlers: NUL and other controls, a lone surrogate. */
const POISON = ['\u0000', '\u0001', '\n', '\u001b', '\u007f', '\u009f', '\uD800'];

/**
 * A string for one parameter or field: values the schema names, tricky values, either with a
 * poison character slipped in, lists of them, anything.
 */
function valueArbitrary(schema: unknown, known: readonly string[]): fc.Arbitrary<string> {
  const named = [...namedValues(schema), ...known];
  const tricky = fc.constantFrom(...TRICKY_VALUES);
  const pick = named.length > 0 ? fc.oneof(fc.constantFrom(...named), tricky) : tricky;
  const poisoned = fc
    .tuple(pick, fc.constantFrom(...POISON), fc.nat())
    .map(([value, poison, at]) => {
      const i = at % (value.length + 1);
      return `${value.slice(0, i)}${poison}${value.slice(i)}`;
    });
  return fc.oneof(
    { weight: 6, arbitrary: pick },
    // Names a plain object has through its prototype: a lookup by name that is not an own-key
    // check finds something (a function, Object.prototype) instead of nothing.
    { weight: 2, arbitrary: fc.constantFrom(...PROTOTYPE_NAMES) },
    { weight: 2, arbitrary: poisoned },
    {
      weight: 2,
      arbitrary: fc.array(pick, { minLength: 2, maxLength: 3 }).map((v) => v.join(',')),
    },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
  );
}

/** encodeURIComponent, except that a lone surrogate (which it refuses) goes out as its raw bytes. */
function encode(text: string): string {
  try {
    return encodeURIComponent(text);
  } catch {
    return [...text]
      .map((c) => {
        try {
          return encodeURIComponent(c);
        } catch {
          return '%ED%A0%80';
        }
      })
      .join('');
  }
}

interface FieldSchema {
  type?: string | string[];
  items?: unknown;
  properties?: Record<string, unknown>;
}

/**
 * A value for one body field. `typed`: the shape its schema asks for — a string (tricky, or one
 * the route names), a boolean, an array of such values, an object with its fields and tricky
 * extra keys — so that the request gets past validation into the handler (`ids: ["__proto__"]`
 * answered 500 once; a field given only strings never reached it). Untyped: anything at all.
 */
function fieldArbitrary(
  schema: unknown,
  known: readonly string[],
  typed: boolean,
  depth = 0,
): fc.Arbitrary<unknown> {
  const { type, items, properties } = (schema ?? {}) as FieldSchema;
  const types = Array.isArray(type) ? type : type ? [type] : [];
  const value = valueArbitrary(schema, known);
  const shaped: fc.Arbitrary<unknown>[] = [];
  if (types.includes('string')) shaped.push(value);
  if (types.includes('boolean')) shaped.push(fc.boolean());
  if (types.includes('integer') || types.includes('number'))
    shaped.push(fc.oneof(fc.integer({ min: -1, max: 1000 }), fc.constantFrom(1e308, 0.5)));
  if (types.includes('array') && depth < 2) {
    shaped.push(
      fc.array(fieldArbitrary(items, known, typed, depth + 1), { minLength: 1, maxLength: 3 }),
    );
  }
  if (types.includes('object') && depth < 2) {
    const named = Object.entries(properties ?? {});
    shaped.push(
      fc
        .tuple(
          fc.record(
            Object.fromEntries(
              named.map(([n, s]) => [n, fieldArbitrary(s, known, typed, depth + 1)]),
            ),
            { requiredKeys: [] },
          ),
          fc.array(fc.tuple(value, fieldArbitrary(undefined, known, typed, depth + 1)), {
            maxLength: 3,
          }),
        )
        .map(([fields, extra]) => ({ ...fields, ...Object.fromEntries(extra) })),
    );
  }
  if (typed && shaped.length > 0) return fc.oneof(...shaped);
  return fc.oneof(
    ...shaped.map((arbitrary) => ({ weight: 4, arbitrary })),
    { weight: 4, arbitrary: value },
    { weight: 2, arbitrary: fc.boolean() },
    { weight: 1, arbitrary: fc.integer() },
    { weight: 1, arbitrary: fc.constantFrom(1e308, -1, 0.5, null) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  );
}

function bodyArbitrary(
  operation: Operation,
  known: readonly string[],
): fc.Arbitrary<string | undefined> {
  const content = operation.requestBody?.content ?? {};
  const schema = content['application/json']?.schema as
    { properties?: Record<string, unknown> } | undefined;
  const properties = Object.entries(schema?.properties ?? {});
  const object = (typed: boolean) =>
    fc
      .tuple(
        fc.record(
          Object.fromEntries(
            properties.map(([name, s]) => [name, fieldArbitrary(s, known, typed)]),
          ),
          { requiredKeys: [] },
        ),
        // An unknown field now and then (a strict body refuses it before the handler runs).
        fc.oneof(
          { weight: typed ? 8 : 1, arbitrary: fc.constant(undefined) },
          {
            weight: 1,
            arbitrary: fc.tuple(
              fc.string({ maxLength: 10 }),
              fieldArbitrary(undefined, known, false),
            ),
          },
        ),
      )
      .map(([fields, extra]) =>
        JSON.stringify(extra ? { ...fields, [extra[0]]: extra[1] } : fields),
      );
  return fc.oneof(
    { weight: 4, arbitrary: object(true) },
    { weight: 3, arbitrary: object(false) },
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.constantFrom('', 'null', '[]', '"x"', '{', 'not json', NESTED) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
    {
      weight: 1,
      arbitrary: fc
        .array(fc.jsonValue({ maxDepth: 3 }), { maxLength: 4 })
        .map((lines) => lines.map((l) => JSON.stringify(l)).join('\n')),
    },
  );
}

/**
 * Requests for every operation in `doc`. `known`: values worth trying in every parameter besides
 * the tricky ones (a job's name, a generated commit).
 */
export function apiRequests(
  doc: OpenApiDocument,
  known: readonly string[] = [],
): fc.Arbitrary<ApiRequest> {
  const perOperation = Object.entries(doc.paths).flatMap(([template, methods]) =>
    Object.entries(methods).map(([method, operation]) => {
      const parameters = operation.parameters ?? [];
      const bodySchema = operation.requestBody?.content['application/json']?.schema as
        { properties?: object } | undefined;
      const bodyFields = Object.keys(bodySchema?.properties ?? {}).length;
      const pathParameter = fc.oneof(
        { weight: 5, arbitrary: valueArbitrary(undefined, known).map(encode) },
        { weight: 1, arbitrary: fc.constantFrom(...RAW_FRAGMENTS) },
      );
      const path = fc
        .tuple(...parameters.filter((p) => p.in === 'path').map(() => pathParameter))
        .map((values) => {
          let i = 0;
          return template.replace(/\{\w+\}/g, () => values[i++] ?? 'x');
        });
      const queryNames = parameters.filter((p) => p.in === 'query');
      const unknownName = fc.constant<Parameter>({ name: 'unknown', in: 'query' });
      const queryName =
        queryNames.length > 0
          ? fc.oneof(
              { weight: 6, arbitrary: fc.constantFrom(...queryNames) },
              { weight: 1, arbitrary: unknownName },
            )
          : unknownName;
      const query = fc
        .tuple(
          fc.array(
            queryName.chain((p: Parameter) =>
              valueArbitrary(p.schema, known).map((v) => `${encode(p.name)}=${encode(v)}`),
            ),
            { maxLength: queryNames.length > 0 ? 4 : 1 },
          ),
          fc.option(fc.constantFrom(...RAW_FRAGMENTS), { freq: 8 }),
        )
        .map(([pairs, raw]) => [...pairs, ...(raw ? [`x=${raw}`] : [])].join('&'));
      const verb = method.toUpperCase();
      const methodArbitrary = fc.oneof(
        { weight: 8, arbitrary: fc.constant(verb) },
        { weight: verb === 'GET' ? 3 : 1, arbitrary: fc.constant('HEAD') },
        { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH') },
      );
      // A route with more inputs gets more of the runs.
      const weight = 1 + parameters.length + bodyFields;
      const requests = fc
        .record({
          method: methodArbitrary,
          path,
          query,
          body: bodyArbitrary(operation, known),
          token: fc.oneof(
            { weight: 8, arbitrary: fc.constant('admin' as const) },
            { weight: 1, arbitrary: fc.constantFrom('read' as const, 'none' as const) },
          ),
        })
        .map(({ method: m, path: p, query: q, body, token }): ApiRequest => ({
          method: m,
          target: q ? `${p}?${q}` : p,
          route: `${verb} ${template}`,
          ...(m !== 'GET' && m !== 'HEAD' && body !== undefined && { body }),
          token,
        }));
      return { weight, arbitrary: requests };
    }),
  );
  return fc.oneof(...perOperation);
}

/**
 * Sends `request` and checks what every answer to client input must be: never a 5xx; every
 * non-2xx in the one error shape with the request id of its header, and an `invalid_request`
 * naming its parameter; no body for HEAD.
 */
export async function checkAnswer(
  base: string,
  request: ApiRequest,
  tokens: { admin: string; read: string },
): Promise<void> {
  const token = request.token === 'none' ? undefined : tokens[request.token];
  const response = await fetch(`${base}${request.target}`, {
    method: request.method,
    headers: {
      ...(token && { authorization: `Bearer ${token}` }),
      ...(request.body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(request.body !== undefined && { body: request.body }),
  });
  const text = await response.text();
  const what = `${request.method} ${request.target.slice(0, 300)} (${request.route}) body ${JSON.stringify(request.body?.slice(0, 300))} → ${response.status} ${text.slice(0, 500)}`;
  if (response.status >= 500) throw new Error(`5xx for client input: ${what}`);
  if (request.method === 'HEAD') {
    if (text !== '') throw new Error(`HEAD answered with a body: ${what}`);
    return;
  }
  if (response.status < 300) return;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`an error that is not JSON: ${what}`);
  }
  const shape = errorBodySchema.safeParse(parsed);
  if (!shape.success) throw new Error(`an error not in the one shape: ${what}`);
  if (shape.data.error.requestId !== response.headers.get('x-request-id'))
    throw new Error(`the error's requestId differs from x-request-id: ${what}`);
  // Input refused as written names where it sits (path.name, query.since, body.ids.0, body).
  if (shape.data.error.code === 'invalid_request' && !shape.data.error.field)
    throw new Error(`an invalid_request that names no parameter: ${what}`);
}
