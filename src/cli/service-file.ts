import { rm } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { readIfExists, writeFileAtomically } from '../shared/fs.js';

/**
 * `.modelcenter/service.json`: where the running `serve` is. Written atomically once it serves,
 * removed when it stops; every CLI command reads it to find the API, LiteLLM and the generated
 * keys whatever ports were chosen. A file whose pid is gone (kill -9) is stale and ignored.
 */
export const serviceFileSchema = z.object({
  apiUrl: z.string(),
  litellmUrl: z.string().optional(),
  pid: z.number().int(),
  strategy: z.string(),
  startedAt: z.string(),
  /** The local demo upstream, when no provider key was set. */
  demoUrl: z.string().optional(),
});
export type ServiceFile = z.infer<typeof serviceFileSchema>;

export function serviceFilePath(stateDir: string): string {
  return path.join(stateDir, 'service.json');
}

export async function writeServiceFile(stateDir: string, service: ServiceFile): Promise<void> {
  await writeFileAtomically(serviceFilePath(stateDir), `${JSON.stringify(service, null, 2)}\n`);
}

/** Removes the file if it is still this process's (a newer `serve` may have replaced it). */
export async function removeServiceFile(stateDir: string, pid = process.pid): Promise<void> {
  const found = await readServiceFile(stateDir, { includeStale: true });
  if (found?.pid === pid) await rm(serviceFilePath(stateDir), { force: true });
}

/** The running service, or undefined when there is no file, it is unreadable, or its pid is gone. */
export async function readServiceFile(
  stateDir: string,
  options: { includeStale?: boolean } = {},
): Promise<ServiceFile | undefined> {
  const text = await readIfExists(serviceFilePath(stateDir));
  if (text === undefined) return undefined;
  let parsed;
  try {
    parsed = serviceFileSchema.safeParse(JSON.parse(text));
  } catch {
    return undefined;
  }
  if (!parsed.success) return undefined;
  if (!options.includeStale && !alive(parsed.data.pid)) return undefined;
  return parsed.data;
}

/** Whether a process with this pid exists (signal 0 checks without sending anything). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The state directory the CLI uses: MODELCENTER_STATE_DIR, else `.modelcenter`, from `cwd`. */
export function cliStateDir(env: NodeJS.ProcessEnv, cwd: string): string {
  return path.resolve(cwd, env.MODELCENTER_STATE_DIR ?? '.modelcenter');
}

/** The generated LiteLLM master key: LITELLM_MASTER_KEY, else the one `serve` generated. */
export async function cliMasterKey(
  env: NodeJS.ProcessEnv,
  stateDir: string,
): Promise<string | undefined> {
  return env.LITELLM_MASTER_KEY ?? (await readIfExists(path.join(stateDir, 'master-key')))?.trim();
}
