import { Option, type Command } from 'commander';
import type { z } from 'zod';
import type { healthReportSchema } from '../../health/schema.js';
import { action, type CliContext } from '../context.js';
import { EXIT, type ExitCode } from '../exit-codes.js';
import type { CliIo } from '../io.js';
import { askService, serviceError } from '../service-client.js';

type HealthReport = z.infer<typeof healthReportSchema>;

/**
 * `providers health`: asks the running service (`GET /v1/health/providers`). Joins the
 * `providers` group when another verb file made it already, so either may register first.
 */
export function registerProvidersHealth(program: Command, context: CliContext): void {
  const providers =
    program.commands.find((c) => c.name() === 'providers') ??
    program.command('providers').summary('provider health, discovery and tests');
  providers
    .command('health')
    .summary("each provider's error rate, latency, probes and demotion (from the running service)")
    .description(
      "Each provider's and deployment's live error rate, p50/p95 latency and time to first token over the sliding window, LiteLLM's background probes, and demotions — asked from the running service (MODELCENTER_URL, MODELCENTER_TOKEN). Exit 2 when a provider is failing or demoted.",
    )
    .addOption(
      new Option('--format <format>', 'output').choices(['table', 'json']).default('table'),
    )
    .action(
      action(context, (options: { format: string }) =>
        healthCommand(context.env, context.io, options.format === 'json'),
      ),
    );
}

async function healthCommand(env: NodeJS.ProcessEnv, io: CliIo, json: boolean): Promise<ExitCode> {
  // The running service wherever it listens (service.json), as every other CLI command finds it.
  const reply = await askService('/v1/health/providers', {}, env, io, 'GET');
  if ('failed' in reply) return reply.failed;
  const failed = serviceError(reply, io);
  if (failed !== undefined) return failed;
  const answer = reply.answer;
  const report = answer as unknown as HealthReport;
  if (json) io.stdout(`${JSON.stringify(report, null, 2)}\n`);
  else io.stdout(formatHealth(report));
  const trouble = (report.providers ?? []).some((p) => p.condition === 'failing' || p.demoted);
  return trouble ? EXIT.operationalFailure : EXIT.ok;
}

/** The report as a table: one line per provider, its deployments indented below. */
export function formatHealth(report: HealthReport): string {
  const rows: string[][] = [
    ['PROVIDER / DEPLOYMENT', 'STATE', 'REQS', 'ERR%', 'P50 MS', 'P95 MS', 'TTFT P50', 'PROBE'],
  ];
  const ms = (v: number | undefined): string => (v === undefined ? '-' : String(Math.round(v)));
  for (const p of report.providers ?? []) {
    const state = p.demoted ? `demoted (${p.condition})` : p.condition;
    const probes = p.probes ? `${p.probes.healthy} ok / ${p.probes.unhealthy} down` : '-';
    rows.push([
      p.provider,
      state,
      String(p.requests),
      (p.errorRate * 100).toFixed(1),
      ms(p.p50LatencyMs),
      ms(p.p95LatencyMs),
      ms(p.p50TtftMs),
      probes,
    ]);
    for (const d of p.deployments) {
      rows.push([
        `  ${d.deployment}`,
        '',
        String(d.requests),
        (d.errorRate * 100).toFixed(1),
        ms(d.p50LatencyMs),
        ms(d.p95LatencyMs),
        ms(d.p50TtftMs),
        d.probe ? (d.probe.healthy ? 'ok' : 'down') : '-',
      ]);
    }
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) =>
    r
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
  const budget = report.demotion
    ? `health reloads in the last hour: ${report.demotion.reloadsLastHour} of ${report.demotion.maxReloadsPerHour}${report.demotion.deferredUntil ? ` (moves wait until ${report.demotion.deferredUntil})` : ''}`
    : '';
  const demoted = (report.providers ?? [])
    .filter((p) => p.demoted)
    .map((p) => `demoted ${p.provider} since ${p.demoted!.since}: ${p.demoted!.reason}`);
  return [
    `window ${report.windowSeconds} s, evaluated ${report.evaluatedAt}`,
    ...lines,
    ...demoted,
    budget,
    '',
  ].join('\n');
}
