import { chooseStrategy, findNginx, type StrategyName } from '../../reload/default-strategy.js';
import { Option, type Command } from 'commander';
import { deploymentIds } from '../../apply/controller.js';
import { parseRendered } from '../../compile/render.js';
import { GitState } from '../../gitstate/git-state.js';
import { LiteLLMClient } from '../../litellm/client.js';
import { verifyInstances, describeVerify } from '../../reload/verify.js';
import {
  action,
  configFile,
  CONFIG_FLAGS,
  CONFIG_HELP,
  policiesDir,
  POLICIES_FLAGS,
  POLICIES_HELP,
  type CliContext,
} from '../context.js';
import { EXIT, type ExitCode } from '../exit-codes.js';
import type { CliIo } from '../io.js';
import { askService } from '../service-client.js';
import { cliMasterKey, cliStateDir, readServiceFile } from '../service-file.js';

/** `status`: read-only, from git and the LiteLLM instances themselves (no service needed). */
export function registerStatus(program: Command, context: CliContext): void {
  program
    .command('status')
    .summary('generated commit, last-known-good, drift, and what each LiteLLM instance serves')
    .description(
      'Generated commit, last-known-good, drift, and what each LiteLLM instance serves (MODELCENTER_LITELLM_URLS, else 127.0.0.1:--port; asked with LITELLM_MASTER_KEY). Exit 2 on drift or an instance that serves another set.',
    )
    .option(POLICIES_FLAGS, POLICIES_HELP)
    .option(CONFIG_FLAGS, CONFIG_HELP)
    .addOption(new Option('--format <format>', 'output').choices(['text', 'json']).default('text'))
    .option(
      '--port <port>',
      'the LiteLLM port when MODELCENTER_LITELLM_URLS is not set and no service runs (default: MODELCENTER_LITELLM_PORT, else 4000)',
    )
    .action(
      action(
        context,
        async (options: { policies?: string; config?: string; format: string; port?: string }) => {
          // The running service says where LiteLLM is (.modelcenter/service.json) and the master
          // key it generated; flags and variables still win.
          const stateDir = cliStateDir(context.env, context.io.cwd);
          const running = await readServiceFile(stateDir);
          const port = options.port ?? context.env.MODELCENTER_LITELLM_PORT;
          const instances =
            context.env.MODELCENTER_LITELLM_URLS ??
            (port === undefined ? running?.litellmUrl : undefined) ??
            `http://127.0.0.1:${port ?? 4000}`;
          return statusCommand(
            {
              policies: policiesDir(context, options.policies),
              configFile: configFile(context, options.config),
              instances: instances
                .split(',')
                .map((u) => u.trim())
                .filter(Boolean),
              masterKey: await cliMasterKey(context.env, stateDir),
              json: options.format === 'json',
              databaseMode: context.env.MODELCENTER_RELOAD_STRATEGY === 'admin-api',
              strategy: running
                ? { name: running.strategy, reason: 'the running service' }
                : strategyOf(context.env),
              ...(running && {
                service: () => serviceStatus(context.env, context.io),
              }),
            },
            context.io,
          );
        },
      ),
    );
}

/** What the running service says about itself (policies, demo), or undefined when it cannot. */
async function serviceStatus(
  env: NodeJS.ProcessEnv,
  io: CliIo,
): Promise<Record<string, unknown> | undefined> {
  const quiet: CliIo = { ...io, stderr: () => undefined };
  const reply = await askService('/v1/status', {}, env, quiet, 'GET');
  return 'failed' in reply || !reply.ok ? undefined : reply.answer;
}

export interface StatusOptions {
  policies: string;
  configFile: string;
  /** LiteLLM instances to check, and the master key to ask them with. */
  instances: string[];
  masterKey: string | undefined;
  json: boolean;
  /** admin-api: instances also serve their own config.yaml models, which are not ours to check. */
  databaseMode?: boolean;
  /** Which reload strategy `serve` runs with these settings, and why. */
  strategy?: { name: string; reason: string };
  /** The running service's own status (`GET /v1/status`), when one runs. */
  service?: () => Promise<Record<string, unknown> | undefined>;
}

