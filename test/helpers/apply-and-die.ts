/**
 * A controller process that is killed with SIGKILL right after the generated commit, before any
 * reload or verify: what a crash mid-apply leaves behind. Used by the recovery test.
 * argv: <repo> <port>; keys come from the environment.
 */
import path from 'node:path';
import { Controller } from '../../src/apply/controller.js';
import { GitState } from '../../src/gitstate/git-state.js';
import { RestartStrategy } from '../../src/reload/restart.js';

const [repo = '', port = '0'] = process.argv.slice(2);
const env = process.env as Record<string, string>;
const controller = new Controller({
  policiesDir: path.join(repo, 'policies'),
  state: await GitState.open(repo, 'litellm/config.yaml'),
  strategy: new RestartStrategy({
    port: Number(port),
    masterKey: env.LITELLM_MASTER_KEY ?? '',
    env: {},
  }),
  stateDir: path.join(repo, '.modelcenter'),
  onStep: (step) => {
    if (step === 'committed') process.kill(process.pid, 'SIGKILL');
  },
});
await controller.apply();
