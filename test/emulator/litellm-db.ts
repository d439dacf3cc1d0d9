import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An emulator of LiteLLM 1.104.0's database-mode model management, for the admin-api strategy:
 * several instances sharing one in-memory `LiteLLM_ProxyModelTable`, each with its own config.yaml
 * models and its own database poll. Behaviour and answers follow the pinned source
 * (proxy/management_endpoints/model_management_endpoints.py, proxy_server.py `add_deployment`,
 * `_delete_deployment`, `_add_deployment`; litellm-facts §2.2, §5):
 * - the instance that takes a write applies it at once; the others on their next poll;
 * - a poll evicts router deployments that are neither in the YAML nor in the database, and upserts
 *   every database row (a row with a YAML id overrides the YAML deployment);
 * - litellm_params string values are stored encrypted and resolved (`os.environ/NAME`) at load;
 * - `POST /model/update` writes litellm_params and model_name but not model_info; `PATCH
 *   /model/{id}/update` merges both; neither can remove a field;
 * - config.yaml models are refused by both update routes; errors come in LiteLLM's own bodies.
 * - `GET /spend/logs/v2` over an in-memory `LiteLLM_SpendLogs` table: bounds are whole UTC seconds
 *   (`YYYY-MM-DD HH:MM:SS` or a date), both included; rows ordered by startTime alone and paged by
 *   offset; the count stops at 10,000 (`total_is_capped`); page_size above 1,000 is a 422.
 * Every request is recorded (method, path, query, body), so tests can check them against the real
 * OpenAPI document.
 */

export interface EmulatedDeployment {
  model_name: string;
  litellm_params: Record<string, unknown>;
  model_info: Record<string, unknown>;
}

export interface EmulatedInstanceOptions {
  /** This instance's own config.yaml model_list (served with `db_model: false`). */
  yaml?: EmulatedDeployment[];
  /** `proxy_config_reload_interval_seconds` in ms (LiteLLM: 30 000). Undefined: never polls. */
  pollMs?: number;
  /** What `os.environ/NAME` resolves to on this instance. */
  env?: Record<string, string>;
}

export interface EmulatorOptions {
  masterKey: string;
  instances: EmulatedInstanceOptions[];
  /** false: no `database_url` (every write answers "No DB Connected"). Default true. */
  database?: boolean;
  /** false: a database but `store_model_in_db` off. Default true. */
  storeModelInDb?: boolean;
}

/** A `LiteLLM_SpendLogs` row (the columns `/spend/logs/v2` lists). startTime etc. are UTC. */
export interface EmulatedSpendLog {
  request_id: string;
  litellm_call_id: string | null;
  call_type: string;
  api_key: string;
  spend: number;
  total_tokens: number;
  prompt_tokens: number;
  completion_tokens: number;
  startTime: Date;
  endTime: Date;
  completionStartTime: Date;
  model: string;
  model_id: string;
  model_group: string;
  custom_llm_provider: string;
  api_base: string;
  user: string;
  metadata: Record<string, unknown>;
  cache_hit: string;
  cache_key: string;
  request_tags: string[];
  team_id: string;
  end_user: string;
  session_id: string | null;
  status: string | null;
}

export interface RecordedAdminRequest {
  instance: string;
  method: string;
  /** Percent-decoded, without the query string: what LiteLLM routes on. */
  path: string;
  query: Record<string, string>;
  body: unknown;
  status: number;
}

export interface EmulatedInstance {
  url: string;
  /** Stops (false) or resumes (true) this instance's database poll. */
  setPolling(on: boolean): void;
  /** The router's deployment ids now, sorted. */
  servedIds(): string[];
}

export interface DbEmulator {
  instances: EmulatedInstance[];
  urls: string[];
  requests: RecordedAdminRequest[];
  /** Requests that change the database (every POST and PATCH). */
  writes(): RecordedAdminRequest[];
  /** The shared `LiteLLM_ProxyModelTable`, by model_id (litellm_params encrypted). */
  rows: Map<string, ModelRow>;
  /** The next `count` `/model/new` calls fail as a database error does in LiteLLM. */
  failNextCreates(count: number): void;
  /** The shared `LiteLLM_SpendLogs` table; tests add rows at any time (LiteLLM writes late). */
  spendLogs: EmulatedSpendLog[];
  /** The next `count` `/spend/logs/v2` calls fail with a 500 (a database error). */
  failNextSpendLogs(count: number): void;
  /** Runs before every `/spend/logs/v2` answer (e.g. to write rows while a reader pages). */
  onSpendLogsRead(hook: ((query: Record<string, string>) => void) | undefined): void;
  close(): Promise<void>;
}

