import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, get, query, Unauthorized, type Scope } from './api.js';
import { StackedSpendChart } from './chart.js';
import { DataTable, milliseconds, percent, usd, when, type Column } from './table.js';
import type { BudgetsReport, CallRecord, SpendReport, SpendSeries } from './types.js';

const DIMENSIONS = ['goal', 'caller', 'profile', 'model', 'provider'] as const;
const RANGES = [
  { since: '24h', label: 'last 24 hours', hourly: true },
  { since: '7d', label: 'last 7 days', hourly: true },
  { since: '30d', label: 'last 30 days', hourly: true },
  { since: '90d', label: 'last 90 days', hourly: false },
  { since: '365d', label: 'last year', hourly: false },
];
const REPORT_DIMENSIONS = [
  'goal',
  'caller',
  'conversation',
  'profile',
  'model',
  'provider',
  'deployment',
  'day',
  'hour',
];

function keyColumns(groupBy: string[]): Column[] {
  return groupBy.map((d) => ({
    title: d,
    field: `keys.${d}`,
    formatter: (c) => String(c.getValue() ?? '—'),
  }));
}

const measureColumns: Column[] = [
  { title: 'Cost', field: 'costUsd', formatter: (c) => usd(c.getValue()) },
  { title: 'Requests', field: 'requests' },
  { title: 'Errors', field: 'errors' },
  { title: 'Error rate', field: 'errorRate', formatter: (c) => percent(c.getValue()) },
  { title: 'Tokens in', field: 'tokensIn' },
  { title: 'Tokens out', field: 'tokensOut' },
  { title: 'p50 ms', field: 'latencyP50Ms', formatter: (c) => milliseconds(c.getValue()) },
  { title: 'p95 ms', field: 'latencyP95Ms', formatter: (c) => milliseconds(c.getValue()) },
];

/** The ten largest series of the period (already largest first). */
function top(series: SpendSeries): object[] {
  return series.series.slice(0, 10).map((s) => ({
    key: s.key,
    costUsd: s.totalCostUsd,
    requests: s.totalRequests,
  }));
}

function topColumns(dimension: string): Column[] {
  return [
    { title: dimension, field: 'key' },
    { title: 'Cost', field: 'costUsd', formatter: (c) => usd(c.getValue()) },
    { title: 'Requests', field: 'requests' },
  ];
}

/** Loads `path` whenever it changes; errors other than a refused token are shown in place. */
function useApi<T>(token: string, path: string | undefined, onUnauthorized: () => void) {
  const [state, setState] = useState<{ data?: T; error?: string }>({});
  useEffect(() => {
    if (path === undefined) return;
    let current = true;
    get<T>(token, path).then(
      (data) => current && setState({ data }),
      (e: unknown) => {
        if (e instanceof Unauthorized) onUnauthorized();
        else if (current) setState({ error: e instanceof Error ? e.message : String(e) });
      },
    );
    return () => {
      current = false;
    };
  }, [token, path]);
  return state;
}

