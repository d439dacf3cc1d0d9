/**
 * A process that rotates one caller's virtual key and is killed with SIGKILL right after the key
 * event named `at` (e.g. `key.rotate.started`: recorded, nothing sent to LiteLLM yet;
 * `key.rotate.created`: the new key is in LiteLLM, not delivered). Used by the kill -9 test.
 * argv: <litellm url> <journal dir> <policy file> <caller> <event>; the master key in LITELLM_MASTER_KEY.
 */
import { readFile } from 'node:fs/promises';
import { buildFromTexts } from '../../src/compile/build.js';
import { LiteLLMKeyClient } from '../../src/keys/key-client.js';
import { VirtualKeys } from '../../src/keys/virtual-keys.js';

const [url = '', journalDir = '', policyFile = '', caller = '', at = ''] = process.argv.slice(2);
const set = buildFromTexts([{ name: 'keys.yaml', text: await readFile(policyFile, 'utf8') }]).set;
const keys = new VirtualKeys({
  client: new LiteLLMKeyClient(url, process.env.LITELLM_MASTER_KEY ?? ''),
  journalDir,
  onEvent: (event) => {
    if (event.action === at) process.kill(process.pid, 'SIGKILL');
  },
});
await keys.rotate(set, caller, 'cli');
process.stderr.write(`rotate-and-die: the rotation ended without reaching ${at}\n`);
process.exit(3);
