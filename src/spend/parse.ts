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
  /** Request records the line stands for (a `spool-lost` marker: how many were lost); else 1. */
  records?: number;
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
    const lost = spoolLost(value);
    if (lost) {
      deadLine(chunk, { start: lineStart, end: lineEnd, ...lost, text });
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

/** The field of the spool callback's marker line (litellm/modelcenter_spool.py, SPOOL_LOST_FIELD). */
const SPOOL_LOST_FIELD = 'modelcenter_spool_lost';

/** A marker line: the callback gave up on this many records (held back while it could not write). */
function spoolLost(value: unknown): Pick<DeadLine, 'reason' | 'detail' | 'records'> | undefined {
  if (typeof value !== 'object' || value === null || !(SPOOL_LOST_FIELD in value)) return undefined;
  const marker = value as Record<string, unknown>;
  const n = marker[SPOOL_LOST_FIELD];
  const records = typeof n === 'number' && Number.isSafeInteger(n) && n > 0 ? n : 1;
  const why = typeof marker.reason === 'string' ? marker.reason.slice(0, 200) : 'not written';
  return {
    reason: 'spool-lost',
    detail: `LiteLLM's spool callback (pid ${String(marker.pid)}) lost ${records} request record(s), ${why}: they are not in the ledger — keep free space in the state directory (MODELCENTER_SPOOL_PENDING_BYTES sets how much it holds in memory meanwhile)`,
    records,
  };
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
