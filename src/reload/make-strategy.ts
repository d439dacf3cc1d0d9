import { readFileSync } from 'node:fs';
import { MASTER_KEY_ENV } from '../compile/compile.js';
import { referencedEnv } from '../compile/env-refs.js';
import { parseRendered } from '../compile/render.js';
import { ensureLiteLLMInstalled } from '../litellm/install.js';
import { reservedVariable } from '../policy/secrets.js';
import type { Logger } from '../log/logger.js';
import type { Settings } from '../settings/settings.js';
import { AdminApiStrategy } from './admin-api.js';
import { BlueGreenStrategy } from './blue-green.js';
import { CommandRestartStrategy } from './command.js';
import { RestartStrategy } from './restart.js';
import type { KeyAlias } from './nginx.js';
import type { ReloadStrategy } from './strategy.js';
import type { SupervisionOptions } from './supervisor.js';

/** The reload strategy the settings name, with LiteLLM installed when the strategy starts it. */
export async function makeStrategy(
  settings: Settings,
  /** LiteLLM's master key, read at every use (it changes when rotated). */
  masterKey: () => string,
  env: () => Record<string, string>,
  spoolDir: string,
  extras: {
    /** Keys the blue-green front maps to others (a master key rotation's grace period). */
    keyAliases?: () => readonly KeyAlias[];
    /** Demo mode: the config LiteLLM loads instead of the generated one (src/demo). */
    prepareConfig?: (configFile: string) => Promise<string>;
    log?: Logger;
  } = {},
): Promise<ReloadStrategy> {
  const supervision: SupervisionOptions = {
    probeIntervalMs: settings.supervisionProbeSeconds * 1000,
    readinessFailures: settings.supervisionReadinessFailures,
    intensity: {
      restarts: settings.supervisionMaxRestarts,
      windowMs: settings.supervisionWindowSeconds * 1000,
    },
  };
  // What both strategies that run LiteLLM themselves are given.
  const local = {
    port: settings.litellmPort,
    masterKey,
    env,
    stateDir: settings.stateDir,
    spoolDir,
    supervision,
    onKilledAfterGrace: (graceMs: number) =>
      extras.log?.warn(
        { graceMs },
        'LiteLLM did not exit after SIGTERM within the grace and was killed: requests it was still answering, and their spend records, may be lost',
      ),
    ...(extras.prepareConfig && { prepareConfig: extras.prepareConfig }),
  };
  switch (settings.strategy) {
    case 'admin-api':
      // Provider keys go to LiteLLM's /credentials, so a rotation is one PATCH (no restart).
      return new AdminApiStrategy({ instances: settings.litellmUrls, masterKey, credentials: env });
    case 'blue-green':
      await ensureLiteLLMInstalled();
      return new BlueGreenStrategy({
        ...local,
        replicas: settings.replicas,
        ...(extras.keyAliases && { keyAliases: extras.keyAliases }),
      });
    case 'restart':
      if (settings.restartCommand) {
        return new CommandRestartStrategy({
          command: settings.restartCommand,
          instances: settings.litellmUrls,
          masterKey,
        });
      }
      await ensureLiteLLMInstalled();
      return new RestartStrategy(local);
  }
}

/** Where clients reach LiteLLM: the nginx front of blue-green, else the first instance. */
export function litellmUrl(strategy: ReloadStrategy): string | undefined {
  return strategy instanceof BlueGreenStrategy ? strategy.url : strategy.instances()[0]?.baseUrl;
}

/**
 * The environment LiteLLM needs, read from the config it is about to load, at every start, so a
 * provider added by a later policy commit gets its key too. Missing variables are logged.
 */
export function providerEnv(
  configFile: string,
  /** The environment to read; a function is asked at every start (the secret store's values). */
  source: NodeJS.ProcessEnv | (() => NodeJS.ProcessEnv),
  log: Logger,
): () => Record<string, string> {
  return () => {
    const env = typeof source === 'function' ? source() : source;
    const config = parseRendered(readFileSync(configFile, 'utf8'));
    const found: Record<string, string> = {};
    const missing: string[] = [];
    const withheld: string[] = [];
    for (const name of referencedEnv(config)) {
      if (name === MASTER_KEY_ENV) continue;
      // Validation refuses these in policies; a config from elsewhere (an old commit, a hand
      // edit) still never hands the controller's own secrets to a provider.
      if (name !== 'DATABASE_URL' && !isStoreExport(name) && reservedVariable(name)) {
        withheld.push(name);
        continue;
      }
      const value = env[name];
      if (value) found[name] = value;
      else missing.push(name);
    }
    // A deployment's api_key naming a variable LiteLLM will not have resolves to nothing, and
    // LiteLLM then sends the default key of the client it uses (OPENAI_API_KEY for every openai/
    // deployment, whichever server it points at; OPENAI_ADMIN_KEY before 1.108.2, #50218). The
    // variable gets a placeholder instead: that server is refused, no other provider's key leaks.
    for (const name of apiKeyVariables(config)) {
      if (found[name] === undefined && name !== MASTER_KEY_ENV) found[name] = UNSET_KEY_PLACEHOLDER;
    }
    if (withheld.length > 0) {
      log.error(
        { withheld },
        "the config references Model Center's own secrets: they are not passed to LiteLLM",
      );
    }
    if (missing.length > 0) {
      log.warn(
        { missing },
        'environment variables not set: requests to the providers that need them will fail',
      );
    }
    return found;
  };
}

/** What LiteLLM gets for a provider key variable that is not set: not a key, and says why. */
export const UNSET_KEY_PLACEHOLDER = 'unset-key-variable';

/** The variables the deployments' `api_key`s name (`os.environ/NAME`). */
function apiKeyVariables(config: ReturnType<typeof parseRendered>): string[] {
  return (config.model_list ?? []).flatMap(({ litellm_params: params }) =>
    typeof params?.api_key === 'string' && params.api_key.startsWith('os.environ/')
      ? [params.api_key.slice('os.environ/'.length)]
      : [],
  );
}

/**
 * `MODELCENTER_SECRET_<NAME>`: how a `secret:name` credential reaches LiteLLM (src/compile), so
 * passed on — except MODELCENTER_SECRET_KEY, the secret store's own key.
 */
function isStoreExport(name: string): boolean {
  return name.startsWith('MODELCENTER_SECRET_') && name !== 'MODELCENTER_SECRET_KEY';
}