interface ModelRow {
  model_id: string;
  model_name: string;
  litellm_params: Record<string, unknown>;
  model_info: Record<string, unknown>;
  created_at: string;
  created_by: string;
  updated_at: string;
  updated_by: string;
}

interface Served {
  model_name: string;
  litellm_params: Record<string, unknown>;
  model_info: Record<string, unknown>;
  db: boolean;
}

interface Instance {
  url: string;
  yaml: Map<string, Served>;
  router: Map<string, Served>;
  env: Record<string, string>;
  pollMs: number | undefined;
  timer: NodeJS.Timeout | undefined;
}

type Answer = { status: number; body: unknown };

const ENCRYPTED = 'emulated-enc:';
const CREATED_BY = 'default_user_id';

export async function startDbEmulator(options: EmulatorOptions): Promise<DbEmulator> {
  const database = options.database ?? true;
  const storeModelInDb = options.storeModelInDb ?? true;
  const rows = new Map<string, ModelRow>();
  const requests: RecordedAdminRequest[] = [];
  const servers: Server[] = [];
  const instances: Instance[] = [];
  let failingCreates = 0;
  const spendLogs: EmulatedSpendLog[] = [];
  let failingSpendLogs = 0;
  let spendLogsHook: ((query: Record<string, string>) => void) | undefined;

  const reconcile = (instance: Instance): void => {
    const valid = new Set([...instance.yaml.keys(), ...rows.keys()]);
    for (const id of [...instance.router.keys()]) if (!valid.has(id)) instance.router.delete(id);
    for (const row of rows.values()) instance.router.set(row.model_id, load(row, instance.env));
  };

  const handle = (
    instance: Instance,
    method: string,
    path: string,
    query: Record<string, string>,
    body: unknown,
  ): Answer => {
    if (path === '/health/readiness' && method === 'GET')
      return {
        status: 200,
        body: {
          status: 'connected',
          db: database ? 'connected' : 'Not connected',
          litellm_version: '1.104.0',
        },
      };
    const route = ROUTES.find((r) => r.pattern.test(path));
    if (!route) return { status: 404, body: { detail: 'Not Found' } };
    if (route.method !== method) return { status: 405, body: { detail: 'Method Not Allowed' } };
    return route.answer({ instance, path, query, body });
  };

  const ROUTES: {
    method: string;
    pattern: RegExp;
    answer: (call: {
      instance: Instance;
      path: string;
      query: Record<string, string>;
      body: unknown;
    }) => Answer;
  }[] = [
    {
      method: 'GET',
      pattern: /^\/spend\/logs\/v2$/,
      answer: ({ query }) => {
        spendLogsHook?.(query);
        if (!database) return proxyError(401, 'Prisma Client is not initialized', 'internal_error');
        if (failingSpendLogs-- > 0)
          return proxyError(500, 'Error in ui_view_spend_logs: database timeout', 'internal_error');
        return spendLogsPage(spendLogs, query);
      },
    },
    {
      method: 'GET',
      pattern: /^\/v1\/model\/info$/,
      answer: ({ instance }) => ({
        status: 200,
        body: { data: [...instance.router.entries()].map(([id, d]) => modelInfoEntry(id, d)) },
      }),
    },
    {
      method: 'POST',
      pattern: /^\/model\/new$/,
      answer: ({ instance, body }) => {
        if (!database) return noDb();
        const invalid = deploymentProblem(body);
        if (invalid) return invalid;
        const deployment = body as EmulatedDeployment;
        if (!storeModelInDb) return storeOff();
        const given = deployment.model_info?.id;
        const id = typeof given === 'string' && given ? given : randomUUID();
        // A database error (here: the unique model_id constraint) is swallowed inside
        // add_new_model's try, and the call answers this:
        if (rows.has(id) || failingCreates-- > 0)
          return proxyError(
            500,
            pyDict('Failed to add model to db. Check your server logs for more details.'),
          );
        const now = new Date().toISOString();
        const row: ModelRow = {
          model_id: id,
          model_name: deployment.model_name,
          litellm_params: encrypt(deployment.litellm_params),
          model_info: { ...(deployment.model_info ?? {}), id, db_model: false },
          created_at: now,
          created_by: CREATED_BY,
          updated_at: now,
          updated_by: CREATED_BY,
        };
        rows.set(id, row);
        reconcile(instance);
        return { status: 200, body: row };
      },
    },
    {
      method: 'PATCH',
      pattern: /^\/model\/[^/]+\/update$/,
      answer: ({ instance, path, body }) => {
        const id = path.split('/')[2] ?? '';
        if (!database)
          return {
            status: 500,
            body: {
              detail: {
                error:
                  'DB not connected. This endpoint needs a database; set DATABASE_URL to a PostgreSQL connection string (postgresql://...) to enable it. See https://docs.litellm.ai/docs/proxy/virtual_keys',
              },
            },
          };
        if (!storeModelInDb)
          return proxyError(
            400,
            'Model updates only supported for DB-stored models',
            'validation_error',
          );
        const row = rows.get(id);
        if (!row) {
          if (instance.router.has(id))
            return proxyError(
              400,
              'Cannot edit config-based model. Store model in DB via /model/new first.',
              'validation_error',
            );
          return proxyError(404, `Model ${id} not found on proxy.`, 'not_found_error');
        }
        const patch = body as Partial<EmulatedDeployment>;
        if (typeof patch.model_name === 'string') row.model_name = patch.model_name;
        Object.assign(row.litellm_params, encrypt(withoutNulls(patch.litellm_params)));
        Object.assign(row.model_info, withoutNulls(patch.model_info), { id });
        row.updated_at = new Date().toISOString();
        reconcile(instance);
        return { status: 200, body: row };
      },
    },
    {
      method: 'POST',
      pattern: /^\/model\/update$/,
      answer: ({ instance, body }) => {
        if (!database) return noDb();
        const patch = body as Partial<EmulatedDeployment>;
        const id = patch.model_info?.id;
        if (typeof id !== 'string')
          return proxyError(400, 'Authentication Error, model_info not provided');
        const row = rows.get(id);
        if (!row) {
          if (instance.router.has(id))
            return proxyError(
              400,
              pyDict(
                "Can't edit model. Model in config. Store model in db via `/model/new`. to edit.",
              ),
            );
          return proxyError(400, 'Authentication Error, model not found');
        }
        // update_model() falls through its `if store_model_in_db` and returns None.
        if (!storeModelInDb) return { status: 200, body: null };
        if (typeof patch.model_name === 'string') row.model_name = patch.model_name;
        Object.assign(row.litellm_params, encrypt(withoutNulls(patch.litellm_params)));
        row.updated_at = new Date().toISOString();
        reconcile(instance);
        return { status: 200, body: row };
      },
    },
    {
      method: 'POST',
      pattern: /^\/model\/delete$/,
      answer: ({ instance, body }) => {
        if (!database) return noDb();
        const id = (body as { id?: unknown } | null)?.id;
        if (typeof id !== 'string')
          return {
            status: 422,
            body: { detail: [{ type: 'missing', loc: ['body', 'id'], msg: 'Field required' }] },
          };
        if (!rows.has(id)) return proxyError(400, pyDict(`Model with id=${id} not found in db`));
        if (!storeModelInDb) return storeOff();
        rows.delete(id);
        instance.router.delete(id);
        return { status: 200, body: { message: `Model: ${id} deleted successfully` } };
      },
    },
  ];

  const serve = (instance: Instance) => (req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const text = await readBody(req);
      const method = req.method ?? 'GET';
      // Like uvicorn and Starlette: routes match the percent-decoded path, so an encoded `/` splits.
      const url = new URL(req.url ?? '/', 'http://emulator');
      const path = safeDecode(url.pathname);
      const query = Object.fromEntries(url.searchParams);
      let body: unknown = undefined;
      let answer: Answer;
      try {
        body = text ? JSON.parse(text) : undefined;
        answer =
          path !== '/health/readiness' && !authorized(req, options.masterKey)
            ? proxyError(
                401,
                'Authentication Error, Invalid proxy server token passed. valid_token=None.',
              )
            : handle(instance, method, path, query, body);
      } catch {
        answer = {
          status: 422,
          body: { detail: [{ type: 'json_invalid', loc: ['body'], msg: 'JSON decode error' }] },
        };
      }
      requests.push({ instance: instance.url, method, path, query, body, status: answer.status });
      res.writeHead(answer.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer.body));
    })();
  };

  for (const spec of options.instances) {
    const yaml = new Map(
      (spec.yaml ?? []).map((d): [string, Served] => [
        String(d.model_info.id),
        { ...d, litellm_params: resolve(d.litellm_params, spec.env ?? {}), db: false },
      ]),
    );
    const instance: Instance = {
      url: '',
      yaml,
      router: new Map(yaml),
      env: spec.env ?? {},
      pollMs: spec.pollMs,
      timer: undefined,
    };
    const server = createServer(serve(instance));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    instance.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    servers.push(server);
    instances.push(instance);
  }

  const setPolling = (instance: Instance, on: boolean): void => {
    clearInterval(instance.timer);
    instance.timer = undefined;
    if (on && instance.pollMs !== undefined) {
      instance.timer = setInterval(() => reconcile(instance), instance.pollMs);
      instance.timer.unref();
    }
  };
  for (const instance of instances) setPolling(instance, true);

  return {
    instances: instances.map((instance) => ({
      get url() {
        return instance.url;
      },
      setPolling: (on: boolean) => setPolling(instance, on),
      servedIds: () => [...instance.router.keys()].sort(),
    })),
    urls: instances.map((i) => i.url),
    requests,
    writes: () => requests.filter((r) => r.method === 'POST' || r.method === 'PATCH'),
    rows,
    failNextCreates: (count: number) => {
      failingCreates = count;
    },
    spendLogs,
    failNextSpendLogs: (count: number) => {
      failingSpendLogs = count;
    },
    onSpendLogsRead: (hook) => {
      spendLogsHook = hook;
    },
    async close() {
      for (const instance of instances) setPolling(instance, false);
      await Promise.all(
        servers.map(
          (server) =>
            new Promise<void>((resolve) => {
              server.closeAllConnections();
              server.close(() => resolve());
            }),
        ),
      );
    },
  };
}

