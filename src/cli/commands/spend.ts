import { Option, type Command } from 'commander';
import path from 'node:path';
import { buildFromDir } from '../../compile/build.js';
import type { PolicySet } from '../../policy/policy-set.js';
import type { BudgetsReport } from '../../spend/budgets-report.js';
import { budgetRows, type BudgetRow } from '../../spend/budgets.js';
import { alignTable, formatPercent, formatUsd } from '../../shared/format.js';
import { spendSettings } from '../../spend/config.js';
import { deploymentCatalog, readGeneratedConfig, wiresContent } from '../../spend/extract.js';
import { DeadLetterBox } from '../../spend/dead-letter.js';
import { ingestOnce } from '../../spend/ingest.js';
import {
  formatReport,
  ReportQueryError,
  spendReport,
  type ReportFormat,
  type SpendReport,
} from '../../spend/report.js';
import { callRecord, formatCall, UnknownCallError, type CallRecord } from '../../spend/request.js';
import { reportQuerySchema, type ReportQuery } from '../../spend/schema.js';
import { describeError } from '../../shared/errors.js';
import { readIfExists } from '../../shared/fs.js';
import { LiteLLMAdminClient } from '../../litellm/admin-client.js';
import { LiteLLMApiError } from '../../litellm/errors.js';
import {
  BackfillRequestError,
  SpendBackfiller,
  type BackfillResult,
} from '../../spend/backfill.js';
import type { SpendSettings } from '../../spend/config.js';
import { LedgerBusyError, type Database } from '../../store/db.js';
import { DIMENSIONS, FILTER_DIMENSIONS } from '../../store/ledger.js';
import { openLedger } from '../../store/migrate.js';
import { loadSettings, SettingsError } from '../../settings/settings.js';
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
import { askService, serviceError, serviceRunning } from '../service-client.js';

const LEDGER_HELP = `
Ledger: MODELCENTER_LEDGER_URL (PostgreSQL) or MODELCENTER_LEDGER_DIR (embedded, default
.modelcenter/ledger). Spool: MODELCENTER_SPOOL_DIR (default .modelcenter/spool).
`;

const REPORT_HELP = `
Filters take comma-separated values; "-" means "not set". Examples:
  modelcenter spend report --since 7d                              how much did I spend this week?
  modelcenter spend report --group-by provider --sort error_rate   which provider fails most?
  modelcenter spend report --group-by goal,model --since 30d
`;

const BACKFILL_HELP = `
Through the running service when it holds the embedded ledger.
URL: --url, MODELCENTER_BACKFILL_URL, the first of MODELCENTER_LITELLM_URLS, or
     http://127.0.0.1:MODELCENTER_LITELLM_PORT (4000); key: LITELLM_MASTER_KEY or
     .modelcenter/master-key
`;

/** The report's sort keys, from its query schema. */
const SORTS = reportQuerySchema.shape.sort.unwrap().options;

function formatOption(formats: readonly ReportFormat[]): Option {
  return new Option('--format <format>', 'output').choices(formats).default('table');
}