export function SpendView(props: { token: string; scope: Scope; onUnauthorized: () => void }) {
  const [by, setBy] = useState<string>('goal');
  const [since, setSince] = useState('7d');
  const [bucket, setBucket] = useState<'hour' | 'day'>('day');
  const range = RANGES.find((r) => r.since === since) ?? RANGES[1]!;
  const effectiveBucket = range.hourly ? bucket : 'day';
  const api = <T>(path: string) => useApi<T>(props.token, path, props.onUnauthorized);

  const series = api<SpendSeries>(
    `/v1/spend/series${query({ by, bucket: effectiveBucket, since })}`,
  );
  const budgets = api<BudgetsReport>('/v1/spend/budgets');
  // Top goals and callers from the series route: cost and requests only, no percentiles to sum.
  const goals = api<SpendSeries>(`/v1/spend/series${query({ by: 'goal', bucket: 'day', since })}`);
  const callers = api<SpendSeries>(
    `/v1/spend/series${query({ by: 'caller', bucket: 'day', since })}`,
  );
  const providers = api<SpendReport>(`/v1/spend/report${query({ groupBy: 'provider', since })}`);

  return html`<section data-view="spend">
    <div class="controls">
      <label>
        Stack by
        <select
          data-testid="stack-by"
          value=${by}
          onChange=${(e: Event) => setBy((e.target as HTMLSelectElement).value)}
        >
          ${DIMENSIONS.map((d) => html`<option value=${d}>${d}</option>`)}
        </select>
      </label>
      <label>
        Period
        <select
          data-testid="period"
          value=${since}
          onChange=${(e: Event) => setSince((e.target as HTMLSelectElement).value)}
        >
          ${RANGES.map((r) => html`<option value=${r.since}>${r.label}</option>`)}
        </select>
      </label>
      <label>
        Bucket
        <select
          data-testid="bucket"
          value=${effectiveBucket}
          onChange=${(e: Event) => setBucket((e.target as HTMLSelectElement).value as 'hour' | 'day')}
        >
          <option value="hour" disabled=${!range.hourly}>hourly</option>
          <option value="day">daily</option>
        </select>
      </label>
    </div>

    <h2>Spend over time by ${by}</h2>
    ${series.error && html`<p class="error">${series.error}</p>`}
    ${
      series.data &&
      html`<p data-testid="series-total">
          Total <b>$${series.data.totalCostUsd.toFixed(6)}</b>
          ${` over ${series.data.totalRequests} requests, ${when(series.data.from)} – ${when(series.data.to)}`}
        </p>
        <${StackedSpendChart} data=${series.data} />`
    }

    <h2>Budgets</h2>
    ${budgets.data && html`<${Budgets} report=${budgets.data} />`}

    <div class="columns">
      <div>
        <h2>Top goals</h2>
        ${
          goals.data &&
          html`<${DataTable}
            id="top-goals"
            csv="top-goals"
            columns=${topColumns('goal')}
            rows=${top(goals.data)}
          />`
        }
      </div>
      <div>
        <h2>Top callers</h2>
        ${
          callers.data &&
          html`<${DataTable}
            id="top-callers"
            csv="top-callers"
            columns=${topColumns('caller')}
            rows=${top(callers.data)}
          />`
        }
      </div>
    </div>

    <h2>Providers</h2>
    ${
      providers.data &&
      html`<${DataTable}
        id="providers"
        csv="providers"
        columns=${
          [
            ...keyColumns(['provider']),
            {
              title: 'Cost / request',
              field: 'costUsd',
              formatter: (c) => {
                const row = c.getRow().getData() as { costUsd: number; requests: number };
                return usd(row.requests > 0 ? row.costUsd / row.requests : 0);
              },
            },
            ...measureColumns.slice(1, 4),
            ...measureColumns.slice(6),
          ] satisfies Column[]
        }
        rows=${providers.data.lines}
      />`
    }

    <${ReportBuilder} token=${props.token} since=${since} onUnauthorized=${props.onUnauthorized} />
    <${CallLookup}
      token=${props.token}
      scope=${props.scope}
      onUnauthorized=${props.onUnauthorized}
    />
  </section>`;
}

function Budgets(props: { report: BudgetsReport }) {
  const { budgets, alerts } = props.report;
  if (budgets.length === 0) return html`<p class="muted">no budgets in the policies</p>`;
  return html`<div>
    <ul class="budgets">
      ${budgets.map(
        (b) =>
          html`<li data-budget=${b.name}>
            <div class="budget-head">
              <b>${b.name}</b>
              <span>
                ${`$${b.spendUsd.toFixed(4)} of $${b.limitUsd.toFixed(2)} per ${b.period} (${(b.used * 100).toFixed(1)} %)`}
              </span>
            </div>
            <div class="bar">
              <progress max="1" value=${Math.min(b.used, 1)}></progress>
              ${b.alertAt.map(
                (t) =>
                  html`<span
                    class=${`threshold ${b.reached.includes(t) ? 'reached' : ''}`}
                    style=${{ left: `${Math.min(t, 1) * 100}%` }}
                    title=${`alert at ${t * 100} %`}
                  ></span>`,
              )}
            </div>
            <p class="muted" data-testid="reached">
              ${`thresholds ${b.alertAt.map((t) => `${t * 100} %`).join(', ')}; reached ${
                b.reached.length ? b.reached.map((t) => `${t * 100} %`).join(', ') : 'none'
              }`}
            </p>
          </li>`,
      )}
    </ul>
    <h3>Alerts raised (last 30 days)</h3>
    <${DataTable}
      id="alerts"
      csv="alerts"
      placeholder="no alert raised"
      columns=${
        [
          { title: 'Raised', field: 'firedAt', formatter: (c) => when(c.getValue()) },
          { title: 'Budget', field: 'budget' },
          { title: 'Threshold', field: 'threshold', formatter: (c) => percent(c.getValue()) },
          { title: 'Spend', field: 'spendUsd', formatter: (c) => usd(c.getValue()) },
          { title: 'Limit', field: 'limitUsd', formatter: (c) => usd(c.getValue()) },
        ] satisfies Column[]
      }
      rows=${alerts}
    />
  </div>`;
}

