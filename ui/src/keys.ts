import { html } from 'htm/preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { get, Unauthorized, type Scope } from './api.js';
import { ConfirmPanel, useAdminAction } from './admin-action.js';
import { cellButton, DataTable, when, type Column } from './table.js';

/** `GET /v1/credentials`, one row: fingerprints, never a value. */
interface CredentialRow {
  provider: string;
  reference: string;
  variable: string;
  source: string;
  overridesEnv: boolean;
  fingerprint?: string;
  since?: string;
  ageSeconds?: number;
  previous?: { fingerprint: string; expiresAt: string };
  rotation?: { id: string; state: string; startedAt: string; graceUntil?: string };
  rotateEvery?: string;
  nextRotation?: string;
}

/** `GET /v1/keys`, one row: the master key or a caller's key, by fingerprint. */
interface KeyRow {
  subject: string;
  kind: 'master' | 'caller';
  caller?: string;
  fingerprint: string;
  sharesMasterKey?: boolean;
  ageSeconds?: number;
  rotation?: { state: string; startedAt: string; graceUntil?: string };
  rotateEvery?: string;
  nextRotation?: string;
}

/** `GET /v1/keys/audit`, one event. */
interface AuditEvent {
  at: string;
  rotationId: string;
  actor: string;
  action: string;
  subject: string;
  step: string;
  outcome: string;
  fingerprints?: { old?: string; new?: string };
  detail?: string;
}

/** Seconds as the largest whole unit: 3 d, 5 h, 12 min. */
function age(seconds: unknown): string {
  if (typeof seconds !== 'number') return '—';
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3_600],
    ['min', 60],
  ] as const)
    if (seconds >= size) return `${Math.floor(seconds / size)} ${unit}`;
  return `${Math.floor(seconds)} s`;
}

/** The last rotation and the next one, as the credentials and the caller keys show them. */
const rotationColumns: Column[] = [
  {
    title: 'Rotation',
    field: 'rotation',
    formatter: (c) => {
      const row = c.getRow().getData() as CredentialRow;
      if (!row.rotation) return 'never rotated';
      const grace = row.previous
        ? `; old ${row.previous.fingerprint} valid until ${when(row.previous.expiresAt)}`
        : '';
      return `${row.rotation.state} (${when(row.rotation.startedAt)})${grace}`;
    },
  },
  {
    title: 'Next rotation',
    field: 'nextRotation',
    formatter: (c) => {
      const row = c.getRow().getData() as CredentialRow;
      return row.nextRotation
        ? `${when(row.nextRotation)} (every ${row.rotateEvery})`
        : 'not scheduled';
    },
  },
];

const keyColumns: Column[] = [
  { title: 'Key', field: 'subject' },
  {
    title: 'Fingerprint',
    field: 'fingerprint',
    formatter: (c) => {
      const row = c.getRow().getData() as KeyRow;
      return row.sharesMasterKey ? `${row.fingerprint} (the master key)` : row.fingerprint;
    },
  },
  { title: 'Age', field: 'ageSeconds', formatter: (c) => age(c.getValue()) },
  ...rotationColumns,
];

const auditColumns: Column[] = [
  { title: 'When', field: 'at', formatter: (c) => when(c.getValue()) },
  { title: 'Who', field: 'actor' },
  { title: 'Action', field: 'action' },
  { title: 'Subject', field: 'subject' },
  { title: 'Step', field: 'step' },
  { title: 'Outcome', field: 'outcome' },
  {
    title: 'Fingerprints',
    field: 'fingerprints',
    formatter: (c) => {
      const f = c.getValue() as AuditEvent['fingerprints'];
      if (!f) return '';
      return [f.old, f.new].filter(Boolean).join(' → ');
    },
  },
  { title: 'Detail', field: 'detail' },
];

