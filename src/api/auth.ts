import { createHash, timingSafeEqual } from 'node:crypto';

export type Scope = 'read' | 'admin';

export interface Tokens {
  read: readonly string[];
  admin: readonly string[];
}

export type AuthResult = { ok: true; scope: Scope; name: string } | { ok: false };

/**
 * A token as configured: `name=value` names it (the name authors the policy commits it makes
 * through the API), a bare value is named by its scope and a short fingerprint.
 */
export function tokenEntry(entry: string, scope: Scope): { name: string; value: string } {
  const named = /^([a-z0-9][a-z0-9._-]{0,63})=(.+)$/.exec(entry);
  if (named) return { name: named[1]!, value: named[2]! };
  return { name: `${scope}-token-${digest(entry).toString('hex').slice(0, 8)}`, value: entry };
}

/**
 * Which scope a bearer token grants. Constant-time: both sides are hashed to equal length and every
 * configured token is compared, whether or not an earlier one matched, so neither the position of a
 * match nor a common prefix shows in the timing.
 */
export function authorize(header: string | undefined, tokens: Tokens): AuthResult {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  const presented = digest(match?.[1] ?? '');
  let admin: string | undefined;
  let read: string | undefined;
  for (const token of tokens.admin) {
    const { name, value } = tokenEntry(token, 'admin');
    if (timingSafeEqual(presented, digest(value))) admin ??= name;
  }
  for (const token of tokens.read) {
    const { name, value } = tokenEntry(token, 'read');
    if (timingSafeEqual(presented, digest(value))) read ??= name;
  }
  if (!match) return { ok: false };
  if (admin) return { ok: true, scope: 'admin', name: admin };
  if (read) return { ok: true, scope: 'read', name: read };
  return { ok: false };
}

export function allows(granted: Scope, needed: Scope): boolean {
  return granted === 'admin' || needed === 'read';
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}
