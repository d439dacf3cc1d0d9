import { randomBytes } from 'node:crypto';

/** A key made at test time, never written in the repo. */
export function testKey(prefix = 'sk-test-'): string {
  return `${prefix}${randomBytes(24).toString('hex')}`;
}
