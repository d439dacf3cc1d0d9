import { createHash } from 'node:crypto';
import type { AdminDeployment, ServedDeployment } from '../litellm/admin-client.js';

/** Where Model Center marks the deployments it wrote (LiteLLM keeps extra model_info keys). */
export const SHA_FIELD = 'modelcenter_sha256';
export const FIELDS_FIELD = 'modelcenter_fields';

/**
 * What the admin-api strategy writes, in the order it writes it: new deployments first and removals
 * last, so a model group is never left empty while one deployment replaces another.
 */
export interface ModelChangePlan {
  /** `POST /model/new`. */
  create: AdminDeployment[];
  /** `PATCH /model/{id}/update`: every field Model Center wrote before is still present. */
  update: AdminDeployment[];
  /**
   * `POST /model/delete`, then `POST /model/new` with the same id, when PATCH cannot do it: a field
   * Model Center wrote before must disappear (PATCH merges), the id holds a `/` (PATCH takes the id
   * in its path, which LiteLLM's router splits on `/`, even encoded), or the row was not written by
   * Model Center and its fields are unknown.
   */
  replace: AdminDeployment[];
  /** `POST /model/delete`. */
  delete: string[];
  unchanged: string[];
}

export type PlanOutcome = { ok: true; plan: ModelChangePlan } | { ok: false; problems: string[] };

export interface PlanInput {
  /** The rendered config's model_list. */
  desired: readonly AdminDeployment[];
  /** The database-owned deployments (`db_model: true`), as the writing instance serves them. */
  database: readonly ServedDeployment[];
  /** Deployments an instance loaded from its own config.yaml, with that instance's URL. */
  yamlOwned: readonly { id: string; instance: string }[];
}

/**
 * Desired deployments against the database → {create, update, replace, delete}. Pure.
 * Each deployment is owned by one plane: a desired id that some instance defines in its YAML, or a
 * database row Model Center did not write and the policies do not name, is a problem to fix by hand.
 */
export function planModelChanges(input: PlanInput): PlanOutcome {
  const problems: string[] = [];
  const yaml = new Map<string, string[]>();
  for (const { id, instance } of input.yamlOwned) yaml.set(id, [...(yaml.get(id) ?? []), instance]);
  const live = new Map(input.database.map((d) => [d.id, d]));
  const plan: ModelChangePlan = { create: [], update: [], replace: [], delete: [], unchanged: [] };
  const wanted = new Set<string>();

  for (const desired of [...input.desired].sort(byId)) {
    const id = desired.model_info.id;
    if (wanted.has(id)) {
      problems.push(
        `deployment id "${id}" appears twice in the rendered config — render it again from valid policies`,
      );
      continue;
    }
    wanted.add(id);
    const owners = yaml.get(id);
    if (owners) {
      problems.push(
        `deployment id "${id}" is defined in the config.yaml of ${[...new Set(owners)].join(', ')}; Model Center never writes a YAML-owned deployment through the admin API — remove it from that config.yaml (and restart that instance), or give the policy model another id`,
      );
      continue;
    }
    const next = marked(desired);
    const current = live.get(id);
    if (!current) plan.create.push(next);
    else if (current.sha256 === next.model_info[SHA_FIELD]) plan.unchanged.push(id);
    else if (patchable(id) && current.fields && isSubset(current.fields, fieldsOf(desired)))
      plan.update.push(next);
    else plan.replace.push(next);
  }

  for (const current of [...live.values()].sort((a, b) => a.id.localeCompare(b.id))) {
    if (wanted.has(current.id)) continue;
    if (current.sha256 === undefined) {
      problems.push(
        `deployment "${current.id}" is in LiteLLM's database but Model Center did not write it and the policies do not name it — add it to the policies, or delete it in LiteLLM (POST /model/delete or its UI); each deployment is owned by one plane`,
      );
      continue;
    }
    plan.delete.push(current.id);
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, plan };
}

/** The ids a plan writes, for reports. */
export function describePlan(plan: ModelChangePlan): string {
  const part = (verb: string, ids: string[]) =>
    ids.length > 0
      ? [`${verb} ${ids.length} (${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', …' : ''})`]
      : [];
  const ids = (list: AdminDeployment[]) => list.map((d) => d.model_info.id);
  const parts = [
    ...part('create', ids(plan.create)),
    ...part('update', ids(plan.update)),
    ...part('replace', ids(plan.replace)),
    ...part('delete', plan.delete),
  ];
  return parts.length > 0 ? parts.join(', ') : 'no model changes';
}

/** The deployment as written: model_info carries its content hash and the fields written. */
export function marked(deployment: AdminDeployment): AdminDeployment {
  const plain = unmarked(deployment);
  return {
    ...plain,
    model_info: {
      ...plain.model_info,
      [SHA_FIELD]: contentHash(plain),
      [FIELDS_FIELD]: fieldsOf(plain),
    },
  };
}

/**
 * SHA-256 of the deployment's canonical JSON (sorted keys). LiteLLM returns litellm_params with
 * secrets masked and encrypted, and model_info merged with its cost map, so a served deployment
 * cannot be compared with the rendered one: the hash written beside it can.
 */
export function contentHash(deployment: AdminDeployment): string {
  return createHash('sha256')
    .update(canonicalJson(unmarked(deployment)))
    .digest('hex');
}

/** `litellm_params.<key>` and `model_info.<key>` for every top-level key (PATCH merges one level). */
export function fieldsOf(deployment: AdminDeployment): string[] {
  const plain = unmarked(deployment);
  return [
    ...Object.keys(plain.litellm_params).map((k) => `litellm_params.${k}`),
    ...Object.keys(plain.model_info).map((k) => `model_info.${k}`),
  ].sort();
}

function unmarked(deployment: AdminDeployment): AdminDeployment {
  const info = { ...deployment.model_info };
  delete info[SHA_FIELD];
  delete info[FIELDS_FIELD];
  return {
    model_name: deployment.model_name,
    litellm_params: deployment.litellm_params,
    model_info: info,
  };
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** LiteLLM routes on the decoded path, so `PATCH /model/a%2Fb/update` is a 404. */
function patchable(id: string): boolean {
  return !id.includes('/');
}

function isSubset(small: readonly string[], big: readonly string[]): boolean {
  const set = new Set(big);
  return small.every((x) => set.has(x));
}

function byId(a: AdminDeployment, b: AdminDeployment): number {
  return a.model_info.id.localeCompare(b.model_info.id);
}
