import { Option, type Command } from 'commander';
import { stringify } from 'yaml';
import { buildFromDir } from '../../compile/build.js';
import { PolicyRepo } from '../../gitstate/policy-repo.js';
import { PROVIDER_KINDS } from '../../policy/provider-kinds.js';
import { providerSchema, type Provider } from '../../policy/schema.js';
import { discoverFromEnv } from '../../providers/discover-env.js';
import { maskSecretsInText } from '../../policy/secrets.js';
import { PolicyEditor, readPolicyTexts } from '../../providers/policy-edit.js';
import { carryOut, planProposal, withoutSet } from '../../providers/proposal.js';
import { envCredentials } from '../../providers/target.js';
import { testProvider } from '../../providers/test-provider.js';
import { action, policiesDir, POLICIES_FLAGS, POLICIES_HELP, type CliContext } from '../context.js';
import { EXIT, type ExitCode } from '../exit-codes.js';
import type { CliIo } from '../io.js';
import { askService, serviceError, serviceTarget } from '../service-client.js';

const SERVICE_HELP =
  'Asks the running service (MODELCENTER_URL, else 127.0.0.1:MODELCENTER_API_PORT; token from MODELCENTER_TOKEN or .modelcenter/api-token).';

const format = (choices = ['text', 'json']): Option =>
  new Option('--format <format>', 'output').choices(choices).default(choices[0]);

/** `providers discover|test|list`. */
export function registerProviders(program: Command, context: CliContext): void {
  const providers = program
    .command('providers')
    .summary('find, test and list providers')
    .description('Providers: found in the environment, tested before they are saved, listed.');
  providers
    .command('discover')
    .summary('propose providers for the keys and URLs in the environment')
    .description(
      'Finds provider keys and URLs in the environment (the registry’s key variables, OLLAMA_HOST / OLLAMA_BASE_URL, PROVIDER_<NAME>_URL + PROVIDER_<NAME>_KEY) and proposes the provider entries as a policy diff. --write commits it (the running service applies the commit).',
    )
    .option(POLICIES_FLAGS, POLICIES_HELP)
    .option('--write', 'commit the proposal to the policy repository', false)
    .option('--reason <text>', 'why, for the commit message')
    .addOption(format())
    .action(
      action(context, (o: { policies?: string; write: boolean; reason?: string; format: string }) =>
        discover(context, o),
      ),
    );
  providers
    .command('test')
    .summary('test a provider definition before saving it')
    .description(
      'Connectivity, credential accepted, size of the model list and latency, for a definition that is not saved. Credentials are references (env:NAME) read from this environment.',
    )
    .requiredOption(
      '--kind <kind>',
      `provider kind (${PROVIDER_KINDS.length} known; e.g. groq, ollama, openai_compatible)`,
    )
    .option('--base-url <url>', 'the API base, when not the kind’s default')
    .option('--credential <ref>', 'env:VARIABLE or secret:name')
    .addOption(format())
    .action(
      action(
        context,
        (o: { kind: string; baseUrl?: string; credential?: string; format: string }) =>
          testCommand(context, o),
      ),
    );
  providers
    .command('list')
    .summary('providers in the policies, with their last sync')
    .description(`Providers in the policies: kind, address, models, last sync. ${SERVICE_HELP}`)
    .addOption(format())
    .action(
      action(context, async (o: { format: string }) => {
        const reply = await askService('/v1/providers', {}, context.env, context.io, 'GET');
        if ('failed' in reply) return reply.failed;
        const failed = serviceError(reply, context.io);
        if (failed !== undefined) return failed;
        const list = reply.answer.providers as Record<string, unknown>[];
        if (o.format === 'json') context.io.stdout(`${JSON.stringify(list, null, 2)}\n`);
        else
          for (const p of list) {
            const sync = p.lastSync as { at?: string; ok?: boolean; kept?: number } | undefined;
            context.io.stdout(
              `${String(p.name)}  ${String(p.kind)}  ${typeof p.baseUrl === 'string' ? p.baseUrl : ''}  curated ${String(p.curatedModels)}  discovered ${String(p.discoveredModels)}  ${sync ? `synced ${sync.at ?? ''}${sync.ok ? '' : ' (failed)'}` : 'never synced'}\n`,
            );
          }
        return EXIT.ok;
      }),
    );
}

