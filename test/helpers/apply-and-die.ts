/**
 * A controller process that is killed with SIGKILL right after one apply step: `committed` (before
 * any reload) or `reloaded` (LiteLLM runs on the new config, nothing verified; that LiteLLM exits
 * with the controller through the watchdog launcher). Used by the recovery test.
 * argv: <repo> <port> <step>; keys come from the environment.
 */
import { repoController, stateDirOf } from './controller.js';

const [repo = '', port = '0', at = 'committed'] = process.argv.slice(2);
const env = process.env as Record<string, string>;
const { controller } = await repoController(
  repo,
  {
    port: Number(port),
    masterKey: env.LITELLM_MASTER_KEY ?? '',
    env: JSON.parse(env.PROVIDER_ENV ?? '{}') as Record<string, string>,
    stateDir: stateDirOf(repo),
  },
  (step) => {
    if (step === at) process.kill(process.pid, 'SIGKILL');
  },
);
await controller.apply();
