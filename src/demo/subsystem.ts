import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { buildFromCommitted, buildFromDir } from '../compile/build.js';
import { MASTER_KEY_ENV } from '../compile/compile.js';
import { referencedEnv } from '../compile/env-refs.js';
import type { Logger } from '../log/logger.js';
import type { Settings } from '../settings/settings.js';
import { writeFileAtomically } from '../shared/fs.js';
import type { Subsystem } from '../shared/subsystem.js';
import { demoConfig } from './config.js';
import { startDemoUpstream, type DemoUpstream } from './upstream.js';

export interface DemoDeps {
  settings: Pick<
    Settings,
    'policies' | 'stateDir' | 'watch' | 'demo' | 'strategy' | 'restartCommand'
  >;
  env: NodeJS.ProcessEnv;
  /** The `demo` child logger. */
  log: Logger;
}

export interface DemoSubsystem extends Subsystem<never, never> {
  /** The demo upstream's URL while demo mode is on. */
  url: string | undefined;
  /** Why demo mode is on or off, for the banner and status. */
  reason: string;
  /** Turns the config LiteLLM is about to load into the demo copy (demo mode only). */
  prepareConfig: ((configFile: string) => Promise<string>) | undefined;
}

/**
 * Keyless first run: when the policies name provider keys and none of them is set
 * (`MODELCENTER_DEMO=auto`, the default) or `MODELCENTER_DEMO=true`, a local demo upstream on
 * loopback answers every profile, labelled as demo answers, so a newcomer's first request is
 * answered, recorded and reported. With any provider key set, the providers are used.
 */
export async function startDemo(deps: DemoDeps): Promise<DemoSubsystem> {
  const { settings, env, log } = deps;
  const decision = await decide(settings, env);
  if (!decision.on) {
    return {
      url: undefined,
      reason: decision.reason,
      prepareConfig: undefined,
      status: () => Promise.resolve({ demo: { on: false, reason: decision.reason } }),
      stop: () => Promise.resolve(),
    };
  }
  const upstream: DemoUpstream = await startDemoUpstream();
  log.warn(
    { demoUrl: upstream.url, reason: decision.reason },
    'DEMO MODE: every profile is answered by the local demo upstream, not a model — set a provider key to use real providers',
  );
  const dir = path.join(settings.stateDir, 'demo');
  return {
    url: upstream.url,
    reason: decision.reason,
    prepareConfig: async (configFile) => {
      const text = demoConfig(await readFile(configFile, 'utf8'), upstream.url);
      const file = path.join(
        dir,
        `config-${createHash('sha256').update(text).digest('hex').slice(0, 16)}.yaml`,
      );
      await writeFileAtomically(file, text);
      return file;
    },
    status: () =>
      Promise.resolve({
        demo: {
          on: true,
          url: upstream.url,
          reason: decision.reason,
          answered: upstream.answered(),
        },
      }),
    stop: () => upstream.close(),
  };
}

async function decide(
  settings: DemoDeps['settings'],
  env: NodeJS.ProcessEnv,
): Promise<{ on: boolean; reason: string }> {
  if (settings.demo === 'false') return { on: false, reason: 'MODELCENTER_DEMO=false' };
  if (settings.strategy === 'admin-api' || settings.restartCommand) {
    return {
      on: false,
      reason: 'LiteLLM is not started by Model Center (admin-api or a restart command)',
    };
  }
  if (settings.demo === 'true') return { on: true, reason: 'MODELCENTER_DEMO=true' };
  const build = await (settings.watch ? buildFromDir : buildFromCommitted)(settings.policies).catch(
    () => undefined,
  );
  const keys = build?.config
    ? referencedEnv(build.config).filter(
        (name) => name !== MASTER_KEY_ENV && name !== 'DATABASE_URL',
      )
    : [];
  if (keys.length === 0) return { on: false, reason: 'the policies name no provider key' };
  const set = keys.filter((name) => env[name]);
  if (set.length > 0) return { on: false, reason: `provider keys set: ${set.join(', ')}` };
  return { on: true, reason: `no provider key is set (${keys.join(', ')})` };
}
