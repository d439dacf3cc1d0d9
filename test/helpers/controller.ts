import path from 'node:path';
import { Controller, type ControllerOptions } from '../../src/apply/controller.js';
import { GitState } from '../../src/gitstate/git-state.js';
import { RestartStrategy, type RestartOptions } from '../../src/reload/restart.js';
import type { ReloadStrategy } from '../../src/reload/strategy.js';

/**
 * A controller over a policy repo made by `policyRepo`: policies in `policies/`, the generated
 * config at `litellm/config.yaml`, state in `.modelcenter/`, reloading with `strategy`.
 */
export async function controllerFor(
  repo: string,
  strategy: ReloadStrategy,
  onStep?: ControllerOptions['onStep'],
): Promise<Controller> {
  return new Controller({
    policiesDir: path.join(repo, 'policies'),
    state: await GitState.open(repo, 'litellm/config.yaml'),
    strategy,
    stateDir: stateDirOf(repo),
    ...(onStep && { onStep }),
  });
}

export function stateDirOf(repo: string): string {
  return path.join(repo, '.modelcenter');
}

/** The same, with LiteLLM restarted as a child process. */
export async function repoController(
  repo: string,
  restart: RestartOptions,
  onStep?: ControllerOptions['onStep'],
): Promise<{ controller: Controller; strategy: RestartStrategy }> {
  const strategy = new RestartStrategy(restart);
  return { controller: await controllerFor(repo, strategy, onStep), strategy };
}
