import path from 'node:path';
import { parseArgs } from 'node:util';
import { buildFromDir } from '../compile/build.js';
import type { PolicySet } from '../policy/policy-set.js';
import { budgetsFromPolicies, budgetStatus } from '../spend/budgets.js';
import { spendSettings } from '../spend/config.js';
import { deploymentCatalog, readGeneratedConfig, wiresContent } from '../spend/extract.js';
import { DeadLetterBox } from '../spend/dead-letter.js';
import { ingestOnce } from '../spend/ingest.js';
import { formatReport, ReportQueryError, spendReport, type ReportFormat } from '../spend/report.js';
import { callRecord, formatCall, UnknownCallError } from '../spend/request.js';
import type { ReportQuery } from '../spend/schema.js';
import { describeError } from '../shared/errors.js';
import { readIfExists } from '../shared/fs.js';
import { LiteLLMAdminClient } from '../litellm/admin-client.js';
import { LiteLLMApiError } from '../litellm/errors.js';
import { BackfillRequestError, SpendBackfiller, type BackfillResult } from '../spend/backfill.js';
import type { SpendSettings } from '../spend/config.js';
import { LedgerBusyError, type Database } from '../store/db.js';
import { FILTER_DIMENSIONS } from '../store/ledger.js';
import { openLedger } from '../store/migrate.js';
import { loadSettings, SettingsError } from '../settings/settings.js';
import { askService, serviceError } from './serve.js';
import { EXIT, type ExitCode } from './exit-codes.js';
import type { CliIo } from './run.js';

export const SPEND_USAGE = `Usage: modelcenter spend <report|show|ingest|budgets|backfill> [options]

  spend report  [--group-by DIMS] [--since 7d] [--until DATE] [--format table|json|csv]
                [--goal IDS] [--caller IDS] [--conversation IDS] [--profile IDS] [--model IDS]
                [--provider IDS] [--deployment IDS] [--sort cost|requests|errors|error_rate|latency_p95|key]
                [--limit N]
      DIMS: comma-separated goal, caller, conversation, profile, model, provider, deployment, day, hour.
      Filters take comma-separated values; "-" means "not set". Examples:
        modelcenter spend report --since 7d                       how much did I spend this week?
        modelcenter spend report --group-by provider --sort error_rate   which provider fails most?
        modelcenter spend report --group-by goal,model --since 30d
  spend show CALL_ID [--format table|json]
                every attempt of one request (the x-litellm-call-id header): time, status, profile,
                model, provider, tokens, cost, error, latency; prompt and response when the
                policies keep them (spend: { keep_content: true })
  spend ingest  read the spool files into the ledger once (the controller does this continuously)
  spend budgets current spend against every budget in the policies, this period
  spend backfill [--since 7d] [--until DATE] [--url URL] [--format table|json]
                read LiteLLM's own spend logs (database mode) into the ledger, in windows under its
                10,000-row cap; requests already in the ledger are skipped. Without --since: from
                where the last backfill ended. Through the running service when it holds the ledger.
      URL: --url, MODELCENTER_BACKFILL_URL, the first of MODELCENTER_LITELLM_URLS, or
           http://127.0.0.1:MODELCENTER_LITELLM_PORT (4000); key: LITELLM_MASTER_KEY or
           .modelcenter/master-key

Ledger: MODELCENTER_LEDGER_URL (PostgreSQL) or MODELCENTER_LEDGER_DIR (embedded, default
.modelcenter/ledger). Spool: MODELCENTER_SPOOL_DIR (default .modelcenter/spool).
`;

/** One flag per report filter (`--goal`, `--caller`, …). */
const FILTER_FLAGS = FILTER_DIMENSIONS;

