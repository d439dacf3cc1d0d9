import { existsSync } from 'node:fs';
import path from 'node:path';

export type StrategyName = 'restart' | 'blue-green' | 'admin-api';

/** The nginx binary: MODELCENTER_NGINX, Debian's paths, then PATH; undefined when there is none. */
export function findNginx(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.MODELCENTER_NGINX)
    return existsSync(env.MODELCENTER_NGINX) ? env.MODELCENTER_NGINX : undefined;
  const dirs = ['/usr/sbin', '/usr/bin', ...(env.PATH ?? '').split(path.delimiter).filter(Boolean)];
  return dirs.map((d) => path.join(d, 'nginx')).find((p) => existsSync(p));
}

/**
 * Which strategy runs and why, in words for the start banner and `status`: a setting wins; a
 * restart command means `restart`; otherwise `blue-green` (zero-drop) wherever nginx is present,
 * else `restart`.
 */
export function chooseStrategy(input: {
  explicit?: { strategy: StrategyName; from: string };
  restartCommand?: string;
  nginx: string | undefined;
}): { strategy: StrategyName; reason: string } {
  if (input.explicit) {
    return { strategy: input.explicit.strategy, reason: `set by ${input.explicit.from}` };
  }
  if (input.restartCommand) {
    return {
      strategy: 'restart',
      reason: 'MODELCENTER_RESTART_COMMAND is set: that command restarts LiteLLM',
    };
  }
  if (input.nginx) {
    return {
      strategy: 'blue-green',
      reason: `the default wherever nginx is present (${input.nginx}): a verified new LiteLLM takes over without dropping a request`,
    };
  }
  return {
    strategy: 'restart',
    reason:
      'nginx was not found (install it: sudo apt-get install nginx-light, or bash .ci/install-system-packages.sh; or set MODELCENTER_NGINX), so the default is restart: a refused config costs nothing, but each apply drops requests while LiteLLM restarts',
  };
}
