import type { ApplyReport } from '../apply/controller.js';
import type { PolicyRepo } from '../gitstate/policy-repo.js';
import { CREDENTIAL_REFERENCE, NAME_PATTERN, type Model, type Provider } from '../policy/schema.js';
import { selectModels } from '../policy/select.js';
import { buildFromTexts } from '../compile/build.js';
import { InputError } from '../shared/errors.js';
import { PolicyEditor, readPolicyTexts } from './policy-edit.js';
import type { DiscoveredModel, PoolStore } from './pool.js';
import { carryOut, planProposal, ProposalInvalidError, type ProposalResult } from './proposal.js';

/** Puts a literal credential into the secret store under `reference` (`secret:<provider>`). */
export type StoreSecret = (reference: string, value: string) => Promise<void>;

export interface ExpansionDeps {
  policiesDir: string;
  repo: () => Promise<PolicyRepo>;
  /** One apply through the apply subsystem's queue; `before` (the commit) runs inside its lock. */
  apply: (before: () => Promise<void>) => Promise<ApplyReport>;
  pool: PoolStore;
  /** Absent until a secret store is wired in: literal credentials are then refused. */
  storeSecret?: StoreSecret;
}

export interface MutationOptions {
  /** The API token's name: the commit's author. */
  author: string;
  reason?: string;
  dryRun?: boolean;
}

/**
 * Self-expansion: providers added, changed and removed, discovered models promoted into the
 * catalog (and a profile), models disabled and enabled — each one policy commit through the
 * normal apply path (src/providers/proposal.ts). One change at a time.
 */
export class SelfExpansion {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: ExpansionDeps) {}

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async run(
    what: string,
    options: MutationOptions,
    edit: (
      editor: PolicyEditor,
      beforeWrite: (step: () => Promise<void>) => void,
    ) => Promise<void> | void,
  ): Promise<ProposalResult> {
    return this.serial(async () => {
      const policies = await readPolicyTexts(this.deps.policiesDir);
      const editor = new PolicyEditor(policies);
      const steps: (() => Promise<void>)[] = [];
      await edit(editor, (step) => steps.push(step));
      return carryOut(what, policies, editor, {
        repo: await this.deps.repo(),
        apply: this.deps.apply,
        author: { name: options.author },
        reason: options.reason,
        dryRun: options.dryRun === true,
        beforeWrite: async () => {
          for (const step of steps) await step();
        },
      });
    });
  }

  addProvider(
    name: string,
    provider: Record<string, unknown>,
    options: MutationOptions,
  ): Promise<ProposalResult> {
    checkName(name, 'name');
    return this.run(`providers: add ${name}`, options, (editor, beforeWrite) => {
      if (editor.definedIn('providers', name)) {
        throw new InputError(
          `provider "${name}" exists already (${editor.definedIn('providers', name)}) — change it with PUT /v1/providers/${name}`,
          { status: 409, code: 'exists', field: 'name' },
        );
      }
      editor.set('providers', name, this.credentialReferenced(name, provider, beforeWrite));
      refuseNewCommands(name, undefined, editor);
    });
  }

  updateProvider(
    name: string,
    provider: Record<string, unknown>,
    options: MutationOptions,
  ): Promise<ProposalResult> {
    return this.run(`providers: change ${name}`, options, (editor, beforeWrite) => {
      if (!editor.definedIn('providers', name)) throw notFound('provider', name);
      const before = buildFromTexts(editor.proposedTexts()).set.providers.get(name)?.value;
      editor.set('providers', name, this.credentialReferenced(name, provider, beforeWrite));
      refuseNewCommands(name, before, editor);
    });
  }

  deleteProvider(name: string, options: MutationOptions): Promise<ProposalResult> {
    return this.run(`providers: remove ${name}`, options, (editor) => {
      if (!editor.delete('providers', name)) throw notFound('provider', name);
    });
  }

  /**
   * Discovered models (pool ids) into the catalog, and into `profile` when given: a profile with
   * a `models:` list gets them appended; one that selects by requirements must select them.
   */
  promote(ids: readonly string[], profile: string | undefined, options: MutationOptions) {
    return this.run(
      `models: promote ${ids.join(', ')}${profile ? ` into profile ${profile}` : ''}`,
      options,
      async (editor) => {
        const pool = await this.deps.pool.read();
        const policies = buildFromTexts(editor.proposedTexts()).set;
        const names: string[] = [];
        for (const id of ids) {
          // Own entries only: an id such as `__proto__` or `constructor` is not in the pool.
          const found = Object.hasOwn(pool.models, id) ? pool.models[id] : undefined;
          if (!found) {
            throw new InputError(
              `no discovered model "${id}" — sync its provider first (POST /v1/providers/{name}/sync); ids look like <provider>/<upstream model>`,
              { status: 404, field: 'ids' },
            );
          }
          const curated = [...policies.models.values()].find(
            (m) =>
              m.value.provider === found.provider &&
              (m.value.upstream ?? m.name) === found.upstream,
          );
          if (curated) {
            names.push(curated.name);
            continue;
          }
          const name = modelName(found, (n) => policies.models.has(n) || names.includes(n));
          editor.set('models', name, catalogEntry(name, found));
          names.push(name);
        }
        if (!profile) return;
        if (!editor.definedIn('profiles', profile)) throw notFound('profile', profile);
        const after = buildFromTexts(editor.proposedTexts()).set.profiles.get(profile);
        if (after?.value.models) {
          for (const name of names) editor.appendToList('profiles', profile, 'models', name);
          return;
        }
        const set = buildFromTexts(editor.proposedTexts()).set;
        const selected = new Set(selectModels(set, after!.value).models.map((m) => m.name));
        const left = names.filter((n) => !selected.has(n));
        if (left.length > 0) {
          const { dropped } = selectModels(set, after!.value);
          throw new InputError(
            `profile "${profile}" selects by its requirements and would not route to ${left.join(', ')} (${dropped.map((d) => `${d.count} ${d.reason}`).join('; ')}) — give the profile a models: list, or promote a model that meets its requirements`,
            { status: 422, code: 'not_selected', field: 'profile' },
          );
        }
      },
    );
  }

  setEnabled(id: string, enabled: boolean, options: MutationOptions): Promise<ProposalResult> {
    return this.run(`models: ${enabled ? 'enable' : 'disable'} ${id}`, options, (editor) => {
      if (!editor.setField('models', id, 'enabled', enabled ? undefined : false)) {
        throw new InputError(
          `no model "${id}" in the catalog — only curated models are enabled or disabled (promote a discovered one first)`,
          { status: 404, field: 'id' },
        );
      }
    });
  }

  /**
   * Literal credentials go to the secret store (when there is one), never into the repository:
   * the policy gets `secret:<provider>`, and the value is stored once the change is valid, just
   * before it is committed (a refused or dry-run change stores nothing).
   */
  private credentialReferenced(
    name: string,
    provider: Record<string, unknown>,
    beforeWrite: (step: () => Promise<void>) => void,
  ): Record<string, unknown> {
    const credential = provider.credential;
    if (typeof credential !== 'string' || CREDENTIAL_REFERENCE.test(credential)) return provider;
    if (/^(env|secret):/.test(credential)) return provider; // malformed: validation says so
    const store = this.deps.storeSecret;
    if (!store) {
      throw new InputError(
        'a literal credential is not accepted: no secret store is configured here. Put the value in the controller\'s environment and send credential: "env:VARIABLE_NAME" (or "secret:name" for a value already in the secret store)',
        { status: 422, code: 'literal_credential', field: 'provider.credential' },
      );
    }
    const reference = `secret:${name}`;
    beforeWrite(() => store(reference, credential));
    return { ...provider, credential: reference };
  }
}

