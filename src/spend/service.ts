import { stat } from 'node:fs/promises';
import { buildFromDir } from '../compile/build.js';
import { keepsContent, type PolicySet } from '../policy/policy-set.js';
import { openLedger } from '../store/migrate.js';
import { spendSettings } from './config.js';
import { webhookSink } from './webhook.js';
import { LiteLLMAdminClient } from '../litellm/admin-client.js';
import { describeError } from '../shared/errors.js';
import { FailureStreak, type StreakStatus } from '../shared/failure-streak.js';
import { BackfillRequestError, SpendBackfiller } from './backfill.js';
import type { Database } from '../store/db.js';
import { pruneRawRows } from '../store/ledger.js';
import {
  budgetsFromPolicies,
  checkBudgets,
  type Alert,
  type AlertSink,
  type SpikeOptions,
} from './budgets.js';
import {
  deploymentCatalog,
  readGeneratedConfig,
  wiresContent,
  type DeploymentCatalog,
} from './extract.js';
import { ingestPayloads, SILENT_LOGGER, SpoolIngester, type SpendLogger } from './ingest.js';
import { DeadLetterBox, type DeadLetterBoxOptions, type ProblemSummary } from './dead-letter.js';

export interface SpendServiceOptions {
  db: Database;
  spoolDir: string;
  /** Called on every ingest run, so a new config's deployments are known at once. */
  catalog: DeploymentCatalog;
  /** The current policies (goals, budgets, spend), or undefined when none are loaded. */
  policies: () => Pick<PolicySet, 'goals' | 'budgets' | 'spend'> | undefined;
  /** Runs before every ingestion run (the controller re-reads policies when the config changed). */
  beforeIngest?: () => Promise<void>;
  /** Whether to store prompts and responses; default: the policies' `spend.keep_content`. */
  keepContent?: () => boolean;
  sink?: AlertSink;
  log?: SpendLogger;
  ingestIntervalMs?: number;
  budgetIntervalMs?: number;
  /** Raw rows older than this are deleted (rollups stay); undefined keeps them. */
  retentionDays?: number;
  spike?: SpikeOptions | false;
  /** Runs before every budget check (the controller re-reads policies and config here). */
  beforeCheck?: () => Promise<void>;
  /** See SpendSettings.spoolFinishedAfterMs. */
  spoolFinishedAfterMs?: number;
  /** Where lines the ledger cannot store go; default: counted and logged only. */
  deadLetters?: DeadLetterBox;
  now?: () => Date;
}

export interface SpendService {
  ingester: SpoolIngester;
  /** Runs the budget and spike check now (after ingesting what the spool holds). */
  checkNow(): Promise<Alert[]>;
  stop(): Promise<void>;
}

/**
 * The controller's spend loop: ingest the spool every second, check budgets and spikes every
 * budgetIntervalMs, prune raw rows past retention once an hour. Errors are logged and retried.
 */
export function startSpendService(options: SpendServiceOptions): SpendService {
  const log = options.log ?? SILENT_LOGGER;
  const ingester = new SpoolIngester({
    db: options.db,
    spoolDir: options.spoolDir,
    catalog: options.catalog,
    keepContent: options.keepContent ?? (() => keepsContent(options.policies())),
    ...(options.beforeIngest && { beforeRun: options.beforeIngest }),
    log,
    deadLetters: options.deadLetters ?? new DeadLetterBox({ log }),
    intervalMs: options.ingestIntervalMs ?? 1000,
    ...(options.spoolFinishedAfterMs !== undefined && {
      finishedAfterMs: options.spoolFinishedAfterMs,
    }),
  });
  ingester.start();
  const now = options.now ?? (() => new Date());
  let checking: Promise<Alert[]> | undefined;
  const check = async (): Promise<Alert[]> => {
    await options.beforeCheck?.();
    await ingester.runOnce();
    const policies = options.policies();
    const alerts = await checkBudgets({
      db: options.db,
      budgets: policies ? budgetsFromPolicies(policies) : [],
      sink: options.sink,
      log,
      now: now(),
      spike: options.spike,
    });
    if (options.retentionDays !== undefined && Date.now() - lastPrune > 3600_000) {
      lastPrune = Date.now();
      const cutoff = new Date(now().getTime() - options.retentionDays * 86_400_000);
      const pruned = await pruneRawRows(options.db, cutoff);
      if (pruned > 0) log.info({ pruned, before: cutoff.toISOString() }, 'raw spend rows pruned');
    }
    return alerts;
  };
  let lastPrune = 0;
  const checkNow = (): Promise<Alert[]> => {
    checking ??= check().finally(() => {
      checking = undefined;
    });
    return checking;
  };
  const budgetFailures = new FailureStreak(log, 'budget check');
  const timer = setInterval(() => {
    checkNow().then(
      () => budgetFailures.succeeded(),
      (error: unknown) => budgetFailures.failed(error),
    );
  }, options.budgetIntervalMs ?? 30_000);
  return {
    ingester,
    checkNow,
    async stop() {
      clearInterval(timer);
      await checking?.catch(() => undefined);
      await ingester.stop();
    },
  };
}

