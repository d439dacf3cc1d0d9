import type {
  Budget,
  Cache,
  Caller,
  Goal,
  LiteLLMPassthrough,
  MasterKey,
  Model,
  Profile,
  Provider,
  Routing,
  Spend,
} from './schema.js';
import type { Path, SourceFile } from './source.js';

/** A value from a policy file together with where it was written. */
export interface Entry<T> {
  name: string;
  value: T;
  source: SourceFile;
  path: Path;
}

/** All policy files merged: what compile and rules work on. Maps iterate in name order. */
export interface PolicySet {
  providers: Map<string, Entry<Provider>>;
  models: Map<string, Entry<Model>>;
  profiles: Map<string, Entry<Profile>>;
  callers: Map<string, Entry<Caller>>;
  goals: Map<string, Entry<Goal>>;
  budgets: Entry<Budget>[];
  cache?: Entry<Cache>;
  routing?: Entry<Routing>;
  spend?: Entry<Spend>;
  master_key?: Entry<MasterKey>;
  litellm?: Entry<LiteLLMPassthrough>;
  /** Every file read, in name order. */
  files: string[];
}

export function emptyPolicySet(): PolicySet {
  return {
    providers: new Map(),
    models: new Map(),
    profiles: new Map(),
    callers: new Map(),
    goals: new Map(),
    budgets: [],
    files: [],
  };
}

/** True when the policies ask the ledger to keep prompts and responses (`spend.keep_content`). */
export function keepsContent(set: Pick<PolicySet, 'spend'> | undefined): boolean {
  return set?.spend?.value.keep_content === true;
}
