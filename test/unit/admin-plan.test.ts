import { describe, expect, it } from 'vitest';
import type { AdminDeployment, ServedDeployment } from '../../src/litellm/admin-client.js';
import {
  contentHash,
  describePlan,
  FIELDS_FIELD,
  marked,
  planModelChanges,
  SHA_FIELD,
  type ModelChangePlan,
} from '../../src/reload/admin-plan.js';

function deployment(id: string, params: Record<string, unknown> = {}): AdminDeployment {
  return {
    model_name: id,
    litellm_params: { model: `openai/${id}`, api_key: 'os.environ/OPENAI_API_KEY', ...params },
    model_info: { id, mode: 'chat' },
  };
}

/** A database row as the writing instance serves it, written by Model Center from `d`. */
function written(d: AdminDeployment): ServedDeployment {
  const info = marked(d).model_info;
  return {
    id: d.model_info.id,
    modelName: d.model_name,
    dbModel: true,
    sha256: info[SHA_FIELD] as string,
    fields: info[FIELDS_FIELD] as string[],
  };
}

const ids = (plan: ModelChangePlan) => ({
  create: plan.create.map((d) => d.model_info.id),
  update: plan.update.map((d) => d.model_info.id),
  replace: plan.replace.map((d) => d.model_info.id),
  delete: plan.delete,
  unchanged: plan.unchanged,
});
const none = { create: [], update: [], replace: [], delete: [], unchanged: [] };

describe('planModelChanges: desired deployments against the database', () => {
  const a = deployment('a');
  const b = deployment('b');
  const table: {
    name: string;
    desired: AdminDeployment[];
    database: ServedDeployment[];
    expected: Partial<ReturnType<typeof ids>>;
  }[] = [
    {
      name: 'empty database: every deployment is created',
      desired: [b, a],
      database: [],
      expected: { create: ['a', 'b'] },
    },
    {
      name: 'same content: nothing is written',
      desired: [a],
      database: [written(a)],
      expected: { unchanged: ['a'] },
    },
    {
      name: 'a changed value is a PATCH',
      desired: [deployment('a', { timeout: 30 })],
      database: [written(deployment('a', { timeout: 10 }))],
      expected: { update: ['a'] },
    },
    {
      name: 'a new field is a PATCH',
      desired: [deployment('a', { temperature: 0.2 })],
      database: [written(a)],
      expected: { update: ['a'] },
    },
    {
      name: 'a field that must disappear is a replace (PATCH merges and cannot remove it)',
      desired: [a],
      database: [written(deployment('a', { temperature: 0.2 }))],
      expected: { replace: ['a'] },
    },
    {
      name: 'an id with a slash is a replace: PATCH takes the id in its path and LiteLLM splits it',
      desired: [deployment('fast/a', { timeout: 30 })],
      database: [written(deployment('fast/a', { timeout: 10 }))],
      expected: { replace: ['fast/a'] },
    },
    {
      name: 'a row Model Center did not write but the policies name is adopted by replacing it',
      desired: [a],
      database: [{ id: 'a', modelName: 'a', dbModel: true }],
      expected: { replace: ['a'] },
    },
    {
      name: 'a row Model Center wrote and the policies no longer name is deleted',
      desired: [a],
      database: [written(a), written(b)],
      expected: { unchanged: ['a'], delete: ['b'] },
    },
  ];
  it.each(table)('$name', ({ desired, database, expected }) => {
    const outcome = planModelChanges({ desired, database, yamlOwned: [] });
    expect(outcome.ok).toBe(true);
    if (outcome.ok) expect(ids(outcome.plan)).toEqual({ ...none, ...expected });
  });

  it('a desired id that an instance defines in its own YAML is refused, naming the id, the instances and the fix', () => {
    const outcome = planModelChanges({
      desired: [a, b],
      database: [],
      yamlOwned: [
        { id: 'b', instance: 'http://one' },
        { id: 'b', instance: 'http://two' },
        { id: 'c', instance: 'http://one' },
      ],
    });
    expect(outcome).toEqual({
      ok: false,
      problems: [
        expect.stringMatching(
          /^deployment id "b" is defined in the config.yaml of http:\/\/one, http:\/\/two; .*give the policy model another id/,
        ),
      ],
    });
  });

  it('a database row nobody in the policies names and Model Center did not write is refused, not deleted', () => {
    const outcome = planModelChanges({
      desired: [a],
      database: [written(a), { id: 'hand-made', modelName: 'x', dbModel: true }],
      yamlOwned: [],
    });
    expect(outcome.ok).toBe(false);
    if (!outcome.ok)
      expect(outcome.problems[0]).toMatch(
        /"hand-made" is in LiteLLM's database but Model Center did not write it/,
      );
  });

  it('writes credentials as os.environ references and marks each deployment with its hash and fields', () => {
    const outcome = planModelChanges({ desired: [a], database: [], yamlOwned: [] });
    expect(outcome.ok).toBe(true);
    if (!outcome.ok) return;
    const sent = outcome.plan.create[0]!;
    expect(sent.litellm_params.api_key).toBe('os.environ/OPENAI_API_KEY');
    expect(sent.model_info[SHA_FIELD]).toBe(contentHash(a));
    expect(sent.model_info[FIELDS_FIELD]).toEqual([
      'litellm_params.api_key',
      'litellm_params.model',
      'model_info.id',
      'model_info.mode',
    ]);
    expect(describePlan(outcome.plan)).toBe('create 1 (a)');
  });

  it('the content hash ignores key order and its own marks, and changes with any value', () => {
    const reordered: AdminDeployment = {
      model_info: { mode: 'chat', id: 'a' },
      litellm_params: { api_key: 'os.environ/OPENAI_API_KEY', model: 'openai/a' },
      model_name: 'a',
    };
    expect(contentHash(reordered)).toBe(contentHash(a));
    expect(contentHash(marked(a))).toBe(contentHash(a));
    expect(contentHash(deployment('a', { timeout: 1 }))).not.toBe(contentHash(a));
    expect(contentHash({ ...a, model_name: 'other' })).not.toBe(contentHash(a));
  });
});
