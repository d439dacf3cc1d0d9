import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'spool');

/** A StandardLoggingPayload captured from the pinned LiteLLM (test/fixtures/spool/<name>.json). */
export function payloadFixture(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path.join(FIXTURES, `${name}.json`), 'utf8')) as Record<
    string,
    unknown
  >;
}

/** A payload like the tagged success fixture, with a new call id, start time and overrides. */
export function payload(
  callId: string,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  const base = payloadFixture('success-tagged');
  const start = 1_795_279_699.849443;
  return {
    ...base,
    litellm_call_id: callId,
    startTime: start,
    endTime: start + 0.25,
    ...overrides,
  };
}

export function spoolLine(value: unknown): string {
  return `${JSON.stringify(value)}\n`;
}
