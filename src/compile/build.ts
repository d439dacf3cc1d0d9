import { createHash } from 'node:crypto';
import { committedPolicyFiles } from '../gitstate/git-state.js';
import {
  decodePolicyFile,
  displayName,
  parsePolicies,
  readPolicyDir,
  type LoadedText,
} from '../policy/load.js';
import { MAX_DEPLOYMENTS, MAX_RENDERED_CHARS, megabytes } from '../policy/limits.js';
import type { Entry, PolicySet } from '../policy/policy-set.js';
import { splitFindings, type Findings, type Problem } from '../policy/problems.js';
import { runRules } from '../policy/rules.js';
import { selectModels } from '../policy/select.js';
import { problemAt, type Path } from '../policy/source.js';
import { compile } from './compile.js';
import type { LiteLLMConfig } from './litellm-config.js';
import { render, RenderLimitError } from './render.js';

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
  const tooMany = deploymentLimitProblem(set);
  if (tooMany) return { findings: splitFindings([...problems, tooMany]), set };
  const config = compile(set);
  problems.push(...duplicateDeploymentIds(set, config));
  const findings = splitFindings(problems);
  if (findings.errors.length > 0) return { findings, set };
  let yaml: string;
  try {
    yaml = render(config, MAX_RENDERED_CHARS);
  } catch (error) {
    if (!(error instanceof RenderLimitError)) throw error;
    return { findings: splitFindings([...problems, renderLimitProblem(set, config)]), set };
  }
  return { findings, set, config, yaml };
}

/**
 * Counts the deployments compile would build (each served model, and each model in each profile)
 * without building them, and blames the profile with the most when they are over MAX_DEPLOYMENTS.
 */
function deploymentLimitProblem(set: PolicySet): Problem | undefined {
  let total = 0;
  for (const { value } of set.models.values()) {
    if (value.expose !== false && value.enabled !== false) total += 1;
  }
  let largest: { name: string; count: number } | undefined;
  for (const [name, entry] of set.profiles) {
    const count = selectModels(set, entry.value).models.length;
    total += count;
    if (!largest || count > largest.count) largest = { name, count };
  }
  if (total <= MAX_DEPLOYMENTS) return undefined;
  const entry = (largest && set.profiles.get(largest.name)) || set.models.values().next().value!;
  return problemAt(
    entry.source,
    entry.path,
    `the policies ask for ${total.toLocaleString('en')} deployments, more than the ${MAX_DEPLOYMENTS.toLocaleString('en')} one LiteLLM config may hold${largest ? `; profile "${largest.name}" alone has ${largest.count.toLocaleString('en')}` : ''}`,
    DEPLOYMENTS_HINT,
  );
}

const DEPLOYMENTS_HINT =
  'serve fewer deployments: limit profiles with max_deployments, models or exclude, set expose: false on models nobody calls by name, or split the catalog across LiteLLM instances';

/**
 * The config would outgrow MAX_RENDERED_CHARS. Blamed on what makes it large: the `litellm:`
 * passthrough, a provider's `params` (copied into each of its deployments), or else the profile
 * with the most deployments (each model in a profile is one more deployment).
 */
function renderLimitProblem(set: PolicySet, config: LiteLLMConfig): Problem {
  const size = `the rendered LiteLLM config would be more than ${megabytes(MAX_RENDERED_CHARS)} (${config.model_list.length.toLocaleString('en')} deployments)`;
  const perProvider = new Map<string, number>();
  const perProfile = new Map<string, number>();
  for (const { model_info: info } of config.model_list) {
    perProvider.set(
      info.modelcenter_provider,
      (perProvider.get(info.modelcenter_provider) ?? 0) + 1,
    );
    if (info.modelcenter_profile) {
      perProfile.set(info.modelcenter_profile, (perProfile.get(info.modelcenter_profile) ?? 0) + 1);
    }
  }
  const candidates: { entry: Entry<unknown>; sub: Path; chars: number; hint: string }[] = [];
  if (set.litellm) {
    candidates.push({
      entry: set.litellm,
      sub: [],
      chars: JSON.stringify(set.litellm.value).length,
      hint: 'shorten the litellm: settings',
    });
  }
  for (const [name, count] of perProvider) {
    const entry = set.providers.get(name);
    if (!entry?.value.params) continue;
    candidates.push({
      entry,
      sub: ['params'],
      chars: JSON.stringify(entry.value.params).length * count,
      hint: `shorten params: they are copied into each of the provider's ${count} deployments`,
    });
  }
  const largest = candidates.sort((a, b) => b.chars - a.chars)[0];
  if (largest && largest.chars > MAX_RENDERED_CHARS / 2) {
    return problemAt(
      largest.entry.source,
      [...largest.entry.path, ...largest.sub],
      size,
      largest.hint,
    );
  }
  const [profile, count] = [...perProfile].sort((a, b) => b[1] - a[1])[0] ?? [];
  const entry =
    (profile !== undefined && set.profiles.get(profile)) || set.models.values().next().value;
  const hint =
    'serve fewer deployments: limit profiles with max_deployments, models or exclude, set expose: false on models nobody calls by name, or split the catalog across LiteLLM instances';
  if (!entry) {
    return {
      severity: 'error',
      file: set.files[0] ?? 'policies',
      line: 1,
      col: 1,
      path: '',
      message: size,
      hint,
    };
  }
  return problemAt(
    entry.source,
    entry.path,
    profile !== undefined ? `${size}; profile "${profile}" alone has ${count}` : size,
    hint,
  );
}

export async function buildFromDir(dir: string): Promise<Build> {
  return buildCached(await readPolicyDir(dir));
}

/**
 * The policies as committed at HEAD of their repository — the desired state; edits not yet
 * committed are not part of it. A directory outside any git repository is read from disk.
 */
export async function buildFromCommitted(dir: string): Promise<Build> {
  const files = await committedPolicyFiles(dir);
  if (!files) return buildFromDir(dir);
  return buildCached(
    files.map(({ file, bytes, refused }): LoadedText => {
      const name = displayName(file, process.cwd());
      if (refused || !bytes) {
        const why = refused ?? {
          message: 'could not be read from git',
          hint: 'check the repository',
        };
        return {
          name,
          text: '',
          problems: [
            {
              severity: 'error',
              file: name,
              line: 1,
              col: 1,
              path: '',
              message: why.message,
              hint: why.hint,
            },
          ],
        };
      }
      return decodePolicyFile(name, bytes);
    }),
  );
}

/**
 * The build is a pure function of the texts: the service asks for it on every status, plan,
 * report and budget check, and the files rarely change in between. One entry is enough.
 */
function buildCached(texts: readonly LoadedText[]): Build {
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