async function discover(
  context: CliContext,
  options: { policies?: string; write: boolean; reason?: string; format: string },
): Promise<ExitCode> {
  const dir = policiesDir(context, options.policies);
  const build = await buildFromDir(dir);
  const existing = new Map([...build.set.providers].map(([n, e]) => [n, e.value]));
  const found = discoverFromEnv(context.env, existing);
  if (found.length === 0) {
    context.io.stderr('modelcenter providers: no new provider keys or URLs in the environment\n');
    return EXIT.ok;
  }
  const policies = await readPolicyTexts(dir);
  const editor = new PolicyEditor(policies);
  for (const f of found) editor.set('providers', f.name, f.provider);
  const what = `providers: add ${found.map((f) => f.name).join(', ')} (found in the environment)`;
  const plan = withoutSet(planProposal(what, policies, editor));
  if (options.format === 'json') {
    // A URL from the environment may carry a key (PROVIDER_X_URL=https://u:key@host): shown masked.
    context.io.stdout(`${maskSecretsInText(JSON.stringify({ found, plan }, null, 2))}\n`);
  } else {
    for (const f of found) context.io.stdout(`# ${f.name}: from ${f.because.join(', ')}\n`);
    context.io.stdout(
      maskSecretsInText(
        stringify({ providers: Object.fromEntries(found.map((f) => [f.name, f.provider])) }),
      ),
    );
    for (const file of plan.files) context.io.stdout(`\n${file.diff}`);
    for (const problem of plan.problems) context.io.stderr(`problem: ${problem}\n`);
  }
  if (!plan.valid) return EXIT.invalidInput;
  if (!options.write) return EXIT.ok;
  const result = await carryOut(what, policies, editor, {
    repo: await PolicyRepo.open(dir),
    // Committed only: the running service applies the new policy commit (its poll trigger).
    apply: async (commit) => {
      await commit();
      return { outcome: 'unchanged', problems: [] };
    },
    author: { name: 'cli' },
    reason: options.reason ?? 'modelcenter providers discover --write',
    dryRun: false,
  });
  if (!result.dryRun && result.commit) {
    context.io.stderr(`modelcenter providers: committed ${result.commit.slice(0, 12)}\n`);
  }
  return EXIT.ok;
}

