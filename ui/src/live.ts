import { html } from 'htm/preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError, call, get, type Scope } from './api.js';
import { cellButton, DataTable, shortCommit, when, type Column } from './table.js';
import type { ApplyRecord, ApplyReport, GeneratedCommit, Status } from './types.js';

interface LiveData {
  status: Status;
  applies: ApplyRecord[];
  commits: GeneratedCommit[];
}

/** An admin action waiting for its confirmation. */
interface Pending {
  label: string;
  path: '/v1/apply' | '/v1/reload' | '/v1/rollback';
  body: object;
}

/** What an action answered, and the live state read after it. */
interface Outcome {
  label: string;
  report?: ApplyReport;
  error?: string;
}

const applyColumns: Column[] = [
  { title: 'Started', field: 'at', formatter: (c) => when(c.getValue()) },
  { title: 'Trigger', field: 'trigger' },
  { title: 'Outcome', field: 'outcome' },
  { title: 'Commit', field: 'commit', formatter: (c) => shortCommit(c.getValue()) },
  { title: 'Duration', field: 'durationMs', formatter: (c) => `${c.getValue()} ms` },
  {
    title: 'Problems',
    field: 'problems',
    formatter: (c) => ((c.getValue() as string[] | undefined) ?? []).join('; '),
  },
];