export interface ControllerSpendOptions {
  stateDir: string;
  env: NodeJS.ProcessEnv;
  /** Goals and budgets come from here (re-read on every budget check). */
  policiesDir: string;
  /** The generated LiteLLM config: deployment id → catalog model and policy provider. */
  configFile: string;
  log: SpendLogger;
  /**
   * The LiteLLM whose database the spend-log backfill reads, and its master key; asked at every
   * backfill (the URL of a controller-started LiteLLM is known only once it runs).
   */
  litellm: () => { url: string | undefined; masterKey: string };
  /** Every cleaned or dead-lettered record, as counted (the controller's /metrics). */
  onProblem?: DeadLetterBoxOptions['onCount'];
}

export interface ControllerSpend {
  db: Database;
  service: SpendService;
  /** Reads LiteLLM's own spend logs (database mode) into the ledger; see backfill.ts. */
  backfiller: SpendBackfiller;
  /**
   * Whether the policies ask for prompts and responses (`spend.keep_content`): the spool and the
   * generic_api ingest route store content only then.
   */
  keepsContent(): boolean;
  /**
   * Spool lines and ingest payloads that could not be stored as they came (dead-letter file,
   * counters).
   */
  deadLetters: DeadLetterBox;
  /**
   * Payloads received over HTTP (generic_api) into the ledger: content kept as the spool's is,
   * what cannot be stored dead-lettered with the spool's.
   */
  ingest(
    payloads: readonly unknown[],
    catalog: DeploymentCatalog,
  ): ReturnType<typeof ingestPayloads>;
  /**
   * For the controller's status: what was cleaned and dead-lettered since it started, and whether
   * ingestion fails now (since when, why, a full disk).
   */
  status(): ProblemSummary & { ingestion: StreakStatus };
  stop(): Promise<void>;
}

/**
 * The spend ledger as the controller runs it: settings from the environment (README), the ledger
 * opened and migrated, ingestion every second, budgets and spikes every 30 s with alerts to the
 * log and the webhook. The API's `GET /v1/spend/report` answers from `db` with spendReport().
 */
export async function startControllerSpend(
  options: ControllerSpendOptions,
): Promise<ControllerSpend> {
  const settings = spendSettings(options.env, options.stateDir);
  const db = await openLedger(settings.ledger);
  const deadLetters = new DeadLetterBox({
    dir: settings.deadLetterDir,
    log: options.log,
    ...(options.onProblem && { onCount: options.onProblem }),
  });
  let policies: PolicySet | undefined;
  let catalog: DeploymentCatalog = deploymentCatalog(undefined);
  /** The applied config wires the content callback (the policies asked for content). */
  let contentWired = false;
  const refresh = async (): Promise<void> => {
    try {
      policies = (await buildFromDir(options.policiesDir)).set;
    } catch (error) {
      options.log.warn({ error: describeError(error) }, 'policies unreadable; budgets unchanged');
    }
    const config = await readGeneratedConfig(options.configFile);
    if (config) {
      catalog = deploymentCatalog(config);
      contentWired = wiresContent(config);
    }
  };
  // A new config (every apply writes one) means new deployments and maybe spend.keep_content
  // turned on or off: re-read both before the next ingestion run, not only at the budget check.
  let configSeen = '';
  const configVersion = async (): Promise<string> => {
    const info = await stat(options.configFile).catch(() => undefined);
    return info ? `${info.mtimeMs}:${info.size}` : 'none';
  };
  const refreshOnNewConfig = async (): Promise<void> => {
    const version = await configVersion();
    if (version === configSeen) return;
    configSeen = version;
    await refresh();
  };
  configSeen = await configVersion();
  await refresh();
  const service = startSpendService({
    db,
    spoolDir: settings.spoolDir,
    catalog: (id) => catalog(id),
    policies: () => policies,
    beforeIngest: refreshOnNewConfig,
    beforeCheck: refresh,
    keepContent: () => contentWired,
    ...(settings.webhook && { sink: webhookSink(settings.webhook) }),
    log: options.log,
    retentionDays: settings.retentionDays,
    spoolFinishedAfterMs: settings.spoolFinishedAfterMs,
    deadLetters,
  });
  const backfiller = new SpendBackfiller({
    db,
    source: () => {
      const { url, masterKey } = options.litellm();
      const at = settings.backfill.url ?? url;
      if (!at)
        throw new BackfillRequestError(
          'no LiteLLM to backfill from — set MODELCENTER_BACKFILL_URL to the LiteLLM whose database holds the spend logs',
        );
      return new LiteLLMAdminClient(at, masterKey, 60_000);
    },
    catalog: () => catalog,
    settings: settings.backfill,
    deadLetters,
    beforeRun: () => service.ingester.runOnce(),
    log: options.log,
  });
  options.log.info(
    {
      ledger: settings.ledger.url ? 'postgres' : settings.ledger.dataDir,
      spool: settings.spoolDir,
    },
    'spend ledger ingesting',
  );
  return {
    db,
    service,
    backfiller,
    keepsContent: () => contentWired,
    deadLetters,
    ingest: (payloads, ingestCatalog) =>
      ingestPayloads(db, payloads, ingestCatalog, contentWired, deadLetters),
    // A failing ingestion (a full disk) shows here, not only once in the log.
    status: () => ({ ...deadLetters.summary(), ingestion: service.ingester.failures.status() }),
    async stop() {
      await service.stop();
      // What LiteLLM wrote while it shut down.
      await service.ingester
        .runOnce()
        .catch((error: unknown) =>
          options.log.warn({ error: describeError(error) }, 'last spool ingestion failed'),
        );
      await db.close();
    },
  };
}
