import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { InputError, ModelCenterError } from '../shared/errors.js';
import { LiteLLMKeyClient } from './key-client.js';
import { checkSaltKey, rotateMasterKeyInDatabase } from './master-key-db.js';
import type { MasterKeySwap } from './master-rotation.js';

export interface AdminApiMasterSwapOptions {
  /** The controller's environment: LITELLM_SALT_KEY must be set there (it is the instances'). */
  env: NodeJS.ProcessEnv;
  /**
   * MODELCENTER_RESTART_COMMAND: restarts every LiteLLM instance (systemctl, docker compose,
   * kubectl …) with LITELLM_MASTER_KEY from the environment it is given.
   */
  restartCommand: string | undefined;
  /** How long the instances may take to accept the new key after the command. */
  readyTimeoutMs?: number;
}

/**
 * Database mode's master key swap (the admin-api strategy: LiteLLM instances Model Center does not
 * start, sharing one database): refused without LITELLM_SALT_KEY (master-key-db.ts explains why);
 * the old key becomes a virtual key that LiteLLM expires when the grace ends; then the restart
 * command restarts every instance with the new key (given in its environment only), and the swap
 * ends once every instance accepts the new key on an admin route.
 */
export function adminApiMasterSwap(options: AdminApiMasterSwapOptions): MasterKeySwap {
  return {
    name: 'database:grace-key+restart-command',
    precheck(newKey) {
      try {
        checkSaltKey(options.env);
      } catch (error) {
        throw new InputError((error as Error).message, { status: 409, code: 'no_salt_key' });
      }
      if (!options.restartCommand)
        throw new InputError(
          'the admin-api strategy serves LiteLLM instances Model Center does not start: set MODELCENTER_RESTART_COMMAND to the command that restarts them with LITELLM_MASTER_KEY from its environment, then rotate; nothing was changed',
          { status: 409, code: 'no_restart_command' },
        );
      if (!newKey.startsWith('sk-') || newKey.length < 32)
        throw new InputError(
          'the new master key must start with "sk-" and be at least 32 characters (LiteLLM refuses weak master keys); nothing was changed',
          { field: 'value' },
        );
    },
    async swap({ oldKey, newKey, live, graceSeconds }) {
      const urls = live.strategy.instances().map((c) => c.baseUrl);
      if (urls.length === 0) throw new ModelCenterError('no LiteLLM instance to rotate');
      await rotateMasterKeyInDatabase({
        client: new LiteLLMKeyClient(urls[0]!, oldKey, 60_000),
        currentMaster: oldKey,
        newMaster: newKey,
        graceSeconds,
        litellmEnv: options.env,
        reload: async (master) => {
          await runRestartCommand(options.restartCommand!, master, options.env);
          await acceptsKey(urls, master, options.readyTimeoutMs ?? 300_000);
        },
      });
    },
  };
}

/** Runs the restart command with the new key in its environment (never on its command line). */
async function runRestartCommand(
  command: string,
  master: string,
  env: NodeJS.ProcessEnv,
): Promise<void> {
  let output = '';
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn('sh', ['-c', command], {
      env: {
        ...Object.fromEntries(
          Object.entries(env).filter(
            ([name]) => !/TOKEN|SECRET|MASTER_KEY|API_KEY|PASSWORD/i.test(name),
          ),
        ),
        LITELLM_MASTER_KEY: master,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const append = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-4000);
    };
    child.stdout.on('data', append);
    child.stderr.on('data', append);
    child.on('close', resolve);
    child.on('error', () => resolve(127));
  });
  if (code !== 0)
    throw new ModelCenterError(
      `the restart command exited with code ${code} — check MODELCENTER_RESTART_COMMAND: ${output.split('\n').slice(-10).join(' | ').split(master).join('***')}`,
    );
}

/** Waits until every instance answers an admin route with `master`. */
async function acceptsKey(
  urls: readonly string[],
  master: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const url of urls) {
    const client = new LiteLLMKeyClient(url, master, 5000);
    for (;;) {
      try {
        await client.tokensWithAlias('modelcenter-master-check');
        break;
      } catch (error) {
        if (Date.now() > deadline)
          throw new ModelCenterError(
            `${url} did not accept the new master key within ${Math.round(timeoutMs / 1000)} s after the restart command (${(error as Error).message})`,
          );
        await sleep(500);
      }
    }
  }
}
