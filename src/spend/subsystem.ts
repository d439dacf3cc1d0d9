import { HttpError, type Route } from '../api/server.js';
import { buildFromDir } from '../compile/build.js';
import { LiteLLMApiError } from '../litellm/errors.js';
import type { Logger } from '../log/logger.js';
import type { JobRun } from '../scheduler/subsystem.js';
import type { Settings } from '../settings/settings.js';
import type { Subsystem } from '../shared/subsystem.js';
import { BackfillBusyError, BackfillRequestError } from './backfill.js';
import { spendSettings } from './config.js';
import { deploymentCatalog, readGeneratedConfig } from './extract.js';
import { IngestBodyError, parseGenericApiBody } from './ingest.js';
import { ReportQueryError, spendReport } from './report.js';
import { callRecord, UnknownCallError } from './request.js';
import { budgetsReport, budgetsReportSchema } from './budgets-report.js';
import { seriesQuerySchema, spendSeries, spendSeriesSchema, type SeriesQuery } from './series.js';
import {
  backfillQuerySchema,
  callRecordSchema,
  reportQuerySchema,
  type BackfillQuery,
} from './schema.js';
import {
  startControllerSpend,
  type ControllerSpend,
  type ControllerSpendOptions,
} from './service.js';

export interface SpendDeps {
  settings: Pick<Settings, 'stateDir' | 'policies' | 'configFile'>;
  env: NodeJS.ProcessEnv;
  /** The `spend` child logger. */
  log: Logger;
  /** The LiteLLM whose database the backfill reads; asked at every backfill. */
  litellm: () => { url: string | undefined; masterKey: string };
  /** Counts records cleaned or dead-lettered (the metrics). */
  onProblem?: ControllerSpendOptions['onProblem'];
}

export interface SpendSubsystem extends Subsystem<Route, JobRun> {
  /** The ledger (db for spendReport) and its ingestion/budget loop. */
  ledger: ControllerSpend;
  /** Where LiteLLM's spool callback writes and the ingestion reads. */
  spoolDir: string;
}

/**
 * The spend ledger: LiteLLM's spool into the ledger, budgets and alerts, the `/v1/spend/…` routes
 * and the `spend-backfill` job. Started before LiteLLM and stopped after it, so the last ingestion
 * reads what LiteLLM wrote while it shut down.
 */
export async function startSpend(deps: SpendDeps): Promise<SpendSubsystem> {
  const { settings } = deps;
  const spend = await startControllerSpend({
    stateDir: settings.stateDir,
    env: deps.env,
    policiesDir: settings.policies,
    configFile: settings.configFile,
    log: deps.log,
    litellm: deps.litellm,
    ...(deps.onProblem && { onProblem: deps.onProblem }),
  });
  return {
    ledger: spend,
    spoolDir: spendSettings(deps.env, settings.stateDir).spoolDir,
    routes: spendRoutes(spend, settings),
    jobs: {
      // Off unless scheduled (MODELCENTER_SCHEDULE_SPEND_BACKFILL): database mode only.
      'spend-backfill': async () => {
        await spend.backfiller.catchUp(); // it logs what it read
      },
    },
    // What the ledger cleaned or dead-lettered, and where the dead letters are.
    status: () => Promise.resolve({ spend: spend.status() }),
    stop: () => spend.stop(),
  };
}

