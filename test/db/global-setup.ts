import type { TestProject } from 'vitest/node';
import { prepareLiteLLMDb, type LiteLLMDbContext } from '../helpers/litellm-db.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The PostgreSQL cluster with LiteLLM's migrated template database, and the Prisma environment. */
    litellmDb: LiteLLMDbContext;
  }
}

/**
 * Database mode, once per run: the Prisma engines, the generated client, one PostgreSQL cluster
 * and the template database LiteLLM migrated (test/helpers/litellm-db.ts). Runs after
 * test/global-setup.ts (LiteLLM installed, cold start measured).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = performance.now();
  const { context, cluster } = await prepareLiteLLMDb();
  process.stdout.write(
    `LiteLLM database mode prepared (engines, prisma generate, migrated template) in ${((performance.now() - started) / 1000).toFixed(1)} s\n`,
  );
  project.provide('litellmDb', context);
  return () => cluster.stop();
}
