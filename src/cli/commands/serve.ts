import type { Command } from 'commander';
import path from 'node:path';
import { createLogger } from '../../log/logger.js';
import { SecretValues } from '../../log/redact.js';
import { StoppedOnStandby } from '../../leader/subsystem.js';
import { ServiceStartError, startService } from '../../main.js';
import { loadSettings, SettingsError } from '../../settings/settings.js';
import {
  action,
  CONFIG_FLAGS,
  CONFIG_HELP,
  POLICIES_FLAGS,
  POLICIES_HELP,
  type CliContext,
} from '../context.js';
import { EXIT, type ExitCode } from '../exit-codes.js';
import type { CliIo } from '../io.js';
import { removeServiceFile, writeServiceFile } from '../service-file.js';

/** `serve` (alias `up`): the controller in the foreground. */
export function registerServe(program: Command, context: CliContext): void {
  program
    .command('serve')
    .alias('up')
    .summary('the controller: serve the policies with LiteLLM, apply every policy commit, HTTP API')
    .description(
      'The controller: commit, serve and verify the policies with LiteLLM, apply every policy commit, HTTP API, scheduled jobs (foreground; Ctrl-C or SIGTERM stops it gracefully; settings from the environment, see README).',
    )
    .option(POLICIES_FLAGS, POLICIES_HELP)
    .option(CONFIG_FLAGS, CONFIG_HELP)
    .action(
      action(context, (options: { policies?: string; config?: string }) =>
        serveCommand(
          {
            env: {
              ...context.env,
              ...(options.policies && { MODELCENTER_POLICIES: options.policies }),
              ...(options.config && { MODELCENTER_CONFIG: options.config }),
            },
            until: stopSignal(),
          },
          context.io,
        ),
      ),
    );
}

export interface ServeOptions {
  env: NodeJS.ProcessEnv;
  /** Resolves when the service should stop (SIGINT/SIGTERM in the real CLI). */
  until: Promise<void>;
  /** Where logs go (JSON lines); stdout in the real CLI. */
  logTo?: NodeJS.WritableStream;
}

/** `modelcenter serve`: the long-running controller, until `until` resolves. */
export async function serveCommand(options: ServeOptions, io: CliIo): Promise<ExitCode> {
  let settings;
  try {
    settings = await loadSettings(options.env, io.cwd);
  } catch (error) {
    if (error instanceof SettingsError) {
      io.stderr(`modelcenter: ${error.message}\n`);
      return EXIT.invalidInput;
    }
    throw error;
  }
  const secrets = new SecretValues();
  const log = createLogger({
    level: settings.logLevel,
    secrets,
    ...(options.logTo && { destination: options.logTo, pretty: false }),
  });
  let service;
  // The service may have to stop by itself (another controller took its leader lock): as if asked
  // to, but exiting with a failure so that a supervisor (systemd Restart=on-failure) starts it
  // again, as a standby.
  let fatal!: () => void;
  let steppedDown = false;
  const stopped = new Promise<void>((resolve) => (fatal = resolve));
  const until = Promise.race([options.until, stopped]);
  try {
    service = await startService(settings, options.env, log, secrets, {
      stopRequested: until,
      onFatal: (why) => {
        steppedDown = true;
        io.stderr(`modelcenter: ${why}\n`);
        fatal();
      },
    });
  } catch (error) {
    if (error instanceof StoppedOnStandby) return EXIT.ok;
    if (error instanceof ServiceStartError) {
      io.stderr(`modelcenter: ${error.message}\n`);
      return error.kind === 'invalid' ? EXIT.invalidInput : EXIT.operationalFailure;
    }
    throw error;
  }
  io.stderr(
    `modelcenter: LiteLLM at ${service.litellmUrl ?? '(external)'}, API at ${service.apiUrl} (token: ${
      settings.adminTokens.length > 0
        ? 'MODELCENTER_ADMIN_TOKENS'
        : path.join(settings.stateDir, 'api-token')
    })\nmodelcenter: reload strategy ${service.strategy.name}${
      settings.strategyReason ? ` (${settings.strategyReason})` : ''
    }\n`,
  );
  if (service.demo.url) {
    io.stderr(
      `modelcenter: DEMO MODE — ${service.demo.reason}: every profile is answered by a local demo upstream (${service.demo.url}), answers are labelled demo answers, not a model's. Set a provider key and restart to use it.\n`,
    );
  }
  await writeServiceFile(settings.stateDir, {
    apiUrl: service.apiUrl,
    ...(service.litellmUrl && { litellmUrl: service.litellmUrl }),
    pid: process.pid,
    strategy: service.strategy.name,
    startedAt: new Date().toISOString(),
    ...(service.demo.url && { demoUrl: service.demo.url }),
  });
  try {
    await until;
  } finally {
    await removeServiceFile(settings.stateDir).catch(() => undefined);
  }
  await service.stop();
  return steppedDown ? EXIT.operationalFailure : EXIT.ok;
}

/**
 * Resolves on the first SIGINT or SIGTERM: a graceful stop (an apply in progress finishes; with
 * none, everything is stopped within seconds). A second one ends the process at once: every child
 * it started exits with it (the watchdog launcher, PR_SET_PDEATHSIG), so nothing keeps a port.
 */
function stopSignal(): Promise<void> {
  return new Promise((resolve) => {
    const first = (signal: NodeJS.Signals): void => {
      process.removeListener('SIGINT', first);
      process.removeListener('SIGTERM', first);
      process.stderr.write(`modelcenter: ${signal}: stopping (again to stop at once)\n`);
      const force = (): void => process.exit(130);
      process.once('SIGINT', force);
      process.once('SIGTERM', force);
      resolve();
    };
    process.once('SIGINT', first);
    process.once('SIGTERM', first);
  });
}
