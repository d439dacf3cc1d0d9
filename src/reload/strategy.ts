import type { DeploymentRef, LiteLLMClient } from '../litellm/client.js';
import { ModelCenterError } from '../shared/errors.js';
import type { InstanceHealth, SupervisionListener } from './supervisor.js';

export class ReloadError extends ModelCenterError {
  constructor(
    message: string,
    /** LiteLLM's own last lines, secrets masked, when a process failed to start. */
    readonly output?: string,
  ) {
    super(message);
  }
}

/** How a new config file reaches the LiteLLM instances. Every strategy ends in `verify`. */
export interface ReloadStrategy {
  readonly name: 'restart' | 'blue-green' | 'admin-api';
  /**
   * Make every instance load `configFile`, whose deployment ids are `intended` (a strategy may
   * verify a new instance before it takes traffic). Throws ReloadError when an instance cannot.
   * A strategy may skip a config that is already live and healthy, unless `force` (an explicit
   * reload: the operator wants fresh processes, e.g. with a changed environment).
   */
  reload(
    configFile: string,
    intended: readonly string[],
    options?: { force?: boolean },
  ): Promise<void>;
  /** Clients for every instance, to verify. */
  instances(): LiteLLMClient[];
  /**
   * A served deployment this strategy does not own, which verify leaves out (admin-api: each
   * instance's own config.yaml models). Without it, every served deployment must be intended.
   */
  ownedElsewhere?(deployment: DeploymentRef): boolean;
  /**
   * Strategies that run processes supervise them: whether every process is up now (an apply
   * while one is down reloads instead of answering `unchanged`; `/readyz` says why).
   */
  readiness?(): InstanceHealth;
  /** Restarts, give-ups and the like, for logs, metrics and alerts. */
  onSupervision?(listener: SupervisionListener): void;
  stop(): Promise<void>;
}
