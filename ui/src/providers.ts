import { html } from 'htm/preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, get, query, Unauthorized, type Scope } from './api.js';
import { ConfirmPanel, useAdminAction, type Answered } from './admin-action.js';
import { StackedSpendChart } from './chart.js';
import {
  cellButton,
  DataTable,
  milliseconds,
  percent,
  shortCommit,
  when,
  type Column,
} from './table.js';
import type { ApplyReport, SpendSeries } from './types.js';

/** `GET /v1/providers`, one row. */
interface ProviderRow {
  name: string;
  kind: string;
  baseUrl?: string;
  local: boolean;
  credential?: string;
  curatedModels: number;
  discoveredModels: number;
  lastSync?: { at: string; ok: boolean; error?: string; listed: number; kept: number };
}

/** `GET /v1/models`, one row. */
interface ModelRow {
  id: string;
  source: 'curated' | 'discovered';
  provider: string;
  upstream: string;
  capabilities: string[];
  contextWindow?: number;
  enabled?: boolean;
  curatedAs?: string;
  lastSeen?: string;
  missingSince?: string;
}

interface Figures {
  requests: number;
  errors: number;
  errorRate: number;
  p50LatencyMs?: number;
  p95LatencyMs?: number;
}

/** `GET /v1/health/providers` (the last evaluation). */
interface HealthReport {
  evaluatedAt: string;
  windowSeconds: number;
  providers: (Figures & {
    provider: string;
    condition: string;
    conditionSince: string;
    why: string;
    demoted?: { since: string; reason: string };
    probes?: { healthy: number; unhealthy: number };
    deployments: (Figures & {
      deployment: string;
      model?: string;
      probe?: { healthy: boolean; error?: string };
    })[];
  })[];
  demotion: {
    enabled: boolean;
    reloadsLastHour: number;
    maxReloadsPerHour: number;
    deferredUntil?: string;
  };
  lastChange?: { at: string; commit?: string; message: string; outcome: string };
}

/** What `POST /v1/models/promote` and `PUT /v1/models/{id}/enabled` answer. */
interface ProposalAnswer {
  commit?: string;
  reverted?: string;
  apply?: ApplyReport;
  plan?: { what: string; problems: string[]; added: string[]; removed: string[] };
  problems?: string[];
}

interface ProvidersData {
  providers: ProviderRow[];
  models: ModelRow[];
  health?: HealthReport;
  healthError?: string;
  spend?: SpendSeries;
}

const figureColumns: Column[] = [
  { title: 'Requests', field: 'requests' },
  { title: 'Error rate', field: 'errorRate', formatter: (c) => percent(c.getValue()) },
  { title: 'p50 ms', field: 'p50LatencyMs', formatter: (c) => milliseconds(c.getValue()) },
  { title: 'p95 ms', field: 'p95LatencyMs', formatter: (c) => milliseconds(c.getValue()) },
];

const providerColumns: Column[] = [
  { title: 'Provider', field: 'name' },
  { title: 'Kind', field: 'kind' },
  { title: 'Address', field: 'baseUrl' },
  { title: 'Credential', field: 'credential', formatter: (c) => String(c.getValue() ?? '—') },
  { title: 'Curated', field: 'curatedModels' },
  { title: 'Discovered', field: 'discoveredModels' },
  {
    title: 'Last sync',
    field: 'lastSync',
    formatter: (c) => {
      const sync = c.getValue() as ProviderRow['lastSync'];
      if (!sync) return 'never';
      return sync.ok
        ? `${when(sync.at)}: ${sync.kept} of ${sync.listed} kept`
        : `${when(sync.at)}: FAILED ${sync.error ?? ''}`;
    },
  },
];

const healthColumns: Column[] = [
  { title: 'Provider', field: 'provider' },
  { title: 'State', field: 'condition' },
  ...figureColumns,
  {
    title: 'Demoted',
    field: 'demoted',
    formatter: (c) => {
      const demoted = c.getValue() as HealthReport['providers'][number]['demoted'];
      return demoted ? `since ${when(demoted.since)}: ${demoted.reason}` : '';
    },
  },
  {
    title: 'Probes',
    field: 'probes',
    formatter: (c) => {
      const probes = c.getValue() as { healthy: number; unhealthy: number } | undefined;
      return probes ? `${probes.healthy} healthy, ${probes.unhealthy} unhealthy` : '—';
    },
  },
  { title: 'Why', field: 'why' },
];

const deploymentColumns: Column[] = [
  { title: 'Provider', field: 'provider' },
  { title: 'Deployment', field: 'deployment' },
  { title: 'Model', field: 'model' },
  ...figureColumns,
  {
    title: 'Probe',
    field: 'probe',
    formatter: (c) => {
      const probe = c.getValue() as { healthy: boolean; error?: string } | undefined;
      if (!probe) return '—';
      return probe.healthy ? 'healthy' : `unhealthy ${probe.error ?? ''}`;
    },
  },
];

