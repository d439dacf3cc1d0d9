import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Delivery } from '../policy/schema.js';
import type { SecretStore } from '../secrets/store.js';
import { describeError } from '../shared/errors.js';
import { writeFileAtomically } from '../shared/fs.js';
import { fingerprint } from './audit.js';
import { runHook } from './hooks.js';

/**
 * Delivering a new key to whoever uses it (a master key's clients, a caller), three ways: a hook
 * command (the key on stdin, its fingerprint as last argument), a file (mode 0600, replaced
 * atomically), and one authenticated API read — the key waits in the secret store under
 * `delivery:<subject>` until it is read once or its rotation retires. Shared by the master key and
 * callers' virtual keys.
 */

/** The store name a pending delivery waits under. */
export function deliveryName(subject: string): string {
  return `delivery:${subject}`;
}

export interface DeliveryResult {
  /** What was done: `hook`, `file:/path`, `api-read`. */
  channels: string[];
  /** Channels that failed, with the reason (masked by the caller). */
  failed: string[];
}

/**
 * Delivers `value` for `subject`: the policy's hook and file (either may fail without stopping
 * the other), and a pending API read. Never throws: failures are returned for the audit.
 */
export async function deliverKey(options: {
  subject: string;
  value: string;
  rotationId: string;
  delivery: Delivery | undefined;
  store: SecretStore;
  baseDir: string;
  mask: (text: string) => string;
}): Promise<DeliveryResult> {
  const { delivery } = options;
  const result: DeliveryResult = { channels: [], failed: [] };
  if (delivery?.hook) {
    try {
      await runHook({
        what: `delivery hook of ${options.subject}`,
        command: delivery.hook,
        args: [fingerprint(options.value)],
        env: {
          MODELCENTER_NEW_FINGERPRINT: fingerprint(options.value),
          MODELCENTER_SUBJECT: options.subject,
          MODELCENTER_ROTATION_ID: options.rotationId,
        },
        stdin: `${options.value}\n`,
        mask: options.mask,
      });
      result.channels.push('hook');
    } catch (error) {
      result.failed.push(`hook: ${options.mask(describeError(error))}`);
    }
  }
  if (delivery?.file) {
    const file = path.resolve(options.baseDir, delivery.file);
    try {
      const repository = await committableIn(file, options.baseDir);
      if (repository) {
        throw new Error(
          `it is inside the repository ${repository} and git does not ignore it, so the key could be committed — deliver to a path outside the repository (e.g. /run/secrets/…), or ignore the file in .gitignore`,
        );
      }
      await writeFileAtomically(file, `${options.value}\n`, { mode: 0o600 });
      result.channels.push(`file:${file}`);
    } catch (error) {
      result.failed.push(`file ${file}: ${options.mask(describeError(error))}`);
    }
  }
  await options.store.put(deliveryName(options.subject), options.value);
  result.channels.push('api-read');
  return result;
}

/**
 * The repository that would commit `file`: the git work tree above `baseDir` (the policies) when
 * `file` is inside it and git does not ignore it; undefined when the file is safe to write.
 */
async function committableIn(file: string, baseDir: string): Promise<string | undefined> {
  let root = path.resolve(baseDir);
  while (!existsSync(path.join(root, '.git'))) {
    const parent = path.dirname(root);
    if (parent === root) return undefined;
    root = parent;
  }
  const relative = path.relative(root, file);
  if (relative.startsWith('..') || path.isAbsolute(relative)) return undefined;
  try {
    // Exit 0: ignored. 1: not ignored. Anything else (git missing): treat as committable.
    await promisify(execFile)('git', ['-C', root, 'check-ignore', '-q', '--', relative]);
    return undefined;
  } catch {
    return root;
  }
}

/** Whether a delivery of `subject` waits to be read (HEAD asks this; it consumes nothing). */
export async function deliveryPending(store: SecretStore, subject: string): Promise<boolean> {
  return (await store.get(deliveryName(subject))) !== undefined;
}

/** The pending delivery of `subject`, read once: returned and removed. */
export async function readDeliveryOnce(
  store: SecretStore,
  subject: string,
): Promise<string | undefined> {
  const name = deliveryName(subject);
  const pending = await store.get(name);
  if (!pending) return undefined;
  await store.delete(name);
  return pending.current.value;
}
