import { statfs } from 'node:fs/promises';
import { ModelCenterError } from './errors.js';

/**
 * Words a full disk leaves in an error: Node's ENOSPC/EDQUOT codes, and the text git ("Out of
 * diskspace"), Postgres/PGlite ("could not extend file …: No space left on device") and Python
 * write when they only hand over a message.
 */
const DISK_FULL_TEXT =
  /no space left on device|out of diskspace|disk quota exceeded|\bENOSPC\b|\bEDQUOT\b/i;

/** Whether `error` (or one of its causes) says the disk is full. */
export function isDiskFull(error: unknown): boolean {
  for (let e = error, depth = 0; e !== undefined && e !== null && depth < 6; depth += 1) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') return true;
    const message = e instanceof Error ? e.message : typeof e === 'string' ? e : '';
    if (DISK_FULL_TEXT.test(message)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * The disk holding `dir` is full: what failed, and that freeing space there is the fix. The API
 * answers it with 507; it is an operational failure (the next attempt after space is freed works).
 */
export class DiskFullError extends ModelCenterError {
  constructor(
    readonly dir: string,
    what: string,
    consequence: string,
    options?: { cause?: unknown },
  ) {
    super(
      `${what}: the disk holding ${dir} is full (no space left on device) — free space there (df -h ${dir}); ${consequence}`,
      options,
    );
  }
}

/** Below this much free space a disk counts as full: a spool batch or a ledger page no longer fits. */
const FULL_BELOW_BYTES = 1024 * 1024;

/** The free space of the disk holding `dir`, as the status shows it. */
export interface DiskSpace {
  dir: string;
  freeBytes: number;
  totalBytes: number;
  /** Less than 1 MiB free: writes (spool, ledger, git, secrets) fail or are about to. */
  full: boolean;
}

/** How much room the disk holding `dir` has left; undefined when it cannot be read. */
export async function diskSpace(dir: string): Promise<DiskSpace | undefined> {
  try {
    const fs = await statfs(dir);
    const freeBytes = fs.bavail * fs.bsize;
    return { dir, freeBytes, totalBytes: fs.blocks * fs.bsize, full: freeBytes < FULL_BELOW_BYTES };
  } catch {
    return undefined;
  }
}
