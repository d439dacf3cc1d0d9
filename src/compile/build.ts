import { createHash } from 'node:crypto';
import { parsePolicies, readPolicyDir, type LoadedText } from '../policy/load.js';
import type { PolicySet } from '../policy/policy-set.js';
import { splitFindings, type Findings, type Problem } from '../policy/problems.js';
import { runRules } from '../policy/rules.js';
import { problemAt } from '../policy/source.js';
import { compile } from './compile.js';
import type { LiteLLMConfig } from './litellm-config.js';
import { render } from './render.js';

export interface Build {
  findings: Findings;
  set: PolicySet;
  /** Present only when there are no errors: an invalid policy never produces a config. */
  config?: LiteLLMConfig;
  yaml?: string;
}

/** parse → schema → merge → rules → compile → render. Pure over the file texts. */
export function buildFromTexts(texts: readonly LoadedText[]): Build {
  const { set, problems } = parsePolicies(texts);
  if (problems.some((p) => p.severity === 'error'))
    return { findings: splitFindings(problems), set };
  problems.push(...runRules(set));
  if (problems.some((p) => p.severity === 'error'))
    return { findings: splitFindings(problems), set };
  const config = compile(set);
  problems.push(...duplicateDeploymentIds(set, config));
  const findings = splitFindings(problems);
  if (findings.errors.length > 0) return { findings, set };
  return { findings, set, config, yaml: render(config) };
}

export async function buildFromDir(dir: string): Promise<Build> {
  const texts = await readPolicyDir(dir);
  // The build is a pure function of the texts: the service asks for it on every status, plan,
  // report and budget check, and the files rarely change in between. One entry is enough.
  const key = createHash('sha256');
  for (const { name, text, problems } of texts) {
    key.update(`${name}\0${text}\0${JSON.stringify(problems ?? [])}\0`);
  }
  const digest = key.digest('hex');
  if (lastBuild?.digest !== digest) lastBuild = { digest, build: buildFromTexts(texts) };
  return lastBuild.build;
}

let lastBuild: { digest: string; build: Build } | undefined;

/** LiteLLM keys health, spend and verification on deployment ids, so each must be unique. */
function duplicateDeploymentIds(set: PolicySet, config: LiteLLMConfig): Problem[] {
  const seen = new Map<string, string>();
  const problems: Problem[] = [];
  for (const deployment of config.model_list) {
    const { id, modelcenter_profile: profile, modelcenter_model: model } = deployment.model_info;
    const origin = profile ? `profile "${profile}"` : `model "${model}"`;
    const earlier = seen.get(id);
    if (earlier !== undefined) {
      const entry = (profile ? set.profiles.get(profile) : set.models.get(model))!;
      problems.push(
        problemAt(
          entry.source,
          entry.path,
          `deployment id "${id}" from ${origin} is also produced by ${earlier}`,
          'rename the model or profile so each deployment id is unique',
        ),
      );
      continue;
    }
    seen.set(id, origin);
  }
  return problems;
}
