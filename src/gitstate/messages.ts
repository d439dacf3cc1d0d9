/** Commit messages for generated configs: pure functions over the plan (STYLE §12). */

export const GENERATED_TRAILER = 'Generated-By: modelcenter';

export interface ConfigChange {
  added: string[];
  removed: string[];
}

export function applyCommitMessage(input: {
  policyCommit: string | undefined;
  policiesDirty: boolean;
  configSha256: string;
  change: ConfigChange;
}): string {
  const source = input.policyCommit
    ? `policies@${input.policyCommit.slice(0, 12)}`
    : 'policies (no commit yet)';
  const lines = [
    `modelcenter: render config from ${source}${input.policiesDirty ? ' + uncommitted edits' : ''}`,
    '',
  ];
  lines.push(summarize(input.change), '');
  lines.push(
    `Policy-Commit: ${input.policyCommit ?? 'none'}${input.policiesDirty ? ' (dirty)' : ''}`,
  );
  lines.push(`Config-Sha256: ${input.configSha256}`);
  lines.push(GENERATED_TRAILER);
  return lines.join('\n');
}

export function rollbackCommitMessage(input: {
  target: string;
  reason: string;
  configSha256: string;
}): string {
  return [
    `modelcenter: roll back config to ${input.target.slice(0, 12)}`,
    '',
    input.reason,
    '',
    `Rollback-To: ${input.target}`,
    `Config-Sha256: ${input.configSha256}`,
    GENERATED_TRAILER,
  ].join('\n');
}

function summarize(change: ConfigChange): string {
  if (change.added.length === 0 && change.removed.length === 0)
    return 'Deployments unchanged; settings changed.';
  const parts: string[] = [];
  if (change.added.length) parts.push(`added ${change.added.join(', ')}`);
  if (change.removed.length) parts.push(`removed ${change.removed.join(', ')}`);
  return `Deployments ${parts.join('; ')}.`;
}
