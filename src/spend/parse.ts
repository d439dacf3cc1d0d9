import { describeError } from '../shared/errors.js';
import type { LedgerRow } from '../store/ledger.js';
import type { DeadLetterReason } from './clean.js';
import { isRejection, ledgerRow, type DeploymentCatalog } from './extract.js';

/** A complete line that cannot be a ledger row, and why. */
export interface DeadLine {
  /** Byte offsets (within the chunk) of the line's start and just past its newline. */
  start: number;
  end: number;
  reason: DeadLetterReason;
  detail: string;
  text: string;
}

/** Complete spool lines parsed into ledger rows, with where each row's line starts and ends. */
export interface ParsedChunk {
  rows: LedgerRow[];
  /** Byte offset (within the chunk) of the start of each row's line. */
  rowStarts: number[];
  /** Byte offset (within the chunk) just past each row's line. */
  rowEnds: number[];
  /** Lines that are not request records, in order (they go to the dead-letter file). */
  dead: DeadLine[];
  lines: number;
  rejected: number;
  firstProblem?: string;
}

const NEWLINE = 0x0a;
const NO_CATALOG: DeploymentCatalog = () => undefined;

/**
 * Parses a buffer of complete lines (it ends with a newline). Rows carry LiteLLM's model and
 * provider; applyCatalog() replaces them with Model Center names afterwards. Prompt and response
 * content is kept only with `keepContent`. Never throws: a line is a row or a dead line. Pure.
 */
export function parseChunk(buffer: Uint8Array, keepContent = false): ParsedChunk {
  const bytes = Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const chunk: ParsedChunk = {
    rows: [],
    rowStarts: [],
    rowEnds: [],
    dead: [],
    lines: 0,
    rejected: 0,
  };
  let start = 0;
  while (start < bytes.length) {
    let newline = bytes.indexOf(NEWLINE, start);
    if (newline < 0) newline = bytes.length;
    const text = bytes.toString('utf8', start, newline);
    const lineStart = start;
    const lineEnd = newline + 1;
    start = lineEnd;
    if (text.trim() === '') continue;
    chunk.lines += 1;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      deadLine(chunk, {
        start: lineStart,
        end: lineEnd,
        reason: 'not-json',
        detail: `not JSON: ${describeError(error)}`,
        text,
      });
      continue;
    }
    const row = ledgerRow(value, NO_CATALOG, keepContent);
    if (isRejection(row)) {
      deadLine(chunk, {
        start: lineStart,
        end: lineEnd,
        reason: row.kind,
        detail: row.reason,
        text,
      });
      continue;
    }
    chunk.rows.push(row);
    chunk.rowStarts.push(lineStart);
    chunk.rowEnds.push(lineEnd);
  }
  return chunk;
}

function deadLine(chunk: ParsedChunk, line: DeadLine): void {
  chunk.rejected += 1;
  chunk.firstProblem ??= line.detail;
  chunk.dead.push(line);
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
