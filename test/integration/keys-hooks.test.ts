import { describe, expect, it } from 'vitest';
import { HookError, runHook } from '../../src/keys/hooks.js';
import { SecretValues } from '../../src/log/redact.js';
import { testKey } from '../helpers/secrets.js';

describe('key hooks (retire, issue, delivery commands)', () => {
  it('a string runs with sh -c: the value on stdin, arguments as $1…, extra environment', async () => {
    const value = testKey();
    const out = await runHook({
      what: 'test hook',
      command: 'printf "%s|%s|%s" "$1" "$MODELCENTER_OLD_FINGERPRINT" "$(cat)"',
      args: ['abc123'],
      env: { MODELCENTER_OLD_FINGERPRINT: 'abc123' },
      stdin: value,
      mask: (t) => t,
    });
    expect(out).toBe(`abc123|abc123|${value}`);
  });

  it('an argument list runs without a shell', async () => {
    const out = await runHook({
      what: 'test hook',
      command: ['printf', '%s', '$HOME; echo no'],
      mask: (t) => t,
    });
    expect(out).toBe('$HOME; echo no');
  });

  it('a failing hook names itself and its exit code; a value it prints on stderr is masked', async () => {
    const value = testKey();
    const secrets = new SecretValues();
    secrets.add(value);
    const failure = runHook({
      what: 'retire hook of provider "openai"',
      command: 'v=$(cat); echo "refused $v" >&2; exit 3',
      stdin: value,
      mask: (t) => secrets.mask(t),
    });
    await expect(failure).rejects.toThrow(HookError);
    const message = await failure.catch((e: Error) => e.message);
    expect(message).toMatch(
      /^retire hook of provider "openai" failed \(exit code 3\): refused \[REDACTED\]$/,
    );
    expect(message).not.toContain(value);
  });

  it('a hook that hangs is killed after its timeout', async () => {
    await expect(
      runHook({ what: 'slow hook', command: 'sleep 30', timeoutMs: 300, mask: (t) => t }),
    ).rejects.toThrow(/slow hook failed \(killed by SIGKILL, timed out\)/);
  });
});
