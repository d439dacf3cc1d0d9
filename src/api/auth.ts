import { createHash, timingSafeEqual } from 'node:crypto';

export type Scope = 'read' | 'admin';

export interface Tokens {
  read: readonly string[];
  admin: readonly string[];
}

export type AuthResult = { ok: true; scope: Scope } | { ok: false };

/**
 * Which scope a bearer token grants. Constant-time: both sides are hashed to equal length and every
 * configured token is compared, whether or not an earlier one matched, so neither the position of a
 * match nor a common prefix shows in the timing.
 */
export function authorize(header: string | undefined, tokens: Tokens): AuthResult {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  const presented = digest(match?.[1] ?? '');
  let admin = false;
  let read = false;
  for (const token of tokens.admin) admin = timingSafeEqual(presented, digest(token)) || admin;
  for (const token of tokens.read) read = timingSafeEqual(presented, digest(token)) || read;
  if (!match) return { ok: false };
  if (admin) return { ok: true, scope: 'admin' };
  if (read) return { ok: true, scope: 'read' };
  return { ok: false };
}

export function allows(granted: Scope, needed: Scope): boolean {
  return granted === 'admin' || needed === 'read';
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/**
 * The name a request's token goes by in the audit trail: its scope and the first 12 hex
 * characters of its SHA-256 (`admin:3fa1…`), stable when the token list is reordered and useless
 * to guess the token from. Only for a header `authorize` accepted.
 */
export function tokenName(header: string | undefined, scope: Scope): string {
  const token = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1] ?? '';
  return `${scope}:${digest(token).toString('hex').slice(0, 12)}`;
}
