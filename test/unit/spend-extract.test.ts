import { describe, expect, it } from 'vitest';
import { deploymentCatalog, isRejection, ledgerRow } from '../../src/spend/extract.js';
import { payloadOfSpendLog, spendLogSeconds } from '../../src/spend/backfill.js';
import { parseChunk } from '../../src/spend/parse.js';
import type { LedgerRow } from '../../src/store/ledger.js';
import { payload, payloadFixture } from '../helpers/spool.js';

const none = deploymentCatalog(undefined);

function row(value: unknown): LedgerRow {
  const result = ledgerRow(value, none);
  if (isRejection(result)) throw new Error(result.reason);
  return result;
}

describe('ledger rows from LiteLLM payloads', () => {
  it('reads goal and caller from tags, conversation from metadata, and the real usage and cost', () => {
    const r = row(payloadFixture('success-tagged'));
    expect(r).toMatchObject({
      callId: 'acb8552a-b649-44de-9beb-d00c0bf2796c',
      status: 'success',
      goal: 'q-report',
      caller: 'alice',
      conversation: 'c1',
      profile: 'gpt-mini',
      deployment: 'gpt-mini',
      model: 'openai/gpt-4o-mini',
      provider: 'openai',
      tokensIn: 3,
      tokensOut: 16,
      costUsd: 1.005e-5,
      ttftMs: null,
      errorClass: null,
    });
    expect(r.latencyMs).toBeCloseTo(778.08, 1);
  });

  it('gives streamed requests a time to first token', () => {
    const r = row(payloadFixture('success-streamed'));
    expect(r.ttftMs).toBeCloseTo(67.7, 0);
    expect(r.ttftMs!).toBeLessThan(r.latencyMs!);
  });

  it('records failures with their error class and HTTP code, and no cost', () => {
    expect(row(payloadFixture('failure-429'))).toMatchObject({
      status: 'failure',
      errorClass: 'RateLimitError',
      errorCode: '429',
      costUsd: 0,
    });
    expect(row(payloadFixture('failure-500'))).toMatchObject({
      errorClass: 'InternalServerError',
      errorCode: '500',
    });
  });

  it('keeps a fallback attempt and the final success of one request as two rows of one call id', () => {
    const first = row(payloadFixture('failure-fallback-first'));
    const second = row(payloadFixture('success-fallback-second'));
    expect(first.callId).toBe(second.callId);
    expect([first.status, second.status]).toEqual(['failure', 'success']);
    expect(first.startedAt).not.toBe(second.startedAt);
  });

  it('takes context from metadata, spend_logs_metadata, the key alias and the session id', () => {
    const fromMetadata = row(
      payload('m', {
        request_tags: [],
        session_id: 'sess-9',
        metadata: {
          user_api_key_alias: 'research-agent',
          requester_metadata: { goal: 'launch' },
          spend_logs_metadata: { caller: 'from-spend-logs' },
        },
      }),
    );
    expect(fromMetadata).toMatchObject({
      goal: 'launch',
      caller: 'from-spend-logs',
      conversation: 'sess-9',
    });
    const aliasOnly = row(
      payload('a', { request_tags: [], metadata: { user_api_key_alias: 'research-agent' } }),
    );
    expect(aliasOnly).toMatchObject({ goal: null, caller: 'research-agent', conversation: null });
    const tagWins = row(
      payload('t', {
        request_tags: ['caller:bot-1', 'goal:x'],
        metadata: { user_api_key_alias: 'k', requester_metadata: { caller: 'meta' } },
      }),
    );
    expect(tagWins).toMatchObject({ caller: 'bot-1', goal: 'x' });
  });

  it('names the catalog model and policy provider behind a deployment id', () => {
    const catalog = deploymentCatalog({
      model_list: [
        {
          model_name: 'gpt-mini',
          litellm_params: { model: 'openai/gpt-4o-mini' },
          model_info: {
            id: 'gpt-mini',
            mode: 'chat',
            modelcenter_model: 'gpt-mini',
            modelcenter_provider: 'openai-prod',
          },
        },
      ],
      router_settings: { enable_pre_call_checks: true },
      litellm_settings: { drop_params: true },
      general_settings: { master_key: 'os.environ/K' },
    });
    const r = ledgerRow(payloadFixture('success-tagged'), catalog);
    expect(r).toMatchObject({ model: 'gpt-mini', provider: 'openai-prod' });
  });

  it('cuts a goal, caller or conversation over 200 characters, flags it and keeps surrogate pairs whole', () => {
    const long = row(
      payload('long', {
        request_tags: [`goal:${'g'.repeat(5000)}`, `caller:${'c'.repeat(199)}😀😀`],
      }),
    );
    expect(long.goal).toBe('g'.repeat(200));
    expect(long.caller).toBe('c'.repeat(199)); // the emoji's pair is not cut in half
    expect(long.cleaned).toEqual(['long-value']);
    expect(row(payload('short', { request_tags: [`goal:${'g'.repeat(200)}`] })).cleaned).toBe(
      undefined,
    );
  });

  it('rejects what is not a request record, saying why', () => {
    const rejection = ledgerRow({ hello: 1 }, none);
    expect(isRejection(rejection) && rejection.reason).toMatch(/StandardLoggingPayload/);
    expect(ledgerRow({ startTime: 1 }, none)).toEqual({
      kind: 'not-a-payload',
      reason: 'no litellm_call_id',
    });
  });
});

describe('spool chunk parsing', () => {
  it('parses complete lines, skips blank ones, and says where each row ends', () => {
    const lines = [
      JSON.stringify(payloadFixture('success-tagged')),
      'not json',
      '',
      JSON.stringify(payloadFixture('failure-429')),
    ];
    const buffer = new TextEncoder().encode(`${lines.join('\n')}\n`);
    const chunk = parseChunk(buffer);
    expect(chunk).toMatchObject({
      lines: 3,
      rejected: 1,
      firstProblem: expect.stringMatching(/^not JSON/) as string,
    });
    expect(chunk.rows.map((r) => r.status)).toEqual(['success', 'failure']);
    expect(chunk.rowEnds).toEqual([Buffer.byteLength(`${lines[0]}\n`), buffer.byteLength]);
  });
});

describe("LiteLLM spend-log times (the backfill's rows)", () => {
  const second = Date.parse('2026-11-20T10:00:00Z') / 1000;
  it.each([
    ['2026-11-20T10:00:00.123000+00:00', second + 0.123],
    ['2026-11-20T10:00:00.123456', second + 0.123456],
    ['2026-11-20 10:00:00.5Z', second + 0.5],
    ['2026-11-20T12:00:00+02:00', second],
    ['2026-11-20T10:00:00', second],
  ])('%s is read as UTC to the microsecond', (text, seconds) => {
    expect(spendLogSeconds(text)).toBeCloseTo(seconds, 6);
  });

  it('a time it cannot read makes the row a rejection, not a row at 1970', () => {
    const result = ledgerRow(payloadOfSpendLog({ request_id: 'r1', startTime: 'yesterday' }), none);
    expect(isRejection(result)).toBe(true);
  });
});