/** `spend report|show|ingest|budgets|backfill`: the ledger, read from this process. */
export function registerSpend(program: Command, context: CliContext): void {
  const spend = program
    .command('spend')
    .summary('spend ledger: reports by goal, caller, model, provider, …')
    .description(
      'The spend ledger: reports by goal, caller, conversation, profile, model, provider; one request; budgets; ingestion and backfill.',
    )
    .addHelpText('after', LEDGER_HELP);

  const report = spend
    .command('report')
    .summary('cost, tokens, requests, errors and latency, grouped and filtered')
    .description(
      'Cost, tokens, requests, errors, latency and TTFT percentiles and cache hits, grouped by any of the dimensions and filtered by their values.',
    )
    .option('--group-by <dims>', `comma-separated: ${DIMENSIONS.join(', ')}`)
    .option('--since <when>', 'a duration back (7d, 12h) or a date (default: 7d)')
    .option('--until <when>', 'a date (default: now)')
    .addOption(formatOption(['table', 'json', 'csv']))
    .addOption(new Option('--sort <key>', 'order of the rows (default: cost)').choices(SORTS))
    .option('--limit <n>', 'at most this many rows')
    .option(POLICIES_FLAGS, POLICIES_HELP);
  for (const dimension of FILTER_DIMENSIONS) {
    report.option(
      `--${dimension} <ids>`,
      `only these ${dimension} ids (comma-separated; - = not set)`,
    );
  }
  report.addHelpText('after', REPORT_HELP).action(
    action(context, (options: ReportFlags) =>
      withLedger(
        context,
        async (db) => {
          const policies = await loadPolicies(policiesDir(context, options.policies), context.io);
          return reportCommand(db, policies, options, context.io);
        },
        // `serve` holds the embedded ledger: the report comes from it.
        () => reportThroughService(options, context.env, context.io),
        true,
      ),
    ),
  );

  spend
    .command('show')
    .summary('every attempt of one request (its x-litellm-call-id)')
    .description(
      'Every attempt of one request (the x-litellm-call-id header): time, status, profile, model, provider, tokens, cost, error, latency; prompt and response when the policies keep them (spend: { keep_content: true }).',
    )
    .argument('<call-id>', "the x-litellm-call-id header of LiteLLM's answer")
    .addOption(formatOption(['table', 'json']))
    .action(
      action(context, (callId: string, options: { format: ReportFormat }) =>
        withLedger(
          context,
          (db) => showCommand(db, callId, options.format, context.io),
          () => showThroughService(callId, options.format, context.env, context.io),
          true,
        ),
      ),
    );

  spend
    .command('ingest')
    .summary('read the spool files into the ledger once')
    .description(
      'Read the spool files into the ledger once (the controller does this continuously).',
    )
    .option(CONFIG_FLAGS, CONFIG_HELP)
    .action(
      action(context, (options: { config?: string }) =>
        withLedger(context, (db, settings) =>
          ingestCommand(db, settings, configFile(context, options.config), context.io),
        ),
      ),
    );

  spend
    .command('budgets')
    .summary('current spend against every budget in the policies, this period')
    .description('Current spend against every budget in the policies, this period.')
    .addOption(formatOption(['table', 'json', 'csv']))
    .option(POLICIES_FLAGS, POLICIES_HELP)
    .action(
      action(context, (options: { format: ReportFormat; policies?: string }) =>
        withLedger(
          context,
          async (db) => {
            const policies = await loadPolicies(policiesDir(context, options.policies), context.io);
            return budgetsCommand(db, policies, options.format, context.io);
          },
          () => budgetsThroughService(options.format, context.env, context.io),
          true,
        ),
      ),
    );

  spend
    .command('backfill')
    .summary("read LiteLLM's own spend logs (database mode) into the ledger")
    .description(
      "Read LiteLLM's own spend logs (database mode) into the ledger, in windows under its 10,000-row cap; requests already in the ledger are skipped. Without --since: from where the last backfill ended.",
    )
    .option('--since <when>', 'a duration back (30d) or a date')
    .option('--until <when>', 'a date (default: now)')
    .option('--url <url>', 'the LiteLLM whose database holds the spend logs')
    .addOption(formatOption(['table', 'json', 'csv']))
    .option(CONFIG_FLAGS, CONFIG_HELP)
    .addHelpText('after', BACKFILL_HELP)
    .action(
      action(context, (options: BackfillFlags & { format: ReportFormat; config?: string }) =>
        withLedger(
          context,
          (db, settings) =>
            backfillCommand(
              {
                db,
                settings,
                configFile: configFile(context, options.config),
                values: options,
                env: context.env,
                format: options.format,
              },
              context.io,
            ),
          // `serve` holds the embedded ledger: a backfill goes through it.
          () => backfillThroughService(options, context.env, context.io, options.format),
        ),
      ),
    );
}

/** The spend settings as `serve` reads them, with directories relative to the working directory. */
function cliSpendSettings(context: CliContext): SpendSettings {
  const { env } = context;
  const resolve = (p: string): string => path.resolve(context.io.cwd, p);
  return spendSettings(
    {
      ...env,
      ...(env.MODELCENTER_LEDGER_DIR && {
        MODELCENTER_LEDGER_DIR: resolve(env.MODELCENTER_LEDGER_DIR),
      }),
      ...(env.MODELCENTER_SPOOL_DIR && {
        MODELCENTER_SPOOL_DIR: resolve(env.MODELCENTER_SPOOL_DIR),
      }),
    },
    resolve(env.MODELCENTER_STATE_DIR ?? '.modelcenter'),
  );
}

