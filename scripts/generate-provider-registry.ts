/**
 * Regenerates src/policy/provider-kinds.generated.ts from the installed, pinned LiteLLM:
 *   npx tsx scripts/generate-provider-registry.ts
 * Run it after changing the pin (litellm/requirements.lock); the registry test fails until then.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  GENERATED_FILE,
  renderGeneratedKinds,
  type LiteLLMFacts,
} from '../src/policy/provider-kinds-source.js';

const root = path.resolve(import.meta.dirname, '..');
const facts = JSON.parse(
  execFileSync(
    path.join(root, 'litellm/.venv/bin/python'),
    [path.join(root, 'scripts/litellm-providers.py'), 'facts'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 16 * 1024 * 1024 },
  ),
) as LiteLLMFacts;
writeFileSync(path.join(root, GENERATED_FILE), renderGeneratedKinds(facts));
console.log(
  `${GENERATED_FILE}: ${facts.providers.length} providers from LiteLLM ${facts.litellmVersion} (${facts.excluded.length} left out)`,
);