async function testCommand(
  context: CliContext,
  options: { kind: string; baseUrl?: string; credential?: string; format: string },
): Promise<ExitCode> {
  const parsed = providerSchema.safeParse({
    kind: options.kind,
    ...(options.baseUrl && { base_url: options.baseUrl }),
    ...(options.credential && { credential: options.credential }),
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    context.io.stderr(`modelcenter providers: ${issue.path.join('.')}: ${issue.message}\n`);
    return EXIT.invalidInput;
  }
  const provider: Provider = parsed.data;
  const report = await testProvider('candidate', provider, envCredentials(context.env));
  if (options.format === 'json') context.io.stdout(`${JSON.stringify(report, null, 2)}\n`);
  else if (report.ok)
    context.io.stdout(
      `ok: ${report.endpoint} answered in ${report.latencyMs} ms with ${report.models} models (${(report.sample ?? []).join(', ')})\n`,
    );
  else context.io.stderr(`modelcenter providers: ${report.error}\n`);
  return report.ok ? EXIT.ok : EXIT.operationalFailure;
}

/** `models sync|list|info|promote|disable|enable|pull`: through the running service. */
export function registerModels(program: Command, context: CliContext): void {
  const models = program
    .command('models')
    .summary('the curated catalog and the discovered pool')
    .description(
      `Models: sync providers' live lists into the discovered pool, review, promote. ${SERVICE_HELP}`,
    );
  models
    .command('sync [provider]')
    .summary("read providers' live model lists into the discovered pool (never changes routing)")
    .addOption(format())
    .action(
      action(context, async (provider: string | undefined, o: { format: string }) => {
        const route = provider
          ? `/v1/providers/${encodeURIComponent(provider)}/sync`
          : '/v1/providers/sync-all';
        const reply = await askService(route, {}, context.env, context.io);
        if ('failed' in reply) return reply.failed;
        if (reply.answer.error) return serviceError(reply, context.io)!;
        const reports = (provider ? [reply.answer] : reply.answer.reports) as SyncLine[];
        if (o.format === 'json') context.io.stdout(`${JSON.stringify(reports, null, 2)}\n`);
        else for (const r of reports) context.io.stdout(`${syncLine(r)}\n`);
        return reports.every((r) => r.ok) ? EXIT.ok : EXIT.operationalFailure;
      }),
    );
  models
    .command('list')
    .summary('models of the catalog and/or the discovered pool')
    .addOption(
      new Option('--source <source>', 'which models')
        .choices(['curated', 'discovered', 'all'])
        .default('all'),
    )
    .addOption(format(['table', 'json']))
    .action(
      action(context, async (o: { source: string; format: string }) => {
        const reply = await askService(
          `/v1/models?source=${o.source}`,
          {},
          context.env,
          context.io,
          'GET',
        );
        if ('failed' in reply) return reply.failed;
        const failed = serviceError(reply, context.io);
        if (failed !== undefined) return failed;
        const rows = reply.answer.models as Row[];
        if (o.format === 'json') context.io.stdout(`${JSON.stringify(rows, null, 2)}\n`);
        else context.io.stdout(table(rows));
        return EXIT.ok;
      }),
    );
  models
    .command('info <id>')
    .summary('one model: a catalog name or a discovered <provider>/<upstream> id')
    .action(
      action(context, async (id: string) => {
        const reply = await askService(
          `/v1/models/${encodeURIComponent(id)}`,
          {},
          context.env,
          context.io,
          'GET',
        );
        if ('failed' in reply) return reply.failed;
        const failed = serviceError(reply, context.io);
        if (failed !== undefined) return failed;
        context.io.stdout(`${JSON.stringify(reply.answer.models, null, 2)}\n`);
        return EXIT.ok;
      }),
    );
  models
    .command('promote <ids...>')
    .summary('promote discovered models into the catalog (a policy commit, applied)')
    .option('--profile <profile>', 'also route this profile to them')
    .option('--reason <text>', 'why, for the commit message')
    .option('--dry-run', 'show the plan without committing', false)
    .action(
      action(context, (ids: string[], o: { profile?: string; reason?: string; dryRun: boolean }) =>
        mutation(context, '/v1/models/promote', 'POST', {
          ids,
          ...(o.profile && { profile: o.profile }),
          ...(o.reason && { reason: o.reason }),
          dryRun: o.dryRun,
        }),
      ),
    );
  for (const verb of ['disable', 'enable'] as const) {
    models
      .command(`${verb} <id>`)
      .summary(
        `${verb} a catalog model (a policy commit, applied)${verb === 'disable' ? ': not served' : ''}`,
      )
      .option('--reason <text>', 'why, for the commit message')
      .option('--dry-run', 'show the plan without committing', false)
      .action(
        action(context, (id: string, o: { reason?: string; dryRun: boolean }) =>
          mutation(context, `/v1/models/${encodeURIComponent(id)}/enabled`, 'PUT', {
            enabled: verb === 'enable',
            ...(o.reason && { reason: o.reason }),
            dryRun: o.dryRun,
          }),
        ),
      );
  }
  models
    .command('pull <name>')
    .summary('pull a model into an Ollama provider, with progress, then sync it')
    .option('--provider <name>', 'the Ollama provider (default: the only one in the policies)')
    .action(
      action(context, (name: string, o: { provider?: string }) => pull(context, name, o.provider)),
    );
}

interface SyncLine {
  provider: string;
  ok: boolean;
  error?: string;
  listed: number;
  kept: number;
  added: string[];
  disappeared: string[];
}

function syncLine(r: SyncLine): string {
  if (!r.ok) return `${r.provider}: failed — ${r.error ?? 'unknown error'}`;
  return `${r.provider}: ${r.kept} of ${r.listed} listed kept; ${r.added.length} new${r.added.length ? ` (${r.added.join(', ')})` : ''}; ${r.disappeared.length} disappeared${r.disappeared.length ? ` (${r.disappeared.join(', ')})` : ''}`;
}

interface Row {
  id: string;
  source: string;
  provider: string;
  upstream: string;
  contextWindow?: number;
  capabilities: string[];
  missingSince?: string;
  enabled?: boolean;
  curatedAs?: string;
}

function table(rows: Row[]): string {
  const columns = [
    'id',
    'source',
    'provider',
    'upstream',
    'contextWindow',
    'capabilities',
    'state',
  ];
  const cells = rows.map((r) => [
    r.id,
    r.source,
    r.provider,
    r.upstream,
    r.contextWindow === undefined ? '' : String(r.contextWindow),
    r.capabilities.join(','),
    r.missingSince
      ? `missing since ${r.missingSince}`
      : r.enabled === false
        ? 'disabled'
        : r.curatedAs
          ? `curated as ${r.curatedAs}`
          : '',
  ]);
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const line = (row: string[]) =>
    `${row
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd()}\n`;
  return [line(columns), ...cells.map(line)].join('');
}

async function mutation(
  context: CliContext,
  route: string,
  method: 'POST' | 'PUT',
  body: Record<string, unknown>,
): Promise<ExitCode> {
  const reply = await askService(route, body, context.env, context.io, method);
  if ('failed' in reply) return reply.failed;
  const failed = serviceError(reply, context.io);
  for (const problem of (reply.answer.problems as string[] | undefined) ?? []) {
    context.io.stderr(`  ${problem}\n`);
  }
  if (failed !== undefined) return failed;
  const answer = reply.answer as {
    dryRun?: boolean;
    commit?: string;
    reverted?: string;
    plan?: { files: { diff: string }[] };
    apply?: { outcome: string; problems: string[] };
  };
  if (answer.dryRun) for (const f of answer.plan?.files ?? []) context.io.stdout(f.diff);
  else if (!answer.commit) context.io.stdout('nothing to change\n');
  else
    context.io.stdout(
      `committed ${answer.commit.slice(0, 12)}; apply: ${answer.apply?.outcome ?? '?'}${answer.reverted ? ` — reverted by ${answer.reverted.slice(0, 12)}` : ''}\n`,
    );
  for (const problem of answer.apply?.problems ?? []) context.io.stderr(`  ${problem}\n`);
  return reply.ok ? EXIT.ok : EXIT.operationalFailure;
}

async function pull(
  context: CliContext,
  name: string,
  provider: string | undefined,
): Promise<ExitCode> {
  const io = context.io;
  if (!provider) {
    const reply = await askService('/v1/providers', {}, context.env, io, 'GET');
    if ('failed' in reply) return reply.failed;
    const failed = serviceError(reply, io);
    if (failed !== undefined) return failed;
    const ollamas = (reply.answer.providers as { name: string; prefix: string }[]).filter((p) =>
      p.prefix.startsWith('ollama'),
    );
    if (ollamas.length !== 1) {
      io.stderr(
        `modelcenter models: ${ollamas.length === 0 ? 'no Ollama provider in the policies' : `several Ollama providers (${ollamas.map((p) => p.name).join(', ')})`} — name one with --provider\n`,
      );
      return EXIT.invalidInput;
    }
    provider = ollamas[0]!.name;
  }
  const target = await serviceTarget(context.env, io);
  if ('failed' in target) return target.failed;
  let response: Response;
  try {
    response = await fetch(`${target.base}/v1/providers/${encodeURIComponent(provider)}/pull`, {
      method: 'POST',
      headers: { authorization: `Bearer ${target.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: name }),
    });
  } catch (error) {
    io.stderr(
      `modelcenter models: the service at ${target.base} did not answer (${(error as Error).message})\n`,
    );
    return EXIT.operationalFailure;
  }
  if (!response.ok || !response.body) {
    const answer = (await response.json().catch(() => ({}))) as { error?: { message?: string } };
    io.stderr(`modelcenter models: ${answer.error?.message ?? response.statusText}\n`);
    return [400, 401, 403, 404, 422].includes(response.status)
      ? EXIT.invalidInput
      : EXIT.operationalFailure;
  }
  const bar = new ProgressBar(io);
  let code: ExitCode = EXIT.operationalFailure;
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (!line) continue;
      const event = JSON.parse(line) as {
        status?: string;
        total?: number;
        completed?: number;
        error?: { message?: string };
        sync?: SyncLine;
      };
      if (event.error) {
        bar.done();
        io.stderr(`modelcenter models: ${event.error.message ?? 'the pull failed'}\n`);
        return EXIT.operationalFailure;
      }
      if (event.status === 'synced' && event.sync) {
        bar.done();
        io.stdout(`pulled ${name}; ${syncLine(event.sync)}\n`);
        code = event.sync.ok ? EXIT.ok : EXIT.operationalFailure;
      } else bar.update(event.status ?? '', event.completed, event.total);
    }
  }
  return code;
}

/** One line redrawn in place on a terminal; a line per status change otherwise (logs, tests). */
class ProgressBar {
  private last = '';
  private drawn = false;

  constructor(private readonly io: CliIo) {}

  update(status: string, completed?: number, total?: number): void {
    const tty = (process.stderr as { isTTY?: boolean }).isTTY === true;
    if (total && completed !== undefined) {
      const share = Math.min(1, completed / total);
      const width = 30;
      const filled = Math.round(share * width);
      const text = `${status} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.round(share * 100)}% ${mb(completed)}/${mb(total)}`;
      if (tty) {
        this.io.stderr(`\r${text}`);
        this.drawn = true;
      } else if (status !== this.last || share === 1) this.io.stderr(`${text}\n`);
    } else if (status !== this.last) {
      if (this.drawn) this.io.stderr('\n');
      this.drawn = false;
      this.io.stderr(`${status}\n`);
    }
    this.last = status;
  }

  done(): void {
    if (this.drawn) this.io.stderr('\n');
    this.drawn = false;
  }
}

function mb(bytes: number): string {
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}