/** Opens the ledger for one command and closes it after; `whenBusy` answers a ledger held by `serve`. */
async function withLedger(
  context: CliContext,
  command: (db: Database, settings: SpendSettings) => Promise<ExitCode>,
  whenBusy?: () => Promise<ExitCode>,
  /** Only while a `serve` of this directory runs (else the ledger's own error says who holds it). */
  onlyWhenServing = false,
): Promise<ExitCode> {
  const settings = cliSpendSettings(context);
  let db;
  try {
    db = await openLedger(settings.ledger);
  } catch (error) {
    if (
      whenBusy &&
      error instanceof LedgerBusyError &&
      (!onlyWhenServing || (await serviceRunning(context.env, context.io.cwd)))
    )
      return whenBusy();
    throw error;
  }
  try {
    return await command(db, settings);
  } finally {
    await db.close();
  }
}

type ReportFlags = {
  groupBy?: string;
  since?: string;
  until?: string;
  format: ReportFormat;
  sort?: string;
  limit?: string;
  policies?: string;
} & Partial<Record<(typeof FILTER_DIMENSIONS)[number], string>>;

async function reportCommand(
  db: Database,
  policies: PolicySet | undefined,
  flags: ReportFlags,
  io: CliIo,
): Promise<ExitCode> {
  const query: ReportQuery = {
    ...(flags.groupBy !== undefined && { groupBy: flags.groupBy }),
    ...(flags.since !== undefined && { since: flags.since }),
    ...(flags.until !== undefined && { until: flags.until }),
    ...(flags.sort !== undefined && { sort: flags.sort as ReportQuery['sort'] }),
    ...(flags.limit !== undefined && { limit: Number(flags.limit) }),
  };
  for (const dimension of FILTER_DIMENSIONS) {
    const value = flags[dimension];
    if (typeof value === 'string') query[dimension] = value;
  }
  try {
    const report = await spendReport(db, query, policies ? { policies } : {});
    io.stdout(formatReport(report, flags.format));
    return EXIT.ok;
  } catch (error) {
    if (error instanceof ReportQueryError) {
      io.stderr(`modelcenter spend: ${error.message}\n`);
      return EXIT.invalidInput;
    }
    throw error;
  }
}

async function ingestCommand(
  db: Database,
  settings: SpendSettings,
  configFile: string,
  io: CliIo,
): Promise<ExitCode> {
  const config = await readGeneratedConfig(configFile);
  // Content only when the applied config wires the content callback, as in the controller.
  const keep = wiresContent(config);
  const result = await ingestOnce({
    db,
    spoolDir: settings.spoolDir,
    catalog: deploymentCatalog(config),
    keepContent: () => keep,
    finishedAfterMs: settings.spoolFinishedAfterMs,
    deadLetters: new DeadLetterBox({ dir: settings.deadLetterDir }),
  });
  io.stdout(
    `ingested ${result.inserted} new request record(s) from ${settings.spoolDir} (${result.duplicates} already in the ledger, ${result.rejected} unreadable line(s), ${result.removedFiles} finished file(s) removed)\n`,
  );
  return EXIT.ok;
}

/** The policies' goals, callers and budgets, or undefined (with a note) when they cannot be read. */
async function loadPolicies(dir: string, io: CliIo): Promise<PolicySet | undefined> {
  try {
    const build = await buildFromDir(dir);
    if (build.findings.errors.length > 0)
      io.stderr(
        `note: the policies in ${dir} have errors (modelcenter validate); goals are joined as far as they parse\n`,
      );
    return build.set;
  } catch (error) {
    io.stderr(
      `note: no policies read from ${dir} (${describeError(error)}); goals show as unregistered\n`,
    );
    return undefined;
  }
}

async function showCommand(
  db: Awaited<ReturnType<typeof openLedger>>,
  callId: string,
  format: ReportFormat,
  io: CliIo,
): Promise<ExitCode> {
  try {
    const record = await callRecord(db, callId);
    io.stdout(format === 'json' ? `${JSON.stringify(record, null, 2)}\n` : formatCall(record));
    return EXIT.ok;
  } catch (error) {
    if (error instanceof UnknownCallError) {
      io.stderr(`modelcenter spend: ${error.message}\n`);
      return EXIT.invalidInput;
    }
    throw error;
  }
}

