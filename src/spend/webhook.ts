import { redactUrl } from '../shared/redact-url.js';
import { ModelCenterError } from '../shared/errors.js';
import type { Alert } from './budgets.js';

export class WebhookError extends ModelCenterError {}

export interface WebhookOptions {
  url: string;
  /** Sent as `Authorization: Bearer <token>` when set (MODELCENTER_ALERT_WEBHOOK_TOKEN). */
  token?: string;
  timeoutMs?: number;
}

/**
 * POSTs each alert as JSON `{ source: "modelcenter", alert }`; a non-2xx answer is a failure.
 * Budget alerts by default; supervision sends its own kind through the same receiver.
 */
export function webhookSink<T = Alert>(options: WebhookOptions): (alert: T) => Promise<void> {
  return async (alert: T) => {
    let response: Response;
    try {
      response = await fetch(options.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(options.token && { authorization: `Bearer ${options.token}` }),
        },
        body: JSON.stringify({ source: 'modelcenter', alert }),
        signal: AbortSignal.timeout(options.timeoutMs ?? 5000),
      });
    } catch (error) {
      throw new WebhookError(
        `alert webhook ${redactUrl(options.url)} unreachable: ${(error as Error).message} — check MODELCENTER_ALERT_WEBHOOK`,
        { cause: error },
      );
    }
    await response.arrayBuffer().catch(() => undefined);
    if (!response.ok)
      throw new WebhookError(
        `alert webhook ${redactUrl(options.url)} answered ${response.status} — check the receiver`,
      );
  };
}

/** The URL without credentials or query (which may carry a token). */
