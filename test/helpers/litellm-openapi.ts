import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startLiteLLM } from '../../src/litellm/process.js';
import type { OpenApiDocument } from './openapi-contract.js';

/** The OpenAPI document the real pinned LiteLLM serves (it starts one, reads, stops it). */
export async function fetchLiteLLMOpenApi(masterKey: string): Promise<OpenApiDocument> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mc-openapi-'));
  try {
    const configPath = path.join(dir, 'config.yaml');
    await writeFile(
      configPath,
      'model_list: []\ngeneral_settings:\n  master_key: os.environ/LITELLM_MASTER_KEY\n',
    );
    const litellm = await startLiteLLM({ configPath, masterKey });
    try {
      const response = await fetch(`${litellm.url}/openapi.json`);
      return (await response.json()) as OpenApiDocument;
    } finally {
      await litellm.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