async function budgetsCommand(
  db: Awaited<ReturnType<typeof openLedger>>,
  policies: PolicySet | undefined,
  format: ReportFormat,
  io: CliIo,
): Promise<ExitCode> {
  io.stdout(formatBudgets(await budgetRows(db, policies, new Date()), format));
  return EXIT.ok;
}

/** Budgets for a person (table: decimal USD), a program (json) or a spreadsheet (csv: full precision). */
function formatBudgets(rows: BudgetRow[], format: ReportFormat): string {
  if (format === 'json') return `${JSON.stringify(rows, null, 2)}\n`;
  if (rows.length === 0) return 'no budgets in the policies\n';
  const header = ['budget', 'period', 'period_start', 'spend_usd', 'limit_usd', 'used'];
  const human = format === 'table';
  const lines = rows.map((r) => [
    r.budget,
    r.period,
    r.periodStart,
    human ? formatUsd(r.spendUsd) : String(r.spendUsd),
    human ? formatUsd(r.limitUsd) : String(r.limitUsd),
    human ? formatPercent(r.used) : String(r.used),
  ]);
  if (!human)
    return [header, ...lines]
      .map((l) => l.join(','))
      .join('\n')
      .concat('\n');
  return alignTable([header, ...lines], 3);
}

/** `spend report` while `serve` holds the embedded ledger: `GET /v1/spend/report`. */
async function reportThroughService(
  flags: ReportFlags,
  env: NodeJS.ProcessEnv,
  io: CliIo,
): Promise<ExitCode> {
  if (flags.policies) {
    io.stderr('note: --policies is not used while the service runs; it joins its own policies\n');
  }
  const query: Record<string, string> = {};
  const names: (keyof ReportFlags)[] = [
    'groupBy',
    'since',
    'until',
    'sort',
    'limit',
    ...FILTER_DIMENSIONS,
  ];
  for (const name of names) {
    const value = flags[name];
    if (typeof value === 'string') query[name] = value;
  }
  const reply = await askService('/v1/spend/report', query, env, io, 'GET');
  if ('failed' in reply) return reply.failed;
  const failed = serviceError(reply, io);
  if (failed !== undefined) return failed;
  io.stdout(formatReport(reply.answer as unknown as SpendReport, flags.format));
  return EXIT.ok;
}

/** `spend show` while `serve` holds the embedded ledger: `GET /v1/spend/requests/{callId}`. */
async function showThroughService(
  callId: string,
  format: ReportFormat,
  env: NodeJS.ProcessEnv,
  io: CliIo,
): Promise<ExitCode> {
  const reply = await askService(
    `/v1/spend/requests/${encodeURIComponent(callId)}`,
    {},
    env,
    io,
    'GET',
  );
  if ('failed' in reply) return reply.failed;
  const failed = serviceError(reply, io);
  if (failed !== undefined) return failed;
  const record = reply.answer as unknown as CallRecord;
  io.stdout(format === 'json' ? `${JSON.stringify(record, null, 2)}\n` : formatCall(record));
  return EXIT.ok;
}

/** `spend budgets` while `serve` holds the embedded ledger: `GET /v1/spend/budgets`. */
async function budgetsThroughService(
  format: ReportFormat,
  env: NodeJS.ProcessEnv,
  io: CliIo,
): Promise<ExitCode> {
  const reply = await askService('/v1/spend/budgets', {}, env, io, 'GET');
  if ('failed' in reply) return reply.failed;
  const failed = serviceError(reply, io);
  if (failed !== undefined) return failed;
  const { budgets } = reply.answer as unknown as BudgetsReport;
  const rows: BudgetRow[] = budgets.map((b) => ({
    budget: b.name,
    period: b.period,
    periodStart: b.periodStart,
    periodEnd: b.periodEnd,
    spendUsd: b.spendUsd,
    limitUsd: b.limitUsd,
    used: b.used,
    reached: b.reached,
  }));
  io.stdout(formatBudgets(rows, format));
  return EXIT.ok;
}