/** LiteLLM's SPEND_LOGS_PAGINATION_COUNT_CAP. */
const SPEND_LOGS_CAP = 10_000;
const SORTABLE = new Set([
  'spend',
  'total_tokens',
  'startTime',
  'endTime',
  'request_duration_ms',
  'model',
  'ttft_ms',
]);

/** `ui_view_spend_logs` for the public v2 route, without filters other than the time window. */
function spendLogsPage(table: EmulatedSpendLog[], query: Record<string, string>): Answer {
  const page = query.page === undefined ? 1 : Number(query.page);
  const pageSize = query.page_size === undefined ? 50 : Number(query.page_size);
  const invalid = [
    (!Number.isInteger(page) || page < 1) && { loc: ['query', 'page'], ge: 1 },
    (!Number.isInteger(pageSize) || pageSize < 1) && { loc: ['query', 'page_size'], ge: 1 },
    pageSize > 1000 && { loc: ['query', 'page_size'], le: 1000 },
  ].filter(Boolean);
  if (invalid.length > 0)
    return {
      status: 422,
      body: {
        detail: invalid.map((problem) => ({
          type: 'less_than_equal',
          msg: 'Input should be a valid page number or size',
          ...(problem as object),
        })),
      },
    };
  const sortBy = query.sort_by ?? 'startTime';
  if (!SORTABLE.has(sortBy)) return proxyError(400, `Invalid sort_by: ${sortBy}`, 'bad_request');
  if (query.start_date === undefined || query.end_date === undefined)
    return proxyError(400, 'Start date and end date are required', 'bad_request');
  const from = spendLogsDate(query.start_date);
  const to = spendLogsDate(query.end_date);
  if (from === undefined || to === undefined) {
    const bad = from === undefined ? query.start_date : query.end_date;
    return proxyError(
      400,
      `Invalid date format: ${bad}. Expected: 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS'`,
      'bad_request',
    );
  }
  const descending = (query.sort_order ?? 'desc').toLowerCase() !== 'asc';
  const matching = table
    .filter((row) => row.startTime.getTime() >= from && row.startTime.getTime() <= to)
    .sort((a, b) => (a.startTime.getTime() - b.startTime.getTime()) * (descending ? -1 : 1));
  const total = Math.min(matching.length, SPEND_LOGS_CAP);
  const skip = (page - 1) * pageSize;
  return {
    status: 200,
    body: {
      data: matching.slice(skip, skip + pageSize).map(spendLogJson),
      total,
      page,
      page_size: pageSize,
      total_pages: Math.ceil(total / pageSize),
      total_is_capped: matching.length > SPEND_LOGS_CAP,
    },
  };
}

