import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { ApiError, call, Unauthorized } from './api.js';

/** An admin change waiting for its confirmation: what it does, and the call that does it. */
export interface Pending {
  label: string;
  method: 'POST' | 'PUT';
  path: string;
  body: object;
  /** Said under the label: what happens when confirmed. */
  consequence: string;
}

/** What the call answered (its body, also for 4xx/5xx answers that carry a report). */
export interface Answered {
  label: string;
  ok: boolean;
  status: number;
  body?: unknown;
  message?: string;
}

/**
 * The confirm-then-call step every mutating control of the providers and keys views goes through:
 * the control proposes, the admin confirms, the answer (the apply report) is shown.
 */
export function useAdminAction(token: string, onUnauthorized: () => void, after: () => unknown) {
  const [pending, setPending] = useState<Pending | undefined>();
  const [running, setRunning] = useState(false);
  const [answered, setAnswered] = useState<Answered | undefined>();

  /** `extra`: body fields known only at the confirmation (a typed secret, never in state). */
  const confirm = async (extra?: object): Promise<void> => {
    if (!pending) return;
    setRunning(true);
    try {
      const body = await call<unknown>(token, pending.method, pending.path, {
        ...pending.body,
        ...extra,
      });
      setAnswered({ label: pending.label, ok: true, status: 200, body });
    } catch (e) {
      if (e instanceof Unauthorized) onUnauthorized();
      else if (e instanceof ApiError)
        setAnswered({
          label: pending.label,
          ok: false,
          status: e.status,
          body: e.body,
          message: e.message,
        });
      else setAnswered({ label: pending.label, ok: false, status: 0, message: String(e) });
    } finally {
      setRunning(false);
      setPending(undefined);
      await after();
    }
  };
  const propose = (next: Pending): void => {
    setAnswered(undefined);
    setPending(next);
  };
  return { pending, running, answered, propose, confirm, cancel: () => setPending(undefined) };
}

export function ConfirmPanel(props: {
  pending: Pending;
  running: boolean;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  return html`<div class="confirm" role="dialog" data-testid="confirm">
    <p><b>${props.pending.label}?</b> ${props.pending.consequence}</p>
    <button data-testid="confirm-yes" disabled=${props.running} onClick=${props.onConfirm}>
      ${props.running ? 'Working…' : 'Confirm'}
    </button>
    <button class="link" disabled=${props.running} onClick=${props.onCancel}>Cancel</button>
  </div>`;
}
