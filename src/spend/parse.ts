import { describeError } from '../shared/errors.js';
import type { LedgerRow } from '../store/ledger.js';
import { isRejection, ledgerRow, type DeploymentCatalog } from './extract.js';

/** Complete spool lines parsed into ledger rows, with where each row's line ends. */
export interface ParsedChunk {
  rows: LedgerRow[];
  /** Byte offset (within the chunk) just past each row's line. */
  rowEnds: number[];
  lines: number;
  rejected: number;
  firstProblem?: string;
}

const NEWLINE = 0x0a;
const NO_CATALOG: DeploymentCatalog = () => undefined;

/**
 * Parses a buffer of complete lines (it ends with a newline). Rows carry LiteLLM's model and
 * provider; applyCatalog() replaces them with Model Center names afterwards. Prompt and response
 * content is kept only with `keepContent`. Pure.
 */
export function parseChunk(buffer: Uint8Array, keepContent = false): ParsedChunk {
  const bytes = Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const chunk: ParsedChunk = { rows: [], rowEnds: [], lines: 0, rejected: 0 };
  let start = 0;
  while (start < bytes.length) {
    let newline = bytes.indexOf(NEWLINE, start);
    if (newline < 0) newline = bytes.length;
    const text = bytes.toString('utf8', start, newline);
    start = newline + 1;
    if (text.trim() === '') continue;
    chunk.lines += 1;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      chunk.rejected += 1;
      chunk.firstProblem ??= `not JSON: ${describeError(error)}`;
      continue;
    }
    const row = ledgerRow(value, NO_CATALOG, keepContent);
    if (isRejection(row)) {
      chunk.rejected += 1;
      chunk.firstProblem ??= row.reason;
      continue;
    }
    chunk.rows.push(row);
    chunk.rowEnds.push(start);
  }
  return chunk;
}

/** Model and provider from the compiled config where the deployment is known. */
export function applyCatalog(rows: LedgerRow[], catalog: DeploymentCatalog): void {
  for (const row of rows) {
    const origin = row.deployment ? catalog(row.deployment) : undefined;
    if (origin) {
      row.model = origin.model;
      row.provider = origin.provider;
    }
  }
}
