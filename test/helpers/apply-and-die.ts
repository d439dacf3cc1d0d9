/**
 * A controller process that is killed with SIGKILL right after the generated commit, before any
 * reload or verify: what a crash mid-apply leaves behind. Used by the recovery test.
 * argv: <repo> <port>; keys come from the environment.
 */
import { repoController } from './controller.js';

const [repo = '', port = '0'] = process.argv.slice(2);
const env = process.env as Record<string, string>;
const { controller } = await repoController(
  repo,
  { port: Number(port), masterKey: env.LITELLM_MASTER_KEY ?? '', env: {} },
  (step) => {
    if (step === 'committed') process.kill(process.pid, 'SIGKILL');
  },
);
await controller.apply();
