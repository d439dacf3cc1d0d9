import { deploymentIds } from '../apply/controller.js';
import { parseRendered } from '../compile/render.js';
import { GitState } from '../gitstate/git-state.js';
import { LiteLLMClient } from '../litellm/client.js';
import { verifyInstances, describeVerify } from '../reload/verify.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import type { CliIo } from './run.js';

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
  const status = {
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
