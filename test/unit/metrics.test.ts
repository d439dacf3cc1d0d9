import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log/logger.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { Scheduler } from '../../src/scheduler/scheduler.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text format 0.0.4: `name{a="x",b="y"} value` lines, `#` lines are metadata. */
function parse(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type?.[1] && type[2]) types.set(type[1], type[2]);
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match?.[1] || match[3] === undefined) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      if (key !== undefined && value !== undefined) labels[key] = value;
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return { samples, types };
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter(
    (s) =>
      s.name === name &&
      Object.entries(labels).every(([k, v]) => s.labels[k] === v) &&
      Object.keys(s.labels).length === Object.keys(labels).length,
  );
  if (found.length !== 1)
    throw new Error(`${found.length} samples for ${name} ${JSON.stringify(labels)}`);
  return found[0]?.value ?? NaN;
}

describe('metrics: Prometheus text at /metrics', () => {
  it('counts applies by outcome and observes their duration', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.recordApply('applied', 4.2);
    metrics.recordApply('applied', 0.3);
    metrics.recordApply('rolled-back', 12);
    const { samples, types } = parse(await metrics.render());

    expect(types.get('modelcenter_applies_total')).toBe('counter');
    expect(value(samples, 'modelcenter_applies_total', { outcome: 'applied' })).toBe(2);
    expect(value(samples, 'modelcenter_applies_total', { outcome: 'rolled-back' })).toBe(1);
    // Outcomes that never happened are there with 0, so an alert on them works from the start.
    expect(value(samples, 'modelcenter_applies_total', { outcome: 'failed' })).toBe(0);
    expect(types.get('modelcenter_apply_duration_seconds')).toBe('histogram');
    expect(value(samples, 'modelcenter_apply_duration_seconds_count')).toBe(3);
    expect(value(samples, 'modelcenter_apply_duration_seconds_sum')).toBeCloseTo(16.5);
    expect(value(samples, 'modelcenter_apply_duration_seconds_bucket', { le: '5' })).toBe(2);
    expect(value(samples, 'modelcenter_apply_duration_seconds_bucket', { le: '+Inf' })).toBe(3);
  });

  it('HTTP requests by method, route template and status, with a duration histogram', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.recordHttp('get', '/v1/status', 200, 0.004);
    metrics.recordHttp('GET', '/v1/status', 200, 0.02);
    metrics.recordHttp('POST', '/v1/apply', 403, 0.001);
    metrics.recordHttp('BREW', 'unmatched', 404, 0.001);
    const { samples } = parse(await metrics.render());
    const requests = 'modelcenter_http_requests_total';

    expect(value(samples, requests, { method: 'GET', route: '/v1/status', status: '200' })).toBe(2);
    expect(value(samples, requests, { method: 'POST', route: '/v1/apply', status: '403' })).toBe(1);
    // A made-up method does not become a label value of its own.
    expect(value(samples, requests, { method: 'OTHER', route: 'unmatched', status: '404' })).toBe(
      1,
    );
    const duration = 'modelcenter_http_request_duration_seconds';
    expect(value(samples, `${duration}_count`, { method: 'GET', route: '/v1/status' })).toBe(2);
    expect(
      value(samples, `${duration}_bucket`, { method: 'GET', route: '/v1/status', le: '0.005' }),
    ).toBe(1);
  });

  it('the reload strategy is one info series; drift is a gauge by kind', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.setStrategy('restart');
    metrics.setStrategy('admin-api');
    metrics.setDrift('config-edited', true);
    metrics.setDrift('live-models', 3);
    metrics.setDrift('live-models', 0);
    const { samples } = parse(await metrics.render());

    const strategies = samples.filter((s) => s.name === 'modelcenter_reload_strategy_info');
    expect(strategies).toEqual([
      { name: 'modelcenter_reload_strategy_info', labels: { strategy: 'admin-api' }, value: 1 },
    ]);
    expect(value(samples, 'modelcenter_drift', { kind: 'config-edited' })).toBe(1);
    expect(value(samples, 'modelcenter_drift', { kind: 'live-models' })).toBe(0);
  });

  it('the scheduler records job runs through its metrics hook', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const scheduler = new Scheduler({ logger: silentLogger(), metrics });
    let fail = false;
    scheduler.register({
      name: 'drift-check',
      schedule: '*/5 * * * *',
      run: () => {
        if (fail) throw new Error('git state unreadable');
      },
    });
    await scheduler.runNow('drift-check');
    fail = true;
    await scheduler.runNow('drift-check');
    await scheduler.stop();
    const { samples } = parse(await metrics.render());

    const runs = 'modelcenter_job_runs_total';
    expect(value(samples, runs, { job: 'drift-check', outcome: 'ok' })).toBe(1);
    expect(value(samples, runs, { job: 'drift-check', outcome: 'failed' })).toBe(1);
    expect(value(samples, 'modelcenter_job_duration_seconds_count', { job: 'drift-check' })).toBe(
      2,
    );
  });

  it('process metrics (memory, CPU, event loop) come with it, under their standard names', async () => {
    const metrics = new Metrics();
    const text = await metrics.render();
    const { samples } = parse(text);
    expect(value(samples, 'process_resident_memory_bytes')).toBeGreaterThan(10_000_000);
    expect(value(samples, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    expect(samples.some((s) => s.name === 'process_cpu_seconds_total')).toBe(true);
    expect(metrics.contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
    // Its own registry: a second instance neither fails nor shares counts.
    const other = new Metrics();
    other.recordApply('failed', 1);
    expect(
      value(parse(await metrics.render()).samples, 'modelcenter_applies_total', {
        outcome: 'failed',
      }),
    ).toBe(0);
  });
});