interface BackfillFlags {
  since?: string;
  until?: string;
  url?: string;
}

/** `spend backfill` in this process: the ledger is ours (PostgreSQL, or no service running). */
async function backfillCommand(
  context: {
    db: Database;
    settings: SpendSettings;
    configFile: string;
    values: BackfillFlags;
    env: NodeJS.ProcessEnv;
    format: ReportFormat;
  },
  io: CliIo,
): Promise<ExitCode> {
  const { db, settings, values, env } = context;
  // Where `serve` would find LiteLLM and its generated master key (the same settings loader).
  let service;
  try {
    service = await loadSettings(env, io.cwd);
  } catch (error) {
    if (!(error instanceof SettingsError)) throw error;
    io.stderr(`modelcenter spend: ${error.message}\n`);
    return EXIT.invalidInput;
  }
  const url =
    values.url ??
    settings.backfill.url ??
    service.litellmUrls[0] ??
    `http://127.0.0.1:${service.litellmPort}`;
  const masterKey =
    env.LITELLM_MASTER_KEY ??
    (await readIfExists(path.join(service.stateDir, 'master-key')))?.trim();
  if (!masterKey) {
    io.stderr(
      `modelcenter spend: no LiteLLM master key — set LITELLM_MASTER_KEY (the key of the LiteLLM at ${url})\n`,
    );
    return EXIT.invalidInput;
  }
  const catalog = deploymentCatalog(await readGeneratedConfig(context.configFile));
  const backfiller = new SpendBackfiller({
    db,
    source: () => new LiteLLMAdminClient(url, masterKey, 60_000),
    catalog: () => catalog,
    settings: settings.backfill,
    deadLetters: new DeadLetterBox({ dir: settings.deadLetterDir }),
  });
  try {
    const result = await backfiller.forQuery({
      ...(values.since !== undefined && { since: values.since }),
      ...(values.until !== undefined && { until: values.until }),
    });
    printBackfill(result, context.format, io);
    return EXIT.ok;
  } catch (error) {
    if (error instanceof LiteLLMApiError) {
      io.stderr(`modelcenter spend: ${error.message}\n`);
      return EXIT.operationalFailure;
    }
    if (error instanceof BackfillRequestError || error instanceof ReportQueryError) {
      io.stderr(`modelcenter spend: ${error.message}\n`);
      return EXIT.invalidInput;
    }
    throw error;
  }
}

/** `spend backfill` while `serve` holds the embedded ledger: `POST /v1/spend/backfill`. */
async function backfillThroughService(
  values: BackfillFlags,
  env: NodeJS.ProcessEnv,
  io: CliIo,
  format: ReportFormat,
): Promise<ExitCode> {
  if (values.url) {
    io.stderr(
      'modelcenter spend: --url is not used while the service runs; it reads MODELCENTER_BACKFILL_URL or its own LiteLLM\n',
    );
    return EXIT.invalidInput;
  }
  const reply = await askService(
    '/v1/spend/backfill',
    {
      ...(values.since !== undefined && { since: values.since }),
      ...(values.until !== undefined && { until: values.until }),
    },
    env,
    io,
  );
  if ('failed' in reply) return reply.failed;
  const failed = serviceError(reply, io);
  if (failed !== undefined) return failed;
  printBackfill(reply.answer as unknown as BackfillResult, format, io);
  return EXIT.ok;
}

function printBackfill(result: BackfillResult, format: ReportFormat, io: CliIo): void {
  if (format === 'json') {
    io.stdout(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }
  io.stdout(
    `backfilled ${result.from} → ${result.to}: ${result.inserted} new request record(s), ${result.known} already in the ledger, ${result.fetched} read in ${result.windows} window(s)${result.splits > 0 ? ` (${result.splits} made smaller to fit one page)` : ''}${result.cleaned > 0 ? `, ${result.cleaned} stored after cleaning` : ''}${result.rejected > 0 ? `, ${result.rejected} not stored (see the dead-letter file)` : ''}\n`,
  );
  if (result.missed > 0)
    io.stderr(
      `warning: ${result.missed} request(s) LiteLLM counted in crowded seconds were not returned by its pages; run the same range again\n`,
    );
}