/** `modelcenter spend …`: reports, one-shot ingestion and budget status over the ledger. */
export async function spendCommand(
  argv: readonly string[],
  io: CliIo,
  env: NodeJS.ProcessEnv,
): Promise<ExitCode> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        'group-by': { type: 'string' },
        since: { type: 'string' },
        until: { type: 'string' },
        format: { type: 'string', default: 'table' },
        sort: { type: 'string' },
        limit: { type: 'string' },
        policies: { type: 'string' },
        config: { type: 'string' },
        url: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
        ...Object.fromEntries(FILTER_FLAGS.map((f) => [f, { type: 'string' as const }])),
      },
    });
  } catch (error) {
    io.stderr(`modelcenter spend: ${describeError(error)}\n\n${SPEND_USAGE}`);
    return EXIT.invalidInput;
  }
  const { values, positionals } = parsed;
  const sub = positionals[0];
  if (values.help || sub === undefined) {
    io.stdout(SPEND_USAGE);
    return values.help ? EXIT.ok : EXIT.invalidInput;
  }
  const resolve = (p: string): string => path.resolve(io.cwd, p);
  const stateDir = resolve(env.MODELCENTER_STATE_DIR ?? '.modelcenter');
  const settings = spendSettings(
    {
      ...env,
      ...(env.MODELCENTER_LEDGER_DIR && {
        MODELCENTER_LEDGER_DIR: resolve(env.MODELCENTER_LEDGER_DIR),
      }),
      ...(env.MODELCENTER_SPOOL_DIR && {
        MODELCENTER_SPOOL_DIR: resolve(env.MODELCENTER_SPOOL_DIR),
      }),
    },
    stateDir,
  );
  const policiesDir = resolve(values.policies ?? env.MODELCENTER_POLICIES ?? 'policies');
  const format = values.format as ReportFormat;
  if (!['table', 'json', 'csv'].includes(format)) {
    io.stderr(`modelcenter spend: --format must be table, json or csv, not "${values.format}"\n`);
    return EXIT.invalidInput;
  }
  if (!['report', 'show', 'ingest', 'budgets', 'backfill'].includes(sub)) {
    io.stderr(`modelcenter spend: unknown subcommand "${sub}"\n\n${SPEND_USAGE}`);
    return EXIT.invalidInput;
  }

  const callId = positionals[1];
  if (sub === 'show' && (callId === undefined || format === 'csv')) {
    io.stderr(
      callId === undefined
        ? `modelcenter spend show: name the call id (the x-litellm-call-id header of LiteLLM's answer)\n`
        : 'modelcenter spend show: --format must be table or json\n',
    );
    return EXIT.invalidInput;
  }

  let db;
  try {
    db = await openLedger(settings.ledger);
  } catch (error) {
    // `serve` holds the embedded ledger: a backfill goes through it.
    if (sub === 'backfill' && error instanceof LedgerBusyError)
      return backfillThroughService(values, env, io, format);
    throw error;
  }
  try {
    if (sub === 'backfill') {
      const configFile = resolve(values.config ?? env.MODELCENTER_CONFIG ?? 'litellm/config.yaml');
      return await backfillCommand({ db, settings, configFile, values, env, format }, io);
    }
    if (sub === 'show') return await showCommand(db, callId!, format, io);
    if (sub === 'ingest') {
      const configFile = resolve(values.config ?? env.MODELCENTER_CONFIG ?? 'litellm/config.yaml');
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
    const policies = await loadPolicies(policiesDir, io);
    if (sub === 'budgets') return await budgetsCommand(db, policies, format, io);
    const query: ReportQuery = {
      ...(values['group-by'] !== undefined && { groupBy: values['group-by'] }),
      ...(values.since !== undefined && { since: values.since }),
      ...(values.until !== undefined && { until: values.until }),
      ...(values.sort !== undefined && { sort: values.sort as ReportQuery['sort'] }),
      ...(values.limit !== undefined && { limit: Number(values.limit) }),
    };
    for (const flag of FILTER_FLAGS) {
      const value = (values as Record<string, unknown>)[flag];
      if (typeof value === 'string') query[flag] = value;
    }
    try {
      const report = await spendReport(db, query, policies ? { policies } : {});
      io.stdout(formatReport(report, format));
      return EXIT.ok;
    } catch (error) {
      if (error instanceof ReportQueryError) {
        io.stderr(`modelcenter spend: ${error.message}\n`);
        return EXIT.invalidInput;
      }
      throw error;
    }
  } finally {
    await db.close();
  }
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
  const budgets = policies ? budgetsFromPolicies(policies) : [];
  const now = new Date();
  const statuses = await Promise.all(budgets.map((b) => budgetStatus(db, b, now)));
  const rows = statuses.map((s) => ({
    budget: s.budget.name,
    period: s.budget.period,
    periodStart: s.periodStart.toISOString(),
    periodEnd: s.periodEnd.toISOString(),
    spendUsd: s.spendUsd,
    limitUsd: s.budget.usd,
    used: s.used,
    reached: s.reached,
  }));
  if (format === 'json') {
    io.stdout(`${JSON.stringify(rows, null, 2)}\n`);
    return EXIT.ok;
  }
  if (rows.length === 0) {
    io.stdout('no budgets in the policies\n');
    return EXIT.ok;
  }
  const sep = format === 'csv' ? ',' : '  ';
  io.stdout(`budget${sep}period${sep}period_start${sep}spend_usd${sep}limit_usd${sep}used\n`);
  for (const r of rows)
    io.stdout(
      `${r.budget}${sep}${r.period}${sep}${r.periodStart}${sep}${r.spendUsd.toFixed(2)}${sep}${r.limitUsd.toFixed(2)}${sep}${(r.used * 100).toFixed(1)}%\n`,
    );
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
    `backfilled ${result.from} → ${result.to}: ${result.inserted} new request record(s), ${result.known} already in the ledger, ${result.fetched} read in ${result.windows} window(s)${result.splits > 0 ? ` (${result.splits} made smaller to fit one page)` : ''}${result.rejected > 0 ? `, ${result.rejected} unreadable` : ''}\n`,
  );
  if (result.missed > 0)
    io.stderr(
      `warning: ${result.missed} request(s) LiteLLM counted in crowded seconds were not returned by its pages; run the same range again\n`,
    );
}