/** `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD`, read as UTC (datetime.strptime + tzinfo=utc). */
function spendLogsDate(text: string): number | undefined {
  const match = /^(\d{4}-\d{2}-\d{2})(?: (\d{2}:\d{2}:\d{2}))?$/.exec(text.trim());
  if (!match) return undefined;
  const at = Date.parse(`${match[1]}T${match[2] ?? '00:00:00'}Z`);
  return Number.isNaN(at) ? undefined : at;
}

/** A row as query_raw hands it to FastAPI: timestamps as ISO text with an offset, JSON decoded. */
function spendLogJson(row: EmulatedSpendLog): Record<string, unknown> {
  const time = (at: Date): string => `${at.toISOString().slice(0, 23)}000+00:00`;
  return {
    ...row,
    startTime: time(row.startTime),
    endTime: time(row.endTime),
    completionStartTime: time(row.completionStartTime),
    request_duration_ms: row.endTime.getTime() - row.startTime.getTime(),
  };
}

/** A database row as the router holds it: decrypted, `os.environ/` resolved, `db_model: true`. */
function load(row: ModelRow, env: Record<string, string>): Served {
  return {
    model_name: row.model_name,
    litellm_params: resolve(decrypt(row.litellm_params), env),
    model_info: { ...row.model_info, id: row.model_id, db_model: true },
    db: true,
  };
}

