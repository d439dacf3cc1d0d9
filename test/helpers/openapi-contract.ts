/**
 * Checks requests a client sent against an OpenAPI 3 document: the route exists for that method,
 * every query parameter is declared and its value fits the declared type and bounds (FastAPI
 * ignores an undeclared parameter silently), and every field of the JSON body (at every depth
 * where the schema names its fields) is declared.
 * A field the schema does not declare passes only where the schema says `additionalProperties`
 * (pydantic `extra="allow"`): pydantic's default silently ignores unknown fields, which is exactly
 * the mistake this check exists to catch. Pure.
 */

export interface SentRequest {
  method: string;
  /** Without the query string. */
  path: string;
  query?: Record<string, string>;
  body?: unknown;
}

export interface ContractReport {
  /** `METHOD /path: what is wrong`, one per distinct problem. */
  problems: string[];
  /** `METHOD /template field.path`: fields accepted only through additionalProperties. */
  extras: string[];
  /** Distinct (method, route template) pairs that were checked. */
  routes: string[];
}

type Schema = {
  $ref?: string;
  type?: string | string[];
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  properties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
  allOf?: Schema[];
  anyOf?: Schema[];
  oneOf?: Schema[];
  items?: Schema;
};

type Operation = {
  parameters?: { name: string; in: string; required?: boolean; schema?: Schema }[];
  requestBody?: { content?: Record<string, { schema?: Schema }> };
};

export interface OpenApiDocument {
  paths: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, Schema> };
}

/** What an object schema accepts, after $ref, allOf, anyOf and oneOf are resolved. */
interface ObjectShape {
  properties: Map<string, Schema[]>;
  /** The schemas additional fields must match; empty when none is accepted. */
  additional: Schema[];
  acceptsAnyField: boolean;
  isObject: boolean;
}

export function checkRequests(
  document: OpenApiDocument,
  requests: readonly SentRequest[],
): ContractReport {
  const problems = new Set<string>();
  const extras = new Set<string>();
  const routes = new Set<string>();
  const templates = Object.keys(document.paths).map((template) => ({
    template,
    pattern: new RegExp(
      `^${template
        .split(/\{[^}]+\}/)
        .map(escapeRegExp)
        .join('[^/]+')}$`,
    ),
  }));

  for (const request of requests) {
    const method = request.method.toLowerCase();
    const call = `${request.method.toUpperCase()} ${request.path}`;
    const matches = templates.filter((t) => t.pattern.test(request.path));
    // A literal route wins over a template (as in FastAPI when the literal is declared first).
    const match =
      matches.find((t) => t.template === request.path && document.paths[t.template]?.[method]) ??
      matches.find((t) => document.paths[t.template]?.[method]);
    if (!match) {
      problems.add(
        matches.length > 0
          ? `${call}: LiteLLM serves ${matches.map((m) => m.template).join(', ')} but not with ${request.method.toUpperCase()}`
          : `${call}: no such route in LiteLLM's OpenAPI document`,
      );
      continue;
    }
    const route = `${request.method.toUpperCase()} ${match.template}`;
    routes.add(route);
    const operation = document.paths[match.template]?.[method];
    for (const [name, value] of Object.entries(request.query ?? {})) {
      const declared = operation?.parameters?.find((p) => p.in === 'query' && p.name === name);
      if (!declared) {
        problems.add(
          `${route}: query parameter "${name}" is not declared (LiteLLM would ignore it)`,
        );
      } else if (declared.schema && !fits(document, declared.schema, value)) {
        problems.add(
          `${route}: query parameter "${name}=${value}" does not fit ${JSON.stringify(declared.schema)}`,
        );
      }
    }
    if (request.body === undefined) continue;
    const schema = operation?.requestBody?.content?.['application/json']?.schema;
    if (!schema) {
      problems.add(`${route}: the client sends a JSON body but the route takes none`);
      continue;
    }
    walk(document, [schema], request.body, '', route, problems, extras);
  }
  return { problems: [...problems].sort(), extras: [...extras].sort(), routes: [...routes].sort() };
}

