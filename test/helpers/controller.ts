import path from 'node:path';
import { Controller, type ControllerOptions } from '../../src/apply/controller.js';
import { GitState } from '../../src/gitstate/git-state.js';
import { RestartStrategy, type RestartOptions } from '../../src/reload/restart.js';
import type { ReloadStrategy } from '../../src/reload/strategy.js';

/**
 * A controller over a policy repo made by `policyRepo`: policies in `policies/`, the generated
 * config at `litellm/config.yaml`, state in `.modelcenter/`, reloading through `strategy`.
 */
export async function controllerOver(
  repo: string,
  strategy: ReloadStrategy,
  onStep?: ControllerOptions['onStep'],
): Promise<Controller> {
  return new Controller({
    policiesDir: path.join(repo, 'policies'),
    state: await GitState.open(repo, 'litellm/config.yaml'),
    strategy,
    stateDir: path.join(repo, '.modelcenter'),
    ...(onStep && { onStep }),
  });
}

/** `controllerOver` with LiteLLM restarted as a child process. */
export async function repoController(
  repo: string,
  restart: RestartOptions,
  onStep?: ControllerOptions['onStep'],
): Promise<{ controller: Controller; strategy: RestartStrategy }> {
  const strategy = new RestartStrategy(restart);
  return { controller: await controllerOver(repo, strategy, onStep), strategy };
}
