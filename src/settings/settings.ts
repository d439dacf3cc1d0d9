import path from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { ModelCenterError } from '../shared/errors.js';
import { readIfExists } from '../shared/fs.js';
import { cronProblem } from '../scheduler/scheduler.js';
import { chooseStrategy, findNginx } from '../reload/default-strategy.js';

/** A bad setting: every problem at once, each naming the variable or file key and what to do. */
export class SettingsError extends ModelCenterError {
  constructor(readonly problems: string[]) {
    super(`invalid settings:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
}

const port = z.coerce
  .number({ error: 'must be a TCP port number' })
  .int('must be a whole number')
  .min(1, 'must be between 1 and 65535')
  .max(65_535, 'must be between 1 and 65535');
const flag = z
  .union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no'])])
  .transform((v) => v === true || v === 'true' || v === '1' || v === 'yes');
const list = z
  .union([z.array(z.string()), z.string()])
  .transform((v) => (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter(Boolean));

/** Everything `modelcenter serve` reads, after env and the settings file are merged. */
export const settingsSchema = z
  .object({
    policies: z.string().min(1),
    configFile: z.string().min(1),
    /** The git repository the generated config is committed to (default: the policies' own). */
    stateRepo: z.string().min(1).optional(),
    stateDir: z.string().min(1),
    strategy: z.enum(['restart', 'blue-green', 'admin-api'], {
      error: 'must be restart, blue-green or admin-api',
    }),
    /** Port clients use for LiteLLM (the supervised process, or the nginx front). */
    litellmPort: port,
    /** admin-api: the LiteLLM instances to write to and verify. */
    litellmUrls: list,
    /** restart: a command that restarts an externally managed LiteLLM instead of a child process. */
    restartCommand: z.string().optional(),
    apiHost: z.string().min(1),
    apiPort: port,
    /** Bearer tokens; read may call GET routes, admin everything. */
    readTokens: list,
    adminTokens: list,
    maxBodyBytes: z.coerce.number().int().min(1024, 'must be at least 1024 bytes'),
    pollSeconds: z.coerce.number().min(0.2, 'must be at least 0.2 seconds'),
    watch: flag,
    /** LiteLLM replicas behind the nginx front (blue-green), each verified and supervised. */
    replicas: z.coerce
      .number({ error: 'must be a whole number' })
      .int('must be a whole number')
      .min(1, 'must be at least 1')
      .max(32, 'must be at most 32'),
    /** Keyless first run: a local demo upstream answers every profile (auto: when no provider key is set). */
    demo: z.enum(['auto', 'true', 'false'], { error: 'must be auto, true or false' }),
    /** Supervision: seconds between readiness probes, failed probes that count as a crash. */
    supervisionProbeSeconds: z.coerce.number().min(0.5, 'must be at least 0.5 seconds'),
    supervisionReadinessFailures: z.coerce
      .number()
      .int('must be a whole number')
      .min(1, 'must be at least 1'),
    /** Intensity limit: at most this many restarts in this many seconds, then stop trying. */
    supervisionMaxRestarts: z.coerce
      .number()
      .int('must be a whole number')
      .min(1, 'must be at least 1'),
    supervisionWindowSeconds: z.coerce.number().min(1, 'must be at least 1 second'),
    /** cron expressions per scheduled job ("" disables a job). */
    schedules: z.record(z.string(), z.string()),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], {
      error: 'must be one of trace, debug, info, warn, error, fatal, silent',
    }),
  })
  .strict();
export type Settings = z.infer<typeof settingsSchema> & {
  /** Why `strategy` was chosen (a setting, or the default for this machine), for the banner and status. */
  strategyReason?: string;
};

/** Environment variable → settings key. The README's table lists the same. */
export const SETTINGS_ENV: Readonly<Record<string, keyof Settings>> = {
  MODELCENTER_POLICIES: 'policies',
  MODELCENTER_CONFIG: 'configFile',
  MODELCENTER_STATE_DIR: 'stateDir',
  MODELCENTER_STATE_REPO: 'stateRepo',
  MODELCENTER_RELOAD_STRATEGY: 'strategy',
  MODELCENTER_LITELLM_PORT: 'litellmPort',
  MODELCENTER_LITELLM_URLS: 'litellmUrls',
  MODELCENTER_RESTART_COMMAND: 'restartCommand',
  MODELCENTER_API_HOST: 'apiHost',
  MODELCENTER_API_PORT: 'apiPort',
  MODELCENTER_READ_TOKENS: 'readTokens',
  MODELCENTER_ADMIN_TOKENS: 'adminTokens',
  MODELCENTER_MAX_BODY_BYTES: 'maxBodyBytes',
  MODELCENTER_POLL_SECONDS: 'pollSeconds',
  MODELCENTER_WATCH: 'watch',
  MODELCENTER_DEMO: 'demo',
  MODELCENTER_REPLICAS: 'replicas',
  MODELCENTER_SUPERVISION_PROBE_SECONDS: 'supervisionProbeSeconds',
  MODELCENTER_SUPERVISION_READINESS_FAILURES: 'supervisionReadinessFailures',
  MODELCENTER_SUPERVISION_MAX_RESTARTS: 'supervisionMaxRestarts',
  MODELCENTER_SUPERVISION_WINDOW_SECONDS: 'supervisionWindowSeconds',
  MODELCENTER_LOG_LEVEL: 'logLevel',
};

export const DEFAULT_SETTINGS: Readonly<Record<string, unknown>> = {
  policies: 'policies',
  configFile: 'litellm/config.yaml',
  stateDir: '.modelcenter',
  strategy: 'restart',
  litellmPort: 4000,
  litellmUrls: [],
  apiHost: '127.0.0.1',
  apiPort: 4100,
  readTokens: [],
  adminTokens: [],
  maxBodyBytes: 65_536,
  pollSeconds: 2,
  watch: false,
  demo: 'auto',
  replicas: 1,
  supervisionProbeSeconds: 3,
  supervisionReadinessFailures: 5,
  supervisionMaxRestarts: 5,
  supervisionWindowSeconds: 300,
  // key-rotation: rotations due by the policies' rotate_every, and key anomalies (src/keys/schedule.ts).
  schedules: {
    'drift-check': '*/5 * * * *',
    'key-rotation': '* * * * *',
    'model-sync': '17 * * * *',
  },
  logLevel: 'info',
};

/** Keys a settings file may not hold: their values are secrets and come from the environment. */
const SECRET_KEYS: ReadonlySet<string> = new Set(['readTokens', 'adminTokens']);

/**
 * Defaults, then the settings file (`MODELCENTER_SETTINGS`, YAML, optional), then the environment.
 * Relative paths resolve against `cwd`. Every bad value is reported at once.
 */
export async function loadSettings(env: NodeJS.ProcessEnv, cwd: string): Promise<Settings> {
  const problems: string[] = [];
  const merged: Record<string, unknown> = { ...DEFAULT_SETTINGS };
  const origin: Record<string, string> = {};
  const file = env.MODELCENTER_SETTINGS ? path.resolve(cwd, env.MODELCENTER_SETTINGS) : undefined;
  if (file) {
    const text = await readIfExists(file);
    if (text === undefined) {
      problems.push(
        `MODELCENTER_SETTINGS: ${file} does not exist — create it or unset the variable`,
      );
    } else {
      let data: unknown;
      try {
        data = parse(text) ?? {};
      } catch (error) {
        problems.push(`${file}: not valid YAML (${(error as Error).message.split('\n')[0]})`);
      }
      if (data !== undefined && (typeof data !== 'object' || Array.isArray(data))) {
        problems.push(`${file}: must be a mapping of setting: value`);
      } else if (data) {
        for (const [key, value] of Object.entries(data)) {
          if (SECRET_KEYS.has(key)) {
            problems.push(
              `${file}: ${key} holds secrets and is read from the environment only — set ${envName(key)} instead`,
            );
            continue;
          }
          merged[key] =
            key === 'schedules' ? { ...(merged.schedules as object), ...(value as object) } : value;
          origin[key] = `${file}: ${key}`;
        }
      }
    }
  }
  for (const [name, key] of Object.entries(SETTINGS_ENV)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    merged[key] = value;
    origin[key] = name;
  }
  for (const [name, value] of Object.entries(env)) {
    const match = /^MODELCENTER_SCHEDULE_([A-Z0-9_]+)$/.exec(name);
    if (!match || value === undefined) continue;
    const job = match[1]!.toLowerCase().replace(/_/g, '-');
    merged.schedules = { ...(merged.schedules as object), [job]: value };
  }
  const parsed = settingsSchema.safeParse(merged);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const key = String(issue.path[0] ?? '');
      const where = origin[key] ?? (key ? `${key} (default)` : 'settings');
      const message =
        issue.code === 'unrecognized_keys'
          ? `unknown setting ${issue.keys.join(', ')} — known: ${Object.keys(settingsSchema.shape).join(', ')}`
          : issue.message;
      problems.push(`${where}: ${message}`);
    }
  }
  if (parsed.success) {
    const { strategy, litellmUrls, restartCommand, schedules } = parsed.data;
    for (const [job, expression] of Object.entries(schedules)) {
      const problem = expression.trim() === '' ? undefined : cronProblem(expression);
      if (problem) {
        problems.push(
          `MODELCENTER_SCHEDULE_${job.toUpperCase().replace(/-/g, '_')} (or schedules.${job} in the settings file): ${problem}`,
        );
      }
    }
    if (strategy === 'admin-api' && litellmUrls.length === 0) {
      problems.push(
        'MODELCENTER_LITELLM_URLS: the admin-api strategy needs the LiteLLM instances to write to, e.g. http://litellm-1:4000,http://litellm-2:4000',
      );
    }
    if ((strategy === 'admin-api' || restartCommand) && !env.LITELLM_MASTER_KEY) {
      problems.push(
        'LITELLM_MASTER_KEY: set it to the master key of the LiteLLM instances Model Center does not start itself (admin-api or a restart command)',
      );
    }
    if (restartCommand && litellmUrls.length === 0) {
      problems.push(
        'MODELCENTER_LITELLM_URLS: with MODELCENTER_RESTART_COMMAND, name the instances the command restarts so they can be verified',
      );
    }
  }
  if (problems.length > 0 || !parsed.success) throw new SettingsError(problems);
  const settings = parsed.data;
  const resolve = (p: string): string => path.resolve(cwd, p);
  const chosen = chooseStrategy({
    ...(origin.strategy && { explicit: { strategy: settings.strategy, from: origin.strategy } }),
    ...(settings.restartCommand && { restartCommand: settings.restartCommand }),
    nginx: findNginx(env),
  });
  if (settings.replicas > 1 && chosen.strategy !== 'blue-green') {
    throw new SettingsError([
      `${origin.replicas ?? 'replicas'}: ${settings.replicas} replicas need the nginx front of the blue-green strategy, but the strategy is ${chosen.strategy} (${chosen.reason}) — install nginx (or set MODELCENTER_NGINX) and use blue-green, or set MODELCENTER_REPLICAS=1`,
    ]);
  }
  return {
    ...settings,
    strategy: chosen.strategy,
    strategyReason: chosen.reason,
    policies: resolve(settings.policies),
    configFile: resolve(settings.configFile),
    stateDir: resolve(settings.stateDir),
    ...(settings.stateRepo && { stateRepo: resolve(settings.stateRepo) }),
  };
}

function envName(key: string): string {
  return Object.entries(SETTINGS_ENV).find(([, k]) => k === key)?.[0] ?? key;
}