/**
 * The commands of a provider's `rotation` (`issue`, `retire`) run on the controller's host with
 * its environment: through the API they would give every admin token a shell there, and with it
 * the controller's own secrets. So the API keeps the commands a definition has (a PUT may restate
 * them) and refuses new or changed ones: those are written in a policy file, by someone with
 * access to the repository. Read from the proposed policies, so no spelling (a merge key) slips by.
 */
function refuseNewCommands(name: string, before: Provider | undefined, editor: PolicyEditor): void {
  const after = buildFromTexts(editor.proposedTexts()).set.providers.get(name)?.value;
  for (const hook of ['issue', 'retire'] as const) {
    const now = after?.rotation?.[hook];
    if (now === undefined) continue;
    if (JSON.stringify(now) === JSON.stringify(before?.rotation?.[hook])) continue;
    throw new InputError(
      `provider "${name}": rotation.${hook} is a command the controller would run on its host — commands are not accepted through the API; write it in a policy file and commit it`,
      { status: 422, code: 'command_not_allowed', field: `provider.rotation.${hook}` },
    );
  }
}

function notFound(what: string, name: string): InputError {
  return new InputError(`no ${what} "${name}" in the policies`, { status: 404, field: 'name' });
}

function checkName(name: string, field: string): void {
  if (!NAME_PATTERN.test(name)) {
    throw new InputError(
      `"${name}" is not a valid name: use lowercase letters, digits, ".", "_" or "-", starting with a letter or digit`,
      { status: 422, field },
    );
  }
}

/** A catalog name for a discovered model: its upstream id made a name, or prefixed by its provider. */
export function modelName(model: DiscoveredModel, taken: (name: string) => boolean): string {
  const base = model.upstream
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .replace(/-+$/, '')
    .slice(0, 80);
  const candidates = [base, `${model.provider}-${base}`];
  for (const candidate of candidates) if (candidate && !taken(candidate)) return candidate;
  for (let n = 2; ; n++) if (!taken(`${base}-${n}`)) return `${base}-${n}`;
}

/** The catalog entry a promotion writes: what the pool knows, nothing invented. */
export function catalogEntry(name: string, model: DiscoveredModel): Model {
  const maxOutput =
    model.maxOutput && (!model.contextWindow || model.maxOutput <= model.contextWindow)
      ? model.maxOutput
      : undefined;
  return {
    provider: model.provider,
    ...(model.upstream !== name && { upstream: model.upstream }),
    capabilities: model.capabilities.length > 0 ? model.capabilities : ['chat'],
    ...(model.contextWindow && { context_window: model.contextWindow }),
    ...(maxOutput && { max_output: maxOutput }),
    ...(model.pricing && { pricing: model.pricing }),
  };
}

export { ProposalInvalidError, planProposal };