function spendRoutes(spend: ControllerSpend, settings: SpendDeps['settings']): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/spend/report',
      scope: 'read',
      summary:
        'Spend report: cost, tokens, requests, errors, latency and TTFT percentiles, cache hits, grouped by any of goal, caller, conversation, profile, model, provider, deployment, day, hour',
      query: reportQuerySchema,
      handle: async ({ query }) => {
        const policies = (await buildFromDir(settings.policies)).set;
        try {
          return {
            status: 200,
            body: await spendReport(spend.db, query, { policies }),
          };
        } catch (error) {
          if (error instanceof ReportQueryError) {
            throw new HttpError(400, 'invalid_request', error.message, error.field);
          }
          throw error;
        }
      },
    },
    {
      method: 'GET',
      path: '/v1/spend/series',
      scope: 'read',
      summary:
        'Spend over time: cost and requests per hour or day, one series per goal, caller, profile, model, provider or deployment (every bucket present, largest series first)',
      query: seriesQuerySchema,
      response: spendSeriesSchema,
      // A range it cannot answer is a ReportQueryError: 400 naming the parameter (query.since).
      handle: async ({ query }) => ({
        status: 200,
        body: await spendSeries(spend.db, query as SeriesQuery, new Date()),
      }),
    },
    {
      method: 'GET',
      path: '/v1/spend/budgets',
      scope: 'read',
      summary:
        "Every budget in the policies this period: limit, spend, share used, thresholds and those reached, and the alerts raised (the last 30 days')",
      response: budgetsReportSchema,
      handle: async () => {
        const policies = (await buildFromDir(settings.policies)).set;
        return { status: 200, body: await budgetsReport(spend.db, policies, new Date()) };
      },
    },
    {
      method: 'POST',
      path: '/v1/spend/backfill',
      scope: 'admin',
      summary:
        "Reads LiteLLM's own spend logs (database mode, /spend/logs/v2, in windows under its 10,000-row cap) into the ledger: `since`/`until` for a range, or nothing to continue after the last backfill; requests the ledger has are skipped",
      body: backfillQuerySchema,
      handle: async ({ body }) => {
        try {
          const result = await spend.backfiller.forQuery(body as BackfillQuery);
          return { status: 200, body: result };
        } catch (error) {
          if (error instanceof BackfillBusyError) throw new HttpError(409, 'busy', error.message);
          // LiteLLM answered and refused (without a database it keeps no spend logs): this
          // set-up cannot backfill, a 409; only LiteLLM down or failing is a 502.
          if (error instanceof LiteLLMApiError)
            throw error.status !== undefined && error.status < 500
              ? new HttpError(409, 'backfill_unavailable', error.message)
              : new HttpError(502, 'litellm_failed', error.message);
          if (error instanceof ReportQueryError)
            throw new HttpError(400, 'invalid_request', error.message, error.field);
          if (error instanceof BackfillRequestError)
            throw error.field
              ? new HttpError(400, 'invalid_request', error.message, error.field)
              : new HttpError(409, 'backfill_unavailable', error.message);
          throw error;
        }
      },
    },
    {
      method: 'POST',
      path: '/v1/spend/ingest',
      scope: 'admin',
      summary:
        "LiteLLM's generic_api logger format (json_array, ndjson or single StandardLoggingPayload), for deployments that cannot load the spool callback; deduplicated like the spool",
      rawBody: true,
      maxBodyBytes: 32 * 1024 * 1024, // generic_api batches hundreds of payloads
      handle: async ({ body }) => {
        let payloads: unknown[];
        try {
          payloads = parseGenericApiBody(String(body));
        } catch (error) {
          if (error instanceof IngestBodyError)
            throw new HttpError(400, 'invalid_request', error.message, 'body');
          throw error;
        }
        const catalog = deploymentCatalog(await readGeneratedConfig(settings.configFile));
        return { status: 200, body: await spend.ingest(payloads, catalog) };
      },
    },
    {
      method: 'GET',
      path: '/v1/spend/requests/{callId}',
      scope: 'admin', // prompts and responses are sensitive
      summary:
        'Every attempt of one request (its x-litellm-call-id): time, status, profile, model, provider, tokens, cost, error class, latency; prompt and response when the policies keep content (spend.keep_content)',
      response: callRecordSchema,
      handle: async ({ params }) => {
        try {
          return { status: 200, body: await callRecord(spend.db, params.callId ?? '') };
        } catch (error) {
          if (error instanceof UnknownCallError) {
            throw new HttpError(404, 'not_found', error.message, 'callId');
          }
          throw error;
        }
      },
    },
  ];
}