/** A row's button in a Tabulator cell (first, so it stays in view): the handler gets the row. */
function buttonColumn<T>(
  label: (row: T) => string,
  css: string,
  onClick: (row: T) => void,
): Column {
  return {
    title: '',
    field: 'id',
    headerSort: false,
    formatter: (c) => cellButton(css, label(c.getRow().getData() as T)),
    cellClick: (_event, cell) => onClick(cell.getRow().getData() as T),
  };
}

export function ProvidersView(props: { token: string; scope: Scope; onUnauthorized: () => void }) {
  const [data, setData] = useState<ProvidersData | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [profile, setProfile] = useState('');
  // Tabulator keeps the columns (and their click handlers) it was built with: they read the
  // profile typed now through a ref, not the value of the render that built them.
  const profileNow = useRef('');
  profileNow.current = profile;

  const load = useCallback(async () => {
    try {
      const [providers, models, spend] = await Promise.all([
        get<{ providers: ProviderRow[] }>(props.token, '/v1/providers'),
        get<{ models: ModelRow[] }>(props.token, '/v1/models?source=all'),
        get<SpendSeries>(
          props.token,
          `/v1/spend/series${query({ by: 'provider', bucket: 'hour', since: '24h' })}`,
        ).catch((e: unknown) => {
          if (e instanceof Unauthorized) throw e;
          return undefined;
        }),
      ]);
      // 503 until the first evaluation: the rest of the view is shown with the reason.
      const health = await get<HealthReport>(props.token, '/v1/health/providers').then(
        (report) => ({ report, error: undefined }),
        (e: unknown) => {
          if (e instanceof Unauthorized) throw e;
          return { report: undefined, error: e instanceof Error ? e.message : String(e) };
        },
      );
      setData({
        providers: providers.providers,
        models: models.models,
        ...(health.report && { health: health.report }),
        ...(health.error && { healthError: health.error }),
        ...(spend && { spend }),
      });
      setError(undefined);
    } catch (e) {
      if (e instanceof Unauthorized) props.onUnauthorized();
      else setError(e instanceof ApiError || e instanceof Error ? e.message : String(e));
    }
  }, [props.token]);

  useEffect(() => {
    void load();
    const timer = setInterval(() => void load(), 10_000);
    return () => clearInterval(timer);
  }, [load]);

  const action = useAdminAction(props.token, props.onUnauthorized, load);
  const admin = props.scope === 'admin';

  const curatedColumns: Column[] = [
    ...(admin
      ? [
          buttonColumn<ModelRow>(
            (row) => (row.enabled === false ? 'Enable' : 'Disable'),
            'toggle-model',
            (row) =>
              action.propose({
                label: `${row.enabled === false ? 'Enable' : 'Disable'} ${row.id}`,
                method: 'PUT',
                path: `/v1/models/${encodeURIComponent(row.id)}/enabled`,
                body: { enabled: row.enabled === false, reason: 'from the dashboard' },
                consequence: 'A policy commit, applied to LiteLLM and verified.',
              }),
          ),
        ]
      : []),
    { title: 'Model', field: 'id' },
    { title: 'Provider', field: 'provider' },
    { title: 'Upstream', field: 'upstream' },
    { title: 'Capabilities', field: 'capabilities', formatter: (c) => String(c.getValue()) },
    {
      title: 'Served',
      field: 'enabled',
      formatter: (c) => {
        const row = c.getRow().getData() as ModelRow;
        const served = row.enabled === false ? 'disabled' : 'enabled';
        return row.missingSince ? `${served}, unlisted since ${when(row.missingSince)}` : served;
      },
    },
  ];
  const discoveredColumns: Column[] = [
    ...(admin
      ? [
          buttonColumn<ModelRow>(
            () => 'Promote',
            'promote',
            (row) => {
              const into = profileNow.current.trim();
              action.propose({
                label: `Promote ${row.id}${into ? ` into profile ${into}` : ' into the catalog'}`,
                method: 'POST',
                path: '/v1/models/promote',
                body: {
                  ids: [row.id],
                  ...(into && { profile: into }),
                  reason: 'from the dashboard',
                },
                consequence: 'A policy commit, applied to LiteLLM and verified.',
              });
            },
          ),
        ]
      : []),
    { title: 'Discovered id', field: 'id' },
    { title: 'Context', field: 'contextWindow', formatter: (c) => String(c.getValue() ?? '—') },
    { title: 'Capabilities', field: 'capabilities', formatter: (c) => String(c.getValue()) },
    {
      title: 'In the catalog',
      field: 'curatedAs',
      formatter: (c) => String(c.getValue() ?? ''),
    },
    { title: 'Last seen', field: 'lastSeen', formatter: (c) => when(c.getValue()) },
  ];

  if (!data) return html`<p class="muted">${error ?? 'loading…'}</p>`;
  const health = data.health;
  const deployments =
    health?.providers.flatMap((p) => p.deployments.map((d) => ({ provider: p.provider, ...d }))) ??
    [];
  const demoted = health?.providers.filter((p) => p.demoted) ?? [];
  return html`<section data-view="providers">
    ${error && html`<p class="error">${error}</p>`}
    ${
      action.pending &&
      html`<${ConfirmPanel}
        pending=${action.pending}
        running=${action.running}
        onConfirm=${() => void action.confirm()}
        onCancel=${action.cancel}
      />`
    }
    ${action.answered && html`<${ProposalOutcome} answered=${action.answered} />`}

    <h2>Providers</h2>
    <${DataTable}
      id="providers"
      csv="providers"
      columns=${providerColumns}
      rows=${data.providers}
    />

    <h2>Health</h2>
    ${
      health
        ? html`<p class="muted" data-testid="health-window">
            Evaluated ${when(health.evaluatedAt)} over the last ${health.windowSeconds} s
          </p>`
        : html`<p class="error">${data.healthError}</p>`
    }
    <div class="cards">
      <div class=${`card ${demoted.length ? 'bad' : 'good'}`} data-testid="demotions">
        <h3>Demotions</h3>
        <b>${demoted.length ? demoted.map((p) => p.provider).join(', ') : 'none'}</b>
        <p class="muted">
          ${
            health &&
            `${health.demotion.enabled ? 'demotion on' : 'demotion off'}; ${health.demotion.reloadsLastHour} of ${health.demotion.maxReloadsPerHour} reloads this hour${health.demotion.deferredUntil ? `; deferred until ${when(health.demotion.deferredUntil)}` : ''}`
          }
        </p>
      </div>
      ${
        health?.lastChange &&
        html`<div class="card">
          <h3>Last health change</h3>
          <b>${health.lastChange.outcome}</b>
          <p class="muted">
            ${when(health.lastChange.at)} ${health.lastChange.message}
            ${health.lastChange.commit ? ` (${shortCommit(health.lastChange.commit)})` : ''}
          </p>
        </div>`
      }
    </div>
    <${DataTable} id="health" columns=${healthColumns} rows=${health?.providers ?? []} />
    <h2>Deployments</h2>
    <${DataTable} id="deployments" columns=${deploymentColumns} rows=${deployments} />

    <h2>Spend per provider, last 24 hours</h2>
    ${
      data.spend
        ? html`<${StackedSpendChart} data=${data.spend} />`
        : html`<p class="muted">no spend figures (the ledger did not answer)</p>`
    }

    <h2>Catalog</h2>
    ${
      admin &&
      html`<div class="controls">
        <label>
          Promote into profile
          <input
            data-testid="promote-profile"
            placeholder="none: the catalog only"
            value=${profile}
            onInput=${(e: Event) => setProfile((e.target as HTMLInputElement).value)}
          />
        </label>
      </div>`
    }
    <div class="side-by-side">
      <div>
        <h3>Curated</h3>
        <${DataTable}
          id="curated"
          columns=${curatedColumns}
          rows=${data.models.filter((m) => m.source === 'curated')}
        />
      </div>
      <div>
        <h3>Discovered</h3>
        <${DataTable}
          id="discovered"
          columns=${discoveredColumns}
          rows=${data.models.filter((m) => m.source === 'discovered')}
          placeholder="nothing discovered: sync a provider"
        />
      </div>
    </div>
  </section>`;
}

