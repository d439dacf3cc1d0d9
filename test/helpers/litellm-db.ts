import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { litellmVenv } from '../../src/litellm/install.js';
import { startLiteLLM, type RunningLiteLLM } from '../../src/litellm/process.js';
import { projectRoot } from '../../src/shared/paths.js';
import { startPostgres, type PostgresCluster } from './postgres.js';

const run = promisify(execFile);

/**
 * A real LiteLLM in database mode (PostgreSQL, Prisma), the recipe of shared/litellm-db/smoke.sh:
 * Prisma engines from `install-engines.sh`, `prisma generate` once per venv, one database migrated
 * once (`litellm_migrated`) and copied per test with `CREATE DATABASE … TEMPLATE`.
 */

/** The database every test database is copied from: LiteLLM's ~190 migrations already applied. */
export const TEMPLATE_DATABASE = 'litellm_migrated';

/**
 * The folder that carries the Prisma engines (install-engines.sh, prebuilt/): the environment's
 * MODELCENTER_LITELLM_DB_DIR, else `../shared/litellm-db` beside the repository, else
 * `/work/shared/litellm-db`.
 */
export function litellmDbDir(root = projectRoot()): string {
  const fromEnv = process.env.MODELCENTER_LITELLM_DB_DIR;
  const candidates = [
    ...(fromEnv ? [path.resolve(fromEnv)] : []),
    path.resolve(root, '..', 'shared', 'litellm-db'),
    '/work/shared/litellm-db',
  ];
  const found = candidates.find((dir) => existsSync(path.join(dir, 'install-engines.sh')));
  if (found) return found;
  if (fromEnv)
    throw new Error(
      `MODELCENTER_LITELLM_DB_DIR=${fromEnv} has no install-engines.sh: point it at the litellm-db folder (the one holding install-engines.sh and prebuilt/)`,
    );
  throw new Error(
    `the database-mode tests need the litellm-db folder (install-engines.sh and the Prisma engines) and found none at ${candidates.join(', ')}: set MODELCENTER_LITELLM_DB_DIR to its path`,
  );
}

/** The environment LiteLLM's database mode needs besides DATABASE_URL (shared/litellm-db/README.md). */
export async function prismaEnvironment(venv = litellmVenv()): Promise<Record<string, string>> {
  const script = path.join(litellmDbDir(), 'install-engines.sh');
  const { stdout } = await run('bash', [script], { maxBuffer: 1 << 20 }).catch((error: unknown) => {
    throw new Error(`${script} failed: ${(error as { stderr?: string }).stderr ?? String(error)}`);
  });
  const engines = Object.fromEntries(
    [...stdout.matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!.trim()]),
  );
  if (!engines.PRISMA_QUERY_ENGINE_BINARY || !engines.PRISMA_SCHEMA_ENGINE_BINARY)
    throw new Error(`${script} printed no engine paths: ${stdout.slice(0, 500)}`);
  return {
    ...engines,
    PRISMA_ENGINES_CHECKSUM_IGNORE_MISSING: '1',
    PRISMA_HIDE_UPDATE_MESSAGE: '1',
    CHECKPOINT_DISABLE: '1',
    PRISMA_BINARY_CACHE_DIR:
      process.env.PRISMA_BINARY_CACHE_DIR ??
      path.join(homedir(), '.cache', 'modelcenter', 'prisma-cli'),
    LITELLM_LOCAL_MODEL_COST_MAP: 'True',
    // `prisma` (the venv's CLI wrapper) must be found by LiteLLM's `prisma migrate deploy`.
    PATH: `${path.join(venv, 'bin')}:${process.env.PATH ?? '/usr/bin:/bin'}`,
  };
}

/**
 * `prisma generate` against LiteLLM's schema, inside the installed litellm/proxy package, once per
 * venv: the generated client lives in the venv's site-packages, so a venv that has it is left alone.
 */
export async function ensurePrismaClient(
  env: Record<string, string>,
  venv = litellmVenv(),
): Promise<void> {
  const python = path.join(venv, 'bin', 'python');
  const generated = await run(python, ['-c', 'from prisma import Prisma; Prisma()'], { env }).then(
    () => true,
    () => false,
  );
  if (generated) return;
  const { stdout } = await run(python, [
    '-c',
    'import litellm.proxy, os; print(os.path.dirname(litellm.proxy.__file__))',
  ]);
  const proxyDir = stdout.trim();
  await new Promise<void>((resolve, reject) => {
    const child = spawn(path.join(venv, 'bin', 'prisma'), ['generate'], {
      cwd: proxyDir,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    child.stdout.on('data', (c: Buffer) => (log += c.toString()));
    child.stderr.on('data', (c: Buffer) => (log += c.toString()));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0
        ? resolve()
        : reject(
            new Error(`prisma generate in ${proxyDir} failed (exit ${code}):\n${log.slice(-3000)}`),
          ),
    );
  });
}

/** Runs one SQL statement on `database` of the cluster at `clusterUrl`. */
export async function sql(
  clusterUrl: string,
  database: string,
  text: string,
): Promise<pg.QueryResult> {
  const url = new URL(clusterUrl);
  url.pathname = `/${database}`;
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    return await client.query(text);
  } finally {
    await client.end();
  }
}

export function databaseUrl(clusterUrl: string, database: string): string {
  const url = new URL(clusterUrl);
  url.pathname = `/${database}`;
  // LiteLLM's Prisma wants the postgresql:// scheme.
  return url.toString().replace(/^postgres:/, 'postgresql:');
}

