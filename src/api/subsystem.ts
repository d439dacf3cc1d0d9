import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../log/logger.js';
import type { SecretValues } from '../log/redact.js';
import type { Metrics } from '../metrics/metrics.js';
import type { JobRun } from '../scheduler/subsystem.js';
import type { Settings } from '../settings/settings.js';
import { stateSecret } from '../settings/state-secret.js';
import { describeError } from '../shared/errors.js';
import { ServiceStartError, type Subsystem } from '../shared/subsystem.js';
import { tokenEntry } from './auth.js';
import { apiRoutes, type ServiceApi } from './routes.js';
import { createApiServer, type Route } from './server.js';

export interface ApiDeps {
  settings: Pick<
    Settings,
    'apiHost' | 'apiPort' | 'maxBodyBytes' | 'stateDir' | 'readTokens' | 'adminTokens'
  >;
  /** The `http` child logger (the admin token is generated with the service logger). */
  log: Logger;
  serviceLog: Logger;
  metrics: Metrics;
  secrets: SecretValues;
  /** What the routes answer from; `extraRoutes` are the other subsystems' routes. */
  service: ServiceApi;
  version: string;
}

export interface ApiSubsystem extends Subsystem<Route, JobRun> {
  /** Where the API listens (`http://host:port`). */
  url: string;
}

/**
 * The HTTP API: bearer tokens (generated into the state directory when none are set), every
 * route of the service, listening on apiHost:apiPort. Stopping takes no new requests and lets the
 * running ones (an apply) finish, for up to two minutes.
 */
export async function startApi(deps: ApiDeps): Promise<ApiSubsystem> {
  const { settings } = deps;
  const tokens = {
    read: settings.readTokens,
    admin:
      settings.adminTokens.length > 0
        ? settings.adminTokens
        : [await stateSecret(settings.stateDir, 'api-token', 'mc-', deps.serviceLog)],
  };
  for (const token of tokens.read) deps.secrets.add(tokenEntry(token, 'read').value);
  for (const token of tokens.admin) deps.secrets.add(tokenEntry(token, 'admin').value);
  const server = createApiServer({
    routes: apiRoutes(deps.service, deps.version),
    tokens,
    maxBodyBytes: settings.maxBodyBytes,
    log: deps.log,
    mask: (text) => deps.secrets.mask(text),
    onRequest: (method, route, status, seconds) =>
      deps.metrics.recordHttp(method, route, status, seconds),
  });
  let inFlight = 0;
  let drained: (() => void) | undefined;
  server.on('request', (_request, response: NodeJS.EventEmitter) => {
    inFlight += 1;
    response.once('close', () => {
      inFlight -= 1;
      if (inFlight === 0) drained?.();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) =>
      reject(
        new ServiceStartError(
          `the API cannot listen on ${settings.apiHost}:${settings.apiPort}: ${describeError(error)}`,
          'failed',
        ),
      ),
    );
    server.listen(settings.apiPort, settings.apiHost, () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${settings.apiHost}:${address.port}`,
    stop: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      if (inFlight > 0) {
        await Promise.race([
          new Promise<void>((resolve) => (drained = resolve)),
          sleep(120_000, undefined, { ref: false }),
        ]);
      }
      server.closeAllConnections();
      await closed;
    },
  };
}
