import { ensureLiteLLMInstalled } from '../src/litellm/install.js';

/** Integration tests need the pinned LiteLLM: install it once, before any test file runs. */
export default async function setup(): Promise<void> {
  await ensureLiteLLMInstalled();
}
