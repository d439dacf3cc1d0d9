import { LiteLLMClient, type Advice, type DeploymentRef } from './client.js';
import {
  deleteAnswerSchema,
  modelInfoSchema,
  modelRowSchema,
  spendLogsPageSchema,
  type ModelRow,
  type SpendLogsPage,
} from './schema.js';

/** A deployment as LiteLLM's `/model/new` takes it (its pydantic `Deployment`). */
export interface AdminDeployment {
  model_name: string;
  litellm_params: { model: string; [param: string]: unknown };
  model_info: { id: string; [field: string]: unknown };
}

/** A deployment an instance serves, with the marks Model Center left on the ones it wrote. */
export interface ServedDeployment extends DeploymentRef {
  /** `model_info.modelcenter_sha256`: the content hash of what Model Center wrote. */
  sha256?: string;
  /** `model_info.modelcenter_fields`: the fields Model Center wrote. */
  fields?: string[];
}

/**
 * LiteLLM's database-mode model management (litellm-facts §2.2), on top of the read-only client.
 * Needs `database_url` and `store_model_in_db: true` on the instance.
 *
 * Updates use `PATCH /model/{id}/update`: in 1.104.0 `POST /model/update` writes litellm_params and
 * model_name but never model_info, so the content hash kept there would never move. PATCH merges
 * both (and cannot remove a field: see the planner's `replace`).
 */
export class LiteLLMAdminClient extends LiteLLMClient {
  /** Every deployment the instance serves, YAML- and database-owned alike (`/v1/model/info`). */
  async inventory(): Promise<ServedDeployment[]> {
    const info = await this.request('GET', '/v1/model/info', modelInfoSchema);
    return info.data.map((d) => ({
      modelName: d.model_name,
      id: d.model_info.id,
      dbModel: d.model_info.db_model === true,
      ...(d.model_info.modelcenter_sha256 !== undefined && {
        sha256: d.model_info.modelcenter_sha256,
      }),
      ...(d.model_info.modelcenter_fields !== undefined && {
        fields: d.model_info.modelcenter_fields,
      }),
    }));
  }

  /** `POST /model/new`. Credentials go as `os.environ/NAME`; each instance resolves them itself. */
  async createModel(deployment: AdminDeployment): Promise<ModelRow> {
    return this.request(
      'POST',
      '/model/new',
      modelRowSchema,
      deployment,
      adminAdvice(deployment.model_info.id),
    );
  }

  /** `PATCH /model/{id}/update`: overwrites every field given, keeps the others. */
  async updateModel(deployment: AdminDeployment): Promise<ModelRow> {
    const id = deployment.model_info.id;
    return this.request(
      'PATCH',
      `/model/${encodeURIComponent(id)}/update`,
      modelRowSchema,
      deployment,
      adminAdvice(id),
    );
  }

  /** `POST /model/delete`. */
  async deleteModel(id: string): Promise<void> {
    await this.request('POST', '/model/delete', deleteAnswerSchema, { id }, adminAdvice(id));
  }

  /**
   * One page of `GET /spend/logs/v2`: the SpendLogs rows whose startTime is in [from, to] (both
   * ends included, whole UTC seconds), oldest first. LiteLLM counts at most 10,000 rows per query
   * and pages no further (litellm-facts §2.5): the caller keeps windows under that.
   */
  async spendLogs(from: Date, to: Date, page: number, pageSize: number): Promise<SpendLogsPage> {
    return this.request('GET', '/spend/logs/v2', spendLogsPageSchema, undefined, spendLogsAdvice, {
      start_date: spendLogsTime(from),
      end_date: spendLogsTime(to),
      page,
      page_size: pageSize,
      sort_by: 'startTime',
      sort_order: 'asc',
    });
  }
}

/** `YYYY-MM-DD HH:MM:SS` in UTC, the one format `/spend/logs/v2` takes with a time of day. */
export function spendLogsTime(at: Date): string {
  return at.toISOString().slice(0, 19).replace('T', ' ');
}

const spendLogsAdvice: Advice = (_status, said) =>
  /not initialized|not connected|no db/i.test(said)
    ? "the spend-log backfill reads LiteLLM's database (database_url); without one, LiteLLM keeps no spend logs and the spool callback is the only source"
    : undefined;

/** LiteLLM's answers on the model routes, as what to do about them. */
function adminAdvice(id: string): Advice {
  return (status, said) => {
    if (/no db connected|db not connected/i.test(said))
      return 'the admin-api strategy needs LiteLLM with a database (database_url) and store_model_in_db: true on every instance; without a database, use the restart or blue-green strategy';
    if (/STORE_MODEL_IN_DB|only supported for DB-stored models/i.test(said))
      return 'set general_settings.store_model_in_db: true (or STORE_MODEL_IN_DB=True) on every instance, or use the restart or blue-green strategy';
    if (/model in config|config-based model/i.test(said))
      return `deployment "${id}" is defined in that instance's own config.yaml, which only a restart changes — remove it from that YAML, or give the policy model another id`;
    if (/not found/i.test(said))
      return `deployment "${id}" is no longer in LiteLLM's database (changed by someone else?) — apply again so Model Center re-reads it`;
    if (/failed to add model to db/i.test(said))
      return `LiteLLM could not store deployment "${id}" (most often a row with this id already exists) — see its log, then apply again so Model Center re-reads the database`;
    if (status === 422)
      return `LiteLLM refused the request body for deployment "${id}" — is this the pinned LiteLLM version?`;
    return undefined;
  };
}