export function LiveView(props: { token: string; scope: Scope; onUnauthorized: () => void }) {
  const [data, setData] = useState<LiveData | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [pending, setPending] = useState<Pending | undefined>();
  const [running, setRunning] = useState(false);
  const [outcome, setOutcome] = useState<Outcome | undefined>();

  const load = useCallback(async () => {
    try {
      const [status, applies, commits] = await Promise.all([
        get<Status>(props.token, '/v1/status'),
        get<{ applies: ApplyRecord[] }>(props.token, '/v1/applies?limit=20'),
        get<{ commits: GeneratedCommit[] }>(props.token, '/v1/generated-commits?limit=20'),
      ]);
      setData({ status, applies: applies.applies, commits: commits.commits });
      setError(undefined);
    } catch (e) {
      if (e instanceof ApiError || e instanceof TypeError) setError(e.message);
      else props.onUnauthorized();
    }
  }, [props.token]);

  useEffect(() => {
    void load();
    const timer = setInterval(() => void load(), 5000);
    return () => clearInterval(timer);
  }, [load]);

  const confirm = async () => {
    if (!pending) return;
    setRunning(true);
    try {
      const report = await call<ApplyReport>(props.token, 'POST', pending.path, pending.body);
      setOutcome({ label: pending.label, report });
    } catch (e) {
      if (e instanceof ApiError) {
        const body = e.body as ApplyReport | undefined;
        setOutcome(
          body && 'outcome' in body
            ? { label: pending.label, report: body }
            : { label: pending.label, error: e.message },
        );
      } else props.onUnauthorized();
    } finally {
      setRunning(false);
      setPending(undefined);
      await load();
    }
  };

  const admin = props.scope === 'admin';
  const commitColumns: Column[] = [
    { title: 'Commit', field: 'commit', formatter: (c) => shortCommit(c.getValue()) },
    { title: 'Made', field: 'at', formatter: (c) => when(c.getValue()) },
    { title: 'Subject', field: 'subject' },
    { title: 'Policy commit', field: 'policyCommit', formatter: (c) => shortCommit(c.getValue()) },
    {
      title: 'Last-known-good',
      field: 'lastKnownGood',
      formatter: (c) => (c.getValue() ? 'yes' : ''),
    },
    ...(admin
      ? [
          {
            title: '',
            field: 'commit',
            headerSort: false,
            formatter: () => cellButton('rollback', 'Roll back to this'),
            cellClick: (_event: unknown, cell: { getValue(): unknown }) => {
              const commit = String(cell.getValue());
              setOutcome(undefined);
              setPending({
                label: `Roll back to ${commit.slice(0, 12)}`,
                path: '/v1/rollback',
                body: { to: commit },
              });
            },
          } satisfies Column,
        ]
      : []),
  ];

  if (!data) return html`<p class="muted">${error ?? 'loading…'}</p>`;
  const { status } = data;
  return html`<section data-view="live">
    ${error && html`<p class="error">${error}</p>`}
    <div class="cards">
      <div class="card" data-testid="generated-commit">
        <h3>Generated commit</h3>
        <code>${shortCommit(status.generatedCommit?.commit) || '—'}</code>
        <p class="muted">${status.generatedCommit?.subject}</p>
      </div>
      <div class="card">
        <h3>Policy commit</h3>
        <code>${status.policyCommit?.slice(0, 12) ?? '—'}</code>
      </div>
      <div class="card" data-testid="last-known-good">
        <h3>Last-known-good</h3>
        <code>${shortCommit(status.lastKnownGood) || '—'}</code>
      </div>
      <div class="card">
        <h3>Reload strategy</h3>
        <b>${status.strategy}</b>
        <p class="muted">${status.strategyReason}</p>
      </div>
      <div class=${`card ${status.drift.drifted ? 'bad' : 'good'}`} data-testid="drift">
        <h3>Drift</h3>
        <b>${status.drift.drifted ? 'drifted' : 'none'}</b>
        <p class="muted">
          ${status.drift.workingTreeEdited ? 'the generated file was edited by hand. ' : ''}
          ${
            status.drift.foreignCommit
              ? `last changed by foreign commit ${status.drift.foreignCommit.slice(0, 12)}`
              : ''
          }
        </p>
      </div>
    </div>

    ${
      admin &&
      html`<div class="actions">
        <button
          data-action="apply"
          onClick=${() => {
            setOutcome(undefined);
            setPending({ label: 'Apply the committed policies', path: '/v1/apply', body: {} });
          }}
        >
          Apply
        </button>
        <button
          data-action="reload"
          onClick=${() => {
            setOutcome(undefined);
            setPending({ label: 'Reload every LiteLLM instance', path: '/v1/reload', body: {} });
          }}
        >
          Reload
        </button>
      </div>`
    }
    ${
      pending &&
      html`<div class="confirm" role="dialog" data-testid="confirm">
        <p>${pending.label}? LiteLLM is reloaded and verified; a failure rolls back by itself.</p>
        <button data-testid="confirm-yes" disabled=${running} onClick=${() => void confirm()}>
          ${running ? 'Working…' : 'Confirm'}
        </button>
        <button class="link" disabled=${running} onClick=${() => setPending(undefined)}>
          Cancel
        </button>
      </div>`
    }
    ${outcome && html`<${OutcomePanel} outcome=${outcome} status=${status} />`}

    <h2>LiteLLM instances</h2>
    <${DataTable}
      id="instances"
      columns=${
        [
          { title: 'URL', field: 'url' },
          {
            title: 'Ready',
            field: 'ready',
            formatter: (c) => (c.getValue() ? 'ready' : 'NOT READY'),
          },
          {
            title: 'Serves commit',
            field: 'servedCommit',
            formatter: (c) => shortCommit(c.getValue()) || 'not the committed set',
          },
          { title: 'Restarts', field: 'restarts' },
          {
            title: 'Differs',
            field: 'missing',
            formatter: (c) => {
              const row = c.getRow().getData() as Status['instances'][number];
              return [
                row.missing.length ? `missing ${row.missing.join(', ')}` : '',
                row.unexpected.length ? `unexpected ${row.unexpected.join(', ')}` : '',
                row.error ?? '',
              ]
                .filter(Boolean)
                .join('; ');
            },
          },
        ] satisfies Column[]
      }
      rows=${status.instances}
    />

    <h2>Last applies</h2>
    <${DataTable} id="applies" csv="applies" columns=${applyColumns} rows=${data.applies} />

    <h2>Generated commits</h2>
    <${DataTable}
      id="commits"
      csv="generated-commits"
      columns=${commitColumns}
      rows=${data.commits}
    />
  </section>`;
}

/** The action's report and whether the live state now verifies on every instance. */
function OutcomePanel(props: { outcome: Outcome; status: Status }) {
  const { outcome, status } = props;
  const report = outcome.report;
  const live = report?.commit;
  const verified =
    report !== undefined &&
    ['applied', 'unchanged'].includes(report.outcome) &&
    status.instances.length > 0 &&
    status.instances.every((i) => i.ready && i.servedCommit === live);
  return html`<div class=${`outcome ${verified ? 'good' : 'bad'}`} data-testid="outcome">
    <h3>${outcome.label}: ${report?.outcome ?? 'refused'}</h3>
    ${outcome.error && html`<p>${outcome.error}</p>`}
    ${
      report &&
      html`<p data-testid="outcome-verified" data-verified=${String(verified)}>
          ${
            verified
              ? `verified: every instance (${status.instances.length}) is ready and serves ${shortCommit(live)}`
              : `not verified: ${report.problems.join('; ') || 'the instances do not all serve the new commit'}`
          }
        </p>
        <p class="muted">
          commit <code>${shortCommit(report.commit)}</code>${', last-known-good '}
          <code>${shortCommit(report.lastKnownGood)}</code>
        </p>`
    }
  </div>`;
}