function walk(
  document: OpenApiDocument,
  schemas: Schema[],
  value: unknown,
  at: string,
  route: string,
  problems: Set<string>,
  extras: Set<string>,
): void {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return;
  const shape = objectShape(document, schemas);
  if (!shape.isObject) return;
  for (const [field, child] of Object.entries(value as Record<string, unknown>)) {
    const path = at ? `${at}.${field}` : field;
    const declared = shape.properties.get(field);
    if (declared) {
      walk(document, declared, child, path, route, problems, extras);
    } else if (shape.acceptsAnyField) {
      extras.add(`${route} ${path}`);
      if (shape.additional.length > 0)
        walk(document, shape.additional, child, path, route, problems, extras);
    } else {
      problems.add(
        `${route}: field "${path}" is not in the request body schema (LiteLLM would ignore it)`,
      );
    }
  }
}

/** What pydantic (FastAPI's query parsing) reads as a boolean. */
const PYDANTIC_BOOLEANS = new Set([
  'true',
  'false',
  '1',
  '0',
  'yes',
  'no',
  'on',
  'off',
  't',
  'f',
  'y',
  'n',
]);

/** Whether a query value (text) fits a parameter schema: type, enum and numeric bounds. */
function fits(document: OpenApiDocument, raw: Schema, value: string): boolean {
  const schema = resolveRef(document, raw);
  const branches = [...(schema.anyOf ?? []), ...(schema.oneOf ?? [])];
  if (branches.length > 0) return branches.some((branch) => fits(document, branch, value));
  if (schema.enum && !schema.enum.map(String).includes(value)) return false;
  const types = schema.type === undefined ? [] : [schema.type].flat();
  if (types.length === 0) return true;
  return types.some((type) => {
    if (type === 'string') return true;
    if (type === 'boolean') return PYDANTIC_BOOLEANS.has(value.toLowerCase());
    if (type !== 'integer' && type !== 'number') return false;
    const number = Number(value);
    if (value.trim() === '' || Number.isNaN(number)) return false;
    if (type === 'integer' && !Number.isInteger(number)) return false;
    return (
      (schema.minimum === undefined || number >= schema.minimum) &&
      (schema.maximum === undefined || number <= schema.maximum) &&
      (schema.exclusiveMinimum === undefined || number > schema.exclusiveMinimum) &&
      (schema.exclusiveMaximum === undefined || number < schema.exclusiveMaximum)
    );
  });
}

function objectShape(document: OpenApiDocument, schemas: Schema[]): ObjectShape {
  const shape: ObjectShape = {
    properties: new Map(),
    additional: [],
    acceptsAnyField: false,
    isObject: false,
  };
  const visit = (raw: Schema, depth: number): void => {
    if (depth > 32) return;
    const schema = resolveRef(document, raw);
    for (const part of [...(schema.allOf ?? []), ...(schema.anyOf ?? []), ...(schema.oneOf ?? [])])
      visit(part, depth + 1);
    if (schema.properties || schema.type === 'object' || schema.additionalProperties) {
      shape.isObject = true;
    }
    for (const [name, property] of Object.entries(schema.properties ?? {}))
      shape.properties.set(name, [...(shape.properties.get(name) ?? []), property]);
    if (schema.additionalProperties === true) shape.acceptsAnyField = true;
    if (typeof schema.additionalProperties === 'object') {
      shape.acceptsAnyField = true;
      shape.additional.push(schema.additionalProperties);
    }
  };
  for (const schema of schemas) visit(schema, 0);
  return shape;
}

function resolveRef(document: OpenApiDocument, schema: Schema): Schema {
  let current = schema;
  for (let hops = 0; current.$ref && hops < 32; hops++) {
    const name = current.$ref.replace('#/components/schemas/', '');
    const target = document.components?.schemas?.[name];
    if (!target) throw new Error(`OpenAPI document has no schema ${current.$ref}`);
    current = target;
  }
  return current;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
