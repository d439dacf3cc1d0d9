import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { writeFileAtomically } from '../shared/fs.js';

/**
 * Every virtual-key rotation (and every first creation) is a record in the state directory, one
 * file per rotation id, written before each step LiteLLM sees: a crash or a lost answer resumes at
 * the record's phase on the next start, and each step checks LiteLLM before it acts, so a step run
 * twice does nothing the second time.
 */

export const PHASES = ['started', 'created', 'grace', 'done', 'failed'] as const;
export type Phase = (typeof PHASES)[number];

export const rotationSchema = z.object({
  id: z.string(),
  caller: z.string(),
  /** `create` makes the caller's first key; `rotate` replaces one. */
  kind: z.enum(['create', 'rotate']),
  /** Who asked: the API token's name, `cli`, `schedule`, `policy`. */
  by: z.string(),
  phase: z.enum(PHASES),
  startedAt: z.string(),
  updatedAt: z.string(),
  /** LiteLLM's token (SHA-256 of the value) of the key being replaced. */
  oldToken: z.string().optional(),
  newToken: z.string(),
  /**
   * The new key's value, kept (file mode 0600) only until it is delivered: a hook or a file gets it
   * once, or the API hands it out once. Never logged, never in an answer but that one read.
   */
  newValue: z.string().optional(),
  /** `regenerate`: LiteLLM's `/key/regenerate` keeps the old key for the grace (licence). */
  method: z.enum(['generate', 'regenerate']),
  graceSeconds: z.number(),
  deliveredAt: z.string().optional(),
  delivery: z.enum(['command', 'file', 'api']),
  /** When the old key is deleted (set once the new one is delivered). */
  revokeAt: z.string().optional(),
  error: z.string().optional(),
});
export type Rotation = z.infer<typeof rotationSchema>;

export class RotationJournal {
  constructor(private readonly dir: string) {}

  private file(id: string): string {
    return path.join(this.dir, `${id}.json`);
  }

  async save(rotation: Rotation): Promise<void> {
    const next = { ...rotation, updatedAt: new Date().toISOString() };
    await writeFileAtomically(this.file(rotation.id), `${JSON.stringify(next, null, 2)}\n`, {
      mode: 0o600,
    });
    Object.assign(rotation, next);
  }

  async get(id: string): Promise<Rotation | undefined> {
    try {
      return rotationSchema.parse(JSON.parse(await readFile(this.file(id), 'utf8')));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  /** Every rotation on record, oldest first. */
  async all(): Promise<Rotation[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const rotations = await Promise.all(
      names.filter((n) => n.endsWith('.json')).map((n) => this.get(n.slice(0, -'.json'.length))),
    );
    return rotations
      .filter((r): r is Rotation => r !== undefined)
      .sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  }

  /** The caller's rotation that has not ended (at most one at a time). */
  async open(caller: string): Promise<Rotation | undefined> {
    return (await this.all()).find(
      (r) => r.caller === caller && r.phase !== 'done' && r.phase !== 'failed',
    );
  }
}
