import type { Logger } from '../log/logger.js';
import { describeError } from '../shared/errors.js';
import type { ReloadStrategy } from './strategy.js';
import type { DownCause, SupervisedProcess, SupervisionEvent } from './supervisor.js';

/** What the alert webhook receives from supervision: one per incident, and one on giving up. */
export interface SupervisionAlert {
  type: 'supervision';
  event: 'down' | 'gave-up';
  process: SupervisedProcess;
  strategy: string;
  message: string;
  at: string;
}

export interface SupervisionReporting {
  log: Logger;
  recordRestart(process: SupervisedProcess, cause: DownCause): void;
  setGivenUp(process: SupervisedProcess, given: boolean): void;
  /** The alert webhook, when one is configured. */
  alert?: (alert: SupervisionAlert) => Promise<void>;
  /** Masks every secret value (master key, tokens) in a text. */
  mask(text: string): string;
}

/**
 * Every supervision event becomes a log line; each restart attempt is counted; an incident and a
 * give-up each send one alert. Messages pass `mask` first: no secret leaves through them.
 */
export function reportSupervision(strategy: ReloadStrategy, to: SupervisionReporting): void {
  const send = (event: SupervisionAlert['event'], process: SupervisedProcess, message: string) => {
    if (!to.alert) return;
    const alert: SupervisionAlert = {
      type: 'supervision',
      event,
      process,
      strategy: strategy.name,
      message: to.mask(message),
      at: new Date().toISOString(),
    };
    to.alert(alert).catch((error: unknown) =>
      to.log.error({ err: to.mask(describeError(error)) }, 'supervision alert not delivered'),
    );
  };
  strategy.onSupervision?.((event: SupervisionEvent) => {
    const details = { ...event, strategy: strategy.name };
    if ('reason' in details) details.reason = to.mask(details.reason);
    if ('error' in details) details.error = to.mask(details.error);
    if ('message' in details) details.message = to.mask(details.message);
    switch (event.kind) {
      case 'down':
        to.log.error(details, 'supervised process is down: restarting it on the config it served');
        send('down', event.process, `${event.process} down: ${event.reason}; restarting it`);
        return;
      case 'restarting':
        to.recordRestart(event.process, event.cause);
        to.setGivenUp(event.process, false);
        to.log.warn(details, 'supervised restart scheduled');
        return;
      case 'restarted':
        to.log.info(details, 'supervised process is serving again');
        return;
      case 'restart-failed':
        to.log.error(details, 'supervised restart failed: trying again after the backoff');
        return;
      case 'replaced-by-reload':
        to.setGivenUp(event.process, false);
        to.log.info(
          details,
          'a reload put fresh processes in place: the supervision incident is over',
        );
        return;
      case 'gave-up':
        to.setGivenUp(event.process, true);
        to.log.fatal(
          details,
          'SUPERVISION GAVE UP: restart intensity limit reached, the process stays down until an apply or reload',
        );
        send(
          'gave-up',
          event.process,
          `${event.process}: ${event.message}; it stays down until then`,
        );
        return;
    }
  });
}
