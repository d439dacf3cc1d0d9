import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/metrics/metrics.js';
import {
  costUsd,
  storableText,
  tokenCount,
  type CleanedReason,
  type Flags,
} from '../../src/spend/clean.js';
import { DeadLetterBox, type DeadLetter } from '../../src/spend/dead-letter.js';
import { IngestBodyError, parseGenericApiBody, UnparsableLine } from '../../src/spend/ingest.js';

const found = (flags: Flags): CleanedReason[] => flags.found ?? [];

describe('values made storable', () => {
  it.each([
    ['plain text', 'fast/gpt-mini', 300, 'fast/gpt-mini', []],
    ['NUL removed', 'goal\u0000x\u0000', 300, 'goalx', ['nul']],
    ['a lone high surrogate', 'a\ud800b', 300, 'a\ufffdb', ['surrogate']],
    ['a lone low surrogate at the end', 'ab\udc00', 300, 'ab\ufffd', ['surrogate']],
    ['a well-formed pair kept', 'ok 😀', 300, 'ok 😀', []],
    ['cut to the byte limit', 'x'.repeat(400), 300, 'x'.repeat(300), ['long-value']],
    ['cut at a character boundary', '😀'.repeat(100), 10, '😀😀', ['long-value']],
    ['three-byte characters within the limit', 'é'.repeat(150), 300, 'é'.repeat(150), []],
  ])('%s', (_what, input, max, output, reasons) => {
    const flags: Flags = {};
    expect(storableText(input, max, flags)).toBe(output);
    expect(found(flags)).toEqual(reasons);
  });

  it.each([
    [undefined, 0, []],
    [null, 0, []],
    [0.25, 0.25, []],
    [0, 0, []],
    [-1e12, 0, ['cost']],
    [Infinity, 0, ['cost']],
    [NaN, 0, ['cost']],
    [2e6, 0, ['cost']],
    ['0.5', 0, ['cost']],
  ])('a cost of %s is stored as %s', (input, output, reasons) => {
    const flags: Flags = {};
    expect(costUsd(input, flags)).toBe(output);
    expect(found(flags)).toEqual(reasons);
  });

  it.each([
    [undefined, 0, []],
    [12.6, 13, []],
    [-5, 0, ['tokens']],
    [3e9, 0, ['tokens']],
    [-Infinity, 0, ['tokens']],
    [true, 0, ['tokens']],
  ])('a token count of %s is stored as %s', (input, output, reasons) => {
    const flags: Flags = {};
    expect(tokenCount(input, flags)).toBe(output);
    expect(found(flags)).toEqual(reasons);
  });
});

describe('generic_api bodies', () => {
  it('refuses a body with no JSON in it, saying what to send', () => {
    expect(() => parseGenericApiBody('this is not JSON')).toThrow(IngestBodyError);
    expect(() => parseGenericApiBody('this is not JSON')).toThrow(/not JSON: send a JSON array/);
    expect(() => parseGenericApiBody('42')).toThrow(/JSON number, not a StandardLoggingPayload/);
    expect(() => parseGenericApiBody('null')).toThrow(/JSON null/);
  });

  it('keeps the JSON lines of an NDJSON body and marks the others', () => {
    const items = parseGenericApiBody('{"a":1}\nbroken {\n{"b":2}\n');
    expect(items).toHaveLength(3);
    expect(items[1]).toBeInstanceOf(UnparsableLine);
    expect((items[1] as UnparsableLine).line).toBe('broken {');
    expect(parseGenericApiBody('  \n ')).toEqual([]);
  });
});

describe('the dead-letter box', () => {
  it('logs each kind of problem once and counts every one, for status and /metrics', () => {
    const warnings: string[] = [];
    const counted: string[] = [];
    const box = new DeadLetterBox({
      log: { warn: (_details, message) => warnings.push(message) },
      onCount: (outcome, reason, n) => counted.push(`${outcome}:${reason}:${n}`),
      now: () => new Date('2026-12-02T03:00:00Z'),
    });
    const letter: DeadLetter = {
      reason: 'not-json',
      detail: 'not JSON: Unexpected token',
      source: 'spool',
      file: 'spool-1-1-000000.jsonl',
      offset: 10,
      line: 'oops',
    };
    for (let i = 0; i < 5; i += 1) box.count('dead-lettered', letter);
    box.count('cleaned', 'nul', 3);
    box.count('cleaned', 'nul', 2);
    expect(warnings).toHaveLength(2);
    expect(box.summary()).toEqual({
      cleaned: { nul: 5 },
      deadLettered: { 'not-json': 5 },
      lastDeadLetter: {
        at: '2026-12-02T03:00:00.000Z',
        reason: 'not-json',
        detail: 'not JSON: Unexpected token',
        file: 'spool-1-1-000000.jsonl',
      },
    });
    expect(counted).toEqual([
      ...Array.from({ length: 5 }, () => 'dead-lettered:not-json:1'),
      'cleaned:nul:3',
      'cleaned:nul:2',
    ]);
  });

  it('exports every outcome and reason from the start, at 0', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.recordSpendProblem('cleaned', 'nul', 2);
    const text = await metrics.render();
    expect(text).toContain(
      'modelcenter_spend_records_problems_total{outcome="cleaned",reason="nul"} 2',
    );
    expect(text).toContain(
      'modelcenter_spend_records_problems_total{outcome="dead-lettered",reason="database"} 0',
    );
  });
});
