/**
 * How large and how deep policy files may be. The limits sit far above any real catalog (the
 * 10,000-deployment benchmark is a 0.5 MB file of about 60,000 nodes, nested 5 deep) and far below
 * what would stall the controller: YAML parses at roughly 2 MB/s here, and an alias costs nothing to
 * write but is copied wherever it is used.
 */
export const POLICY_LIMITS = {
  /** Characters in one policy file. */
  fileChars: 4 * 1024 * 1024,
  /** Nodes (scalars, mappings, lists) in one file once every alias is expanded. */
  expandedNodes: 1_000_000,
  /** Characters of scalar text in one file once every alias is expanded. */
  expandedChars: 16 * 1024 * 1024,
  /** Levels of nesting, counting what aliases bring in. Policies need about 6. */
  depth: 64,
} as const;

/** Characters in the rendered LiteLLM config.yaml (10,000 deployments render to about 4.5 MB). */
export const MAX_RENDERED_CHARS = 32 * 1024 * 1024;

/**
 * Deployments one config may hold, counted before any is built: a profile copies every model it
 * selects, so a 221 KB file (2,000 models, 500 catch-all profiles) asked for a million deployments
 * and took 1.3 GB and half a minute to be refused by the rendered-size limit. At about 450
 * characters each, this many render past MAX_RENDERED_CHARS anyway.
 */
export const MAX_DEPLOYMENTS = 100_000;

/** `4718592` → `4.5 MB`. */
export function megabytes(chars: number): string {
  return `${(chars / (1024 * 1024)).toFixed(1)} MB`;
}