/** Any report of the API as a table, downloadable as CSV. */
function ReportBuilder(props: { token: string; since: string; onUnauthorized: () => void }) {
  const [groupBy, setGroupBy] = useState<string[]>(['goal', 'provider']);
  // Run on demand: a report sums latency histograms, the costliest query the page can make.
  const [asked, setAsked] = useState(false);
  const path = asked
    ? `/v1/spend/report${query({ groupBy: groupBy.join(',') || undefined, since: props.since })}`
    : undefined;
  const report = useApi<SpendReport>(props.token, path, props.onUnauthorized);
  const toggle = (d: string) =>
    setGroupBy(groupBy.includes(d) ? groupBy.filter((x) => x !== d) : [...groupBy, d]);
  return html`<div data-testid="report">
    <h2>Report</h2>
    <div class="controls">
      Group by
      ${REPORT_DIMENSIONS.map(
        (d) =>
          html`<label class="check">
            <input type="checkbox" checked=${groupBy.includes(d)} onChange=${() => toggle(d)} />${d}
          </label>`,
      )}
      <button data-testid="run-report" onClick=${() => setAsked(true)}>Show report</button>
    </div>
    ${report.error && html`<p class="error">${report.error}</p>`}
    ${
      report.data &&
      html`<${DataTable}
        id=${`report-${groupBy.join('-')}`}
        csv=${`spend-${groupBy.join('-') || 'total'}-${props.since}`}
        columns=${[...keyColumns(report.data.groupBy), ...measureColumns]}
        rows=${report.data.lines}
      />`
    }
  </div>`;
}

/** One request's attempts (retries, fallbacks) by its call id: admin only, as the API says. */
function CallLookup(props: { token: string; scope: Scope; onUnauthorized: () => void }) {
  const [callId, setCallId] = useState('');
  const [record, setRecord] = useState<CallRecord | undefined>();
  const [error, setError] = useState<string | undefined>();
  const look = async (event: Event) => {
    event.preventDefault();
    try {
      setRecord(
        await get<CallRecord>(props.token, `/v1/spend/requests/${encodeURIComponent(callId)}`),
      );
      setError(undefined);
    } catch (e) {
      if (e instanceof Unauthorized) return props.onUnauthorized();
      setRecord(undefined);
      setError(e instanceof ApiError ? e.message : String(e));
    }
  };
  return html`<div data-testid="call-lookup">
    <h2>One request</h2>
    ${
      props.scope !== 'admin'
        ? html`<p class="muted">
            Looking up a request needs an admin token (it may show prompts).
          </p>`
        : html`<form class="controls" onSubmit=${look}>
            <input
              placeholder="x-litellm-call-id"
              value=${callId}
              onInput=${(e: Event) => setCallId((e.target as HTMLInputElement).value)}
            />
            <button type="submit">Show attempts</button>
          </form>`
    }
    ${error && html`<p class="error">${error}</p>`}
    ${
      record &&
      html`<p>
          Call <code>${record.callId}</code>
          ${`: ${record.attempts.length} attempt(s), $${record.costUsd.toFixed(6)}`}
        </p>
        <${DataTable}
          id="attempts"
          csv=${`call-${record.callId}`}
          columns=${
            [
              { title: 'Started', field: 'startedAt', formatter: (c) => when(c.getValue()) },
              { title: 'Status', field: 'status' },
              { title: 'Profile', field: 'profile' },
              { title: 'Deployment', field: 'deployment' },
              { title: 'Provider', field: 'provider' },
              { title: 'Cost', field: 'costUsd', formatter: (c) => usd(c.getValue()) },
              { title: 'Latency ms', field: 'latencyMs' },
              { title: 'Error', field: 'errorClass' },
            ] satisfies Column[]
          }
          rows=${record.attempts}
        />`
    }
  </div>`;
}