export function KeysView(props: { token: string; scope: Scope; onUnauthorized: () => void }) {
  const [credentials, setCredentials] = useState<{ backend: string; rows: CredentialRow[] }>();
  const [events, setEvents] = useState<AuditEvent[]>([]);
  const [keys, setKeys] = useState<KeyRow[]>([]);
  const [error, setError] = useState<string | undefined>();
  /** The provider whose rotate form is open. */
  const [rotating, setRotating] = useState<string | undefined>();
  /**
   * The new value between the form and the confirmation: held outside the rendered state (never
   * put back into the DOM), dropped once sent or cancelled.
   */
  const typed = useRef<string | undefined>(undefined);

  const load = useCallback(async () => {
    try {
      const [creds, callerKeys, audit] = await Promise.all([
        get<{ backend: string; credentials: CredentialRow[] }>(props.token, '/v1/credentials'),
        get<{ keys: KeyRow[] }>(props.token, '/v1/keys'),
        get<{ events: AuditEvent[] }>(props.token, '/v1/keys/audit?limit=200'),
      ]);
      setKeys(callerKeys.keys);
      setCredentials({ backend: creds.backend, rows: creds.credentials });
      setEvents(audit.events);
      setError(undefined);
    } catch (e) {
      if (e instanceof Unauthorized) props.onUnauthorized();
      else setError(e instanceof Error ? e.message : String(e));
    }
  }, [props.token]);

  useEffect(() => {
    void load();
    const timer = setInterval(() => void load(), 10_000);
    return () => clearInterval(timer);
  }, [load]);

  const action = useAdminAction(props.token, props.onUnauthorized, async () => {
    typed.current = undefined;
    await load();
  });
  const admin = props.scope === 'admin';

  const credentialColumns: Column[] = [
    { title: 'Provider', field: 'provider' },
    { title: 'Reference', field: 'reference' },
    {
      title: 'Source',
      field: 'source',
      formatter: (c) => {
        const row = c.getRow().getData() as CredentialRow;
        return row.overridesEnv ? 'store (rotated, overrides env)' : row.source;
      },
    },
    { title: 'Fingerprint', field: 'fingerprint', formatter: (c) => String(c.getValue() ?? '—') },
    { title: 'Age', field: 'ageSeconds', formatter: (c) => age(c.getValue()) },
    ...rotationColumns,
    ...(admin
      ? [
          {
            title: '',
            field: 'provider',
            headerSort: false,
            formatter: () => cellButton('rotate', 'Rotate…'),
            cellClick: (_event: unknown, cell: { getValue(): unknown }) => {
              typed.current = undefined;
              setRotating(String(cell.getValue()));
            },
          } satisfies Column,
        ]
      : []),
  ];

  const submit = (event: Event) => {
    event.preventDefault();
    const form = event.target as HTMLFormElement;
    const field = form.elements.namedItem('value') as HTMLInputElement;
    const now = (form.elements.namedItem('now') as HTMLInputElement).checked;
    typed.current = field.value;
    // The value leaves the page's DOM at once: it lives only in memory until it is sent.
    field.value = '';
    const provider = rotating!;
    setRotating(undefined);
    action.propose({
      label: `Rotate the ${provider} credential`,
      method: 'POST',
      path: `/v1/credentials/${encodeURIComponent(provider)}/rotate`,
      // The value is added at the confirmation (below): it is never part of rendered state.
      body: { now },
      consequence: `The new value is tested against ${provider}, stored, swapped in and canaried through LiteLLM${now ? '; the old value is retired at once (compromised)' : '; the old one stays valid for the grace period'}.`,
    });
  };

  const confirm = () => {
    const value = typed.current ?? '';
    typed.current = undefined;
    void action.confirm({ value });
  };

  const answered = action.answered;
  const rotated = answered?.body as
    | { oldFingerprint?: string; newFingerprint?: string; state?: string; graceUntil?: string }
    | undefined;
  return html`<section data-view="keys">
    ${error && html`<p class="error">${error}</p>`}
    ${
      rotating &&
      html`<form class="confirm" data-testid="rotate-form" onSubmit=${submit} autocomplete="off">
        <p>
          <b>New value for ${rotating}</b>: typed here, sent once, never shown again (the table
          shows its fingerprint).
        </p>
        <input type="password" name="value" autocomplete="new-password" required minlength="8" />
        <label><input type="checkbox" name="now" /> compromised: no grace period</label>
        <button type="submit" data-testid="rotate-submit">Rotate</button>
        <button type="button" class="link" onClick=${() => setRotating(undefined)}>Cancel</button>
      </form>`
    }
    ${
      action.pending &&
      html`<${ConfirmPanel}
        pending=${action.pending}
        running=${action.running}
        onConfirm=${confirm}
        onCancel=${() => {
          typed.current = undefined;
          action.cancel();
        }}
      />`
    }
    ${
      answered &&
      html`<div class=${`outcome ${answered.ok ? 'good' : 'bad'}`} data-testid="outcome">
        <h3>${answered.label}: ${answered.ok ? 'rotated' : 'refused'}</h3>
        ${answered.message && html`<p>${answered.message}</p>`}
        ${
          answered.ok &&
          html`<p data-testid="rotated-fingerprints">
            ${rotated?.oldFingerprint ?? '—'} → <b>${rotated?.newFingerprint ?? '—'}</b>
            ${rotated?.graceUntil ? `; the old value is valid until ${when(rotated.graceUntil)}` : ''}
          </p>`
        }
      </div>`
    }

    <h2>Provider credentials</h2>
    <p class="muted">Secret store: ${credentials?.backend ?? '…'}</p>
    <${DataTable}
      id="credentials"
      csv="credentials"
      columns=${credentialColumns}
      rows=${credentials?.rows ?? []}
    />

    <h2>Master key and caller keys</h2>
    <${DataTable} id="keys" csv="keys" columns=${keyColumns} rows=${keys} />

    <h2>Audit trail</h2>
    <${DataTable}
      id="audit"
      csv="key-audit"
      columns=${auditColumns}
      rows=${events}
      placeholder="no key operation yet"
    />
  </section>`;
}