/** A promotion's or enable/disable's answer: the policy commit and whether it went live. */
function ProposalOutcome(props: { answered: Answered }) {
  const { answered } = props;
  const body = answered.body as ProposalAnswer | undefined;
  const live = answered.ok && body?.apply !== undefined && !body.reverted;
  const problems = body?.problems ?? body?.plan?.problems ?? body?.apply?.problems ?? [];
  return html`<div class=${`outcome ${live ? 'good' : 'bad'}`} data-testid="outcome">
    <h3>${answered.label}: ${answered.ok ? (body?.apply?.outcome ?? 'no change') : 'refused'}</h3>
    ${answered.message && html`<p>${answered.message}</p>`}
    ${
      body?.commit &&
      html`<p data-testid="outcome-commit" data-commit=${body.commit}>
        policy commit <code>${shortCommit(body.commit)}</code>
        ${body.reverted ? html`, reverted by <code>${shortCommit(body.reverted)}</code>` : ''}
        ${body.apply?.commit ? html`; generated <code>${shortCommit(body.apply.commit)}</code>` : ''}
      </p>`
    }
    ${
      body?.apply &&
      html`<p
        data-testid="outcome-verified"
        data-verified=${String(body.apply.verify?.ok === true)}
      >
        ${body.apply.verify?.ok ? 'verified on every instance' : 'not verified'}
      </p>`
    }
    ${
      body?.plan &&
      html`<p class="muted">
        ${body.plan.added.length ? `served now: ${body.plan.added.join(', ')}. ` : ''}
        ${body.plan.removed.length ? `no longer served: ${body.plan.removed.join(', ')}.` : ''}
      </p>`
    }
    ${
      problems.length > 0 &&
      html`<ul>
        ${problems.map((p) => html`<li>${p}</li>`)}
      </ul>`
    }
  </div>`;
}