/** One `/v1/model/info` entry: api_key removed, model_info completed from the "cost map". */
function modelInfoEntry(id: string, d: Served): unknown {
  const params = { ...d.litellm_params };
  delete params.api_key;
  const model = typeof params.model === 'string' ? params.model : '';
  return {
    model_name: d.model_name,
    litellm_params: params,
    model_info: {
      litellm_provider: model.split('/')[0],
      ...d.model_info,
      id,
      db_model: d.db,
    },
  };
}

function deploymentProblem(body: unknown): Answer | undefined {
  const b = body as Partial<EmulatedDeployment> | null;
  const missing = [
    typeof b?.model_name !== 'string' && ['body', 'model_name'],
    (typeof b?.litellm_params !== 'object' || b.litellm_params === null) && [
      'body',
      'litellm_params',
    ],
    typeof b?.litellm_params?.model !== 'string' && ['body', 'litellm_params', 'model'],
  ].filter(Boolean);
  if (missing.length === 0) return undefined;
  return {
    status: 422,
    body: { detail: missing.map((loc) => ({ type: 'missing', loc, msg: 'Field required' })) },
  };
}

function encrypt(params: Record<string, unknown> | undefined): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(params ?? {}).map(([k, v]) => [
      k,
      typeof v === 'string' ? ENCRYPTED + Buffer.from(v).toString('base64url') : v,
    ]),
  );
}

function decrypt(params: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(params).map(([k, v]) => [
      k,
      typeof v === 'string' && v.startsWith(ENCRYPTED)
        ? Buffer.from(v.slice(ENCRYPTED.length), 'base64url').toString()
        : v,
    ]),
  );
}

function resolve(params: Record<string, unknown>, env: Record<string, string>) {
  return Object.fromEntries(
    Object.entries(params).map(([k, v]) => [
      k,
      typeof v === 'string' && v.startsWith('os.environ/')
        ? (env[v.slice('os.environ/'.length)] ?? null)
        : v,
    ]),
  );
}

function withoutNulls(value: Record<string, unknown> | undefined): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value ?? {}).filter(([, v]) => v != null));
}

function authorized(req: IncomingMessage, masterKey: string): boolean {
  return (
    req.headers.authorization === `Bearer ${masterKey}` ||
    req.headers['x-litellm-api-key'] === masterKey
  );
}

function proxyError(status: number, message: string, type = 'auth_error'): Answer {
  return { status, body: { error: { message, type, param: 'None', code: String(status) } } };
}

function noDb(): Answer {
  return proxyError(
    500,
    pyDict(
      "No DB Connected. Here's how to do it - https://docs.litellm.ai/docs/proxy/virtual_keys",
    ),
  );
}

function storeOff(): Answer {
  return proxyError(
    500,
    pyDict("Set `'STORE_MODEL_IN_DB='True'` in your env to enable this feature."),
  );
}

/** `str({'error': message})` as Python prints it: LiteLLM puts that in ProxyException messages. */
function pyDict(message: string): string {
  const quoted = message.includes("'") && !message.includes('"') ? `"${message}"` : `'${message}'`;
  return `{'error': ${quoted}}`;
}

function safeDecode(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