/** Current generated commit, last-known-good, drift, and what each instance serves. Read-only. */
export async function statusCommand(options: StatusOptions, io: CliIo): Promise<ExitCode> {
  const state = await GitState.open(options.policies, options.configFile);
  const head = (await state.generatedCommits(1))[0];
  const lkg = await state.lastKnownGood();
  const drift = await state.drift();
  const committed = await state.committedConfig();
  const intended = deploymentIds(committed ? parseRendered(committed) : undefined);
  const clients = options.masterKey
    ? options.instances.map((url) => new LiteLLMClient(url, options.masterKey!, 3000))
    : [];
  const verify =
    clients.length > 0
      ? await verifyInstances(
          clients,
          intended,
          options.databaseMode ? (d) => !d.dbModel : undefined,
        )
      : undefined;
  const service = await options.service?.();
  const policies = service?.policies as
    { commit?: string; uncommittedEdits?: boolean; applies?: string } | undefined;
  const demo = service?.demo as { on?: boolean; url?: string; reason?: string } | undefined;
  const status = {
    ...(service && { policies, demo }),
    generatedCommit: head?.commit,
    lastKnownGood: lkg,
    lastKnownGoodIsCurrent: head?.commit !== undefined && head.commit === lkg,
    drift,
    deployments: intended.length,
    instances: verify?.instances ?? [],
    ...(options.strategy && {
      strategy: options.strategy.name,
      strategyReason: options.strategy.reason,
    }),
  };
  if (options.json) {
    io.stdout(`${JSON.stringify(status, null, 2)}\n`);
  } else {
    io.stdout(
      `generated commit: ${head ? `${head.commit.slice(0, 12)} ${head.subject}` : 'none yet'}\n`,
    );
    io.stdout(
      `last-known-good:  ${lkg ? lkg.slice(0, 12) : 'none yet'}${status.lastKnownGoodIsCurrent ? ' (current)' : ''}\n`,
    );
    io.stdout(
      `drift:            ${drift.workingTreeEdited ? `${state.configPath} edited by hand` : drift.foreignCommit ? `commit ${drift.foreignCommit.slice(0, 12)} not made by Model Center` : 'none'}\n`,
    );
    if (options.strategy) {
      io.stdout(`strategy:         ${options.strategy.name} (${options.strategy.reason})\n`);
    }
    if (policies) {
      io.stdout(
        `policies:         ${policies.commit ? `@${policies.commit.slice(0, 12)}` : 'no commit yet'}, ${policies.applies ?? 'committed'} applied${policies.uncommittedEdits ? '; UNCOMMITTED EDITS not applied (commit them, or MODELCENTER_WATCH=true for dev mode)' : ''}\n`,
      );
    }
    if (demo?.on) {
      io.stdout(
        `demo mode:        ON — ${demo.reason ?? ''}; answers come from ${demo.url ?? 'the local demo upstream'}\n`,
      );
    }
    if (!options.masterKey) io.stdout('instances:        not checked (set LITELLM_MASTER_KEY)\n');
    for (const instance of verify?.instances ?? []) {
      const ok =
        instance.ready && instance.missing.length === 0 && instance.unexpected.length === 0;
      io.stdout(
        ok
          ? `instance ${instance.url}: ready, serves the committed ${intended.length} deployments
`
          : `instance ${describeVerify({ ok: false, instances: [instance] })}
`,
      );
    }
  }
  const unhealthy = verify !== undefined && !verify.ok;
  return unhealthy || drift.workingTreeEdited || drift.foreignCommit
    ? EXIT.operationalFailure
    : EXIT.ok;
}

/** The strategy `serve` would run with this environment, and why (for `status`). */
function strategyOf(env: NodeJS.ProcessEnv): { name: string; reason: string } {
  const explicit = env.MODELCENTER_RELOAD_STRATEGY;
  const chosen = chooseStrategy({
    ...(explicit && {
      explicit: { strategy: explicit as StrategyName, from: 'MODELCENTER_RELOAD_STRATEGY' },
    }),
    ...(env.MODELCENTER_RESTART_COMMAND && { restartCommand: env.MODELCENTER_RESTART_COMMAND }),
    nginx: findNginx(env),
  });
  return { name: chosen.strategy, reason: chosen.reason };
}
