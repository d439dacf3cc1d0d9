import { inject } from 'vitest';

/** LiteLLM's cold start on an idle two-core machine, where the suite's base timeouts were set. */
const REFERENCE_COLD_START_MS = 6_000;

/**
 * How much slower than the reference this machine starts LiteLLM right now (at least 1, at most
 * 10): measured once by the global set-up, before any test file runs.
 */
export function loadFactor(): number {
  const measured = inject('litellmColdStartMs');
  return Math.min(10, Math.max(1, measured / REFERENCE_COLD_START_MS));
}

/** A timeout set on an idle machine, stretched by the measured load factor. */
export function scaled(ms: number): number {
  return Math.round(ms * loadFactor());
}

/** The measured cold start of LiteLLM here (ms). */
export function coldStartMs(): number {
  return inject('litellmColdStartMs');
}