/** What the database-mode global set-up hands every test file. */
export interface LiteLLMDbContext {
  clusterUrl: string;
  env: Record<string, string>;
}

/**
 * PostgreSQL, the engines, the generated client and the migrated template: what every database-mode
 * test needs, made once per run (by test/db/global-setup.ts).
 */
export async function prepareLiteLLMDb(): Promise<{
  context: LiteLLMDbContext;
  cluster: PostgresCluster;
}> {
  const env = await prismaEnvironment();
  await ensurePrismaClient(env);
  const cluster = await startPostgres();
  try {
    await sql(cluster.url, 'postgres', `CREATE DATABASE ${TEMPLATE_DATABASE}`);
    // LiteLLM migrates its database at start (prisma migrate deploy): one start migrates the template.
    const migrating = await startInstance({
      context: { clusterUrl: cluster.url, env },
      database: TEMPLATE_DATABASE,
      masterKey: `sk-template-${process.pid}-${Date.now()}-migrate`,
      readinessTimeoutMs: 600_000,
    });
    await migrating.stop();
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return { context: { clusterUrl: cluster.url, env }, cluster };
}

export interface DbInstanceOptions {
  context: LiteLLMDbContext;
  database: string;
  masterKey: string;
  /** model_list entries (YAML, indented two spaces) this instance defines in its own config. */
  extraModels?: string;
  /** `litellm_settings` lines (YAML, indented two spaces), e.g. the spool callback. */
  litellmSettings?: string;
  /** Where the spool callback writes (default: a temp directory removed at stop). */
  spoolDir?: string;
  env?: Record<string, string>;
  readinessTimeoutMs?: number;
  /** A fixed port (an instance restarted where clients know it); default: a free one. */
  port?: number;
}

/** One database-mode LiteLLM on a free port, its own config in a temp directory. */
export async function startInstance(options: DbInstanceOptions): Promise<RunningLiteLLM> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mc-litellm-db-'));
  const config = path.join(dir, 'config.yaml');
  await writeFile(
    config,
    [
      `model_list:${options.extraModels ? `\n${options.extraModels}` : ' []'}`,
      'general_settings:',
      '  master_key: os.environ/LITELLM_MASTER_KEY',
      '  store_model_in_db: true',
      // Tests wait for convergence: poll the database every 2 s (default 30), flush spend every 1 s.
      '  proxy_config_reload_interval_seconds: 2',
      '  proxy_batch_write_at: 1',
      ...(options.litellmSettings ? ['litellm_settings:', options.litellmSettings] : []),
      '',
    ].join('\n'),
  );
  const spoolDir = options.spoolDir ?? path.join(dir, 'spool');
  await mkdir(spoolDir, { recursive: true });
  try {
    const instance = await startLiteLLM({
      configPath: config,
      masterKey: options.masterKey,
      spoolDir,
      ...(options.port !== undefined && { port: options.port }),
      readinessTimeoutMs: options.readinessTimeoutMs ?? 300_000,
      env: {
        ...options.context.env,
        DATABASE_URL: databaseUrl(options.context.clusterUrl, options.database),
        STORE_MODEL_IN_DB: 'True',
        ...options.env,
      },
    });
    const stop = instance.stop.bind(instance);
    return Object.assign(instance, {
      stop: async () => {
        await stop();
        await rm(dir, { recursive: true, force: true });
      },
    });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

let databases = 0;

/** A fresh database copied from the migrated template (well under a second). */
export async function freshDatabase(context: LiteLLMDbContext): Promise<string> {
  const name = `t_${process.pid}_${++databases}_${Date.now().toString(36)}`;
  await sql(
    context.clusterUrl,
    'postgres',
    `CREATE DATABASE ${name} TEMPLATE ${TEMPLATE_DATABASE}`,
  );
  return name;
}

export interface DbStack {
  database: string;
  databaseUrl: string;
  masterKey: string;
  instances: RunningLiteLLM[];
  urls: string[];
  /** Starts one more instance on the same database. */
  addInstance(env?: Record<string, string>): Promise<RunningLiteLLM>;
  stop(): Promise<void>;
}

/** `count` database-mode LiteLLM instances sharing one fresh database. */
export async function startDbStack(options: {
  context: LiteLLMDbContext;
  masterKey: string;
  count?: number;
  extraModels?: string;
  litellmSettings?: string;
  spoolDir?: string;
  env?: Record<string, string>;
}): Promise<DbStack> {
  const database = await freshDatabase(options.context);
  const instances: RunningLiteLLM[] = [];
  const addInstance = async (env?: Record<string, string>): Promise<RunningLiteLLM> => {
    const instance = await startInstance({
      context: options.context,
      database,
      masterKey: options.masterKey,
      ...(options.extraModels !== undefined && { extraModels: options.extraModels }),
      ...(options.litellmSettings !== undefined && { litellmSettings: options.litellmSettings }),
      ...(options.spoolDir !== undefined && { spoolDir: options.spoolDir }),
      env: { ...options.env, ...env },
    });
    instances.push(instance);
    return instance;
  };
  try {
    // One at a time: two migrate-deploy runs at once on one database race on the migrations table.
    for (let i = 0; i < (options.count ?? 1); i++) await addInstance();
  } catch (error) {
    await Promise.all(instances.map((i) => i.stop()));
    throw error;
  }
  return {
    database,
    databaseUrl: databaseUrl(options.context.clusterUrl, database),
    masterKey: options.masterKey,
    instances,
    get urls() {
      return instances.map((i) => i.url);
    },
    addInstance,
    async stop() {
      await Promise.all(instances.map((i) => i.stop()));
    },
  };
}
