import type { z } from 'zod';
import { ModelCenterError } from '../shared/errors.js';
import type { Queryable } from '../store/db.js';
import { attemptsOfCall } from '../store/ledger.js';
import type { callRecordSchema } from './schema.js';
import { formatCount, formatUsd } from '../shared/format.js';

/** A call id the ledger does not hold. */
export class UnknownCallError extends ModelCenterError {}

/** One call as `spend show` and `GET /v1/spend/requests/{callId}` answer it. */
export type CallRecord = z.output<typeof callRecordSchema>;

/** Every recorded attempt of a call, with prompt and response where the ledger kept them. */
export async function callRecord(db: Queryable, callId: string): Promise<CallRecord> {
  const attempts = await attemptsOfCall(db, callId);
  if (attempts.length === 0) {
    throw new UnknownCallError(
      `no request with call id "${callId}" in the spend ledger — use the x-litellm-call-id header of LiteLLM's answer; a request shows up about a second after it finished, and raw rows older than MODELCENTER_SPEND_RETENTION are pruned`,
    );
  }
  return {
    callId,
    attempts: attempts.map((a) => ({
      ...a,
      startedAt: a.startedAt.toISOString(),
      endedAt: a.endedAt.toISOString(),
    })),
    costUsd: attempts.reduce((sum, a) => sum + a.costUsd, 0),
  };
}

/** A call for people: one block per attempt, content as indented JSON. Pure. */
export function formatCall(record: CallRecord): string {
  const lines = [
    `call ${record.callId}: ${record.attempts.length} attempt(s), $${usd(record.costUsd)}`,
  ];
  record.attempts.forEach((a, i) => {
    const where = [a.provider, a.deployment && `deployment ${a.deployment}`].filter(Boolean);
    lines.push(
      '',
      `attempt ${i + 1}  ${a.startedAt}  ${a.status}${a.errorClass ? ` ${a.errorClass}${a.errorCode ? ` (${a.errorCode})` : ''}` : ''}`,
      `  profile ${a.profile ?? '-'}  model ${a.model ?? '-'}${where.length > 0 ? ` (${where.join(', ')})` : ''}`,
      `  tokens ${formatCount(a.tokensIn)} in / ${formatCount(a.tokensOut)} out  cost $${usd(a.costUsd)}  latency ${ms(a.latencyMs)}  ttft ${ms(a.ttftMs)}${a.cacheHit ? '  cache hit' : ''}`,
      `  goal ${a.goal ?? '-'}  caller ${a.caller ?? '-'}  conversation ${a.conversation ?? '-'}`,
    );
    if (a.cleaned) lines.push(`  cleaned to be stored: ${a.cleaned.join(', ')}`);
    if (!a.content) {
      lines.push('  content: not kept (policies: spend.keep_content is off, or it was not logged)');
      return;
    }
    lines.push(
      '  messages:',
      indent(a.content.messages),
      '  response:',
      indent(a.content.response),
    );
  });
  return `${lines.join('\n')}\n`;
}

function usd(value: number): string {
  return formatUsd(value);
}

function ms(value: number | null): string {
  return value === null ? '-' : `${Math.round(value)} ms`;
}

function indent(value: unknown): string {
  return (JSON.stringify(value, null, 2) ?? 'null')
    .split('\n')
    .map((line) => `    ${line}`)
    .join('\n');
}
