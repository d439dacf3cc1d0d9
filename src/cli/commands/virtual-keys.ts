import type { Command } from 'commander';
import { action, type CliContext } from '../context.js';
import { EXIT, type ExitCode } from '../exit-codes.js';
import { askService, serviceError } from '../service-client.js';

/**
 * `keys rotate CALLER` and `keys read CALLER`: callers' virtual keys, through the running service
 * (it holds the rotation journal and LiteLLM's master key). Added to the `keys` group, made here
 * when no other file made it first.
 */
export function registerVirtualKeys(program: Command, context: CliContext): void {
  const keys =
    program.commands.find((c) => c.name() === 'keys') ??
    program
      .command('keys')
      .summary('keys: callers’ virtual keys, rotations')
      .description('Keys: rotate callers’ LiteLLM virtual keys and read a delivered one.');

  keys
    .command('rotate')
    .argument('<caller>', 'a caller with callers.<caller>.key in the policies')
    .summary("rotate a caller's virtual key: new → deliver → grace → delete old")
    .description(
      "Rotates the caller's LiteLLM virtual key (database mode): a new key is made and delivered (the caller's deliver hook or file, or one read with `keys read`), the old one keeps working for the grace period, then it is deleted. Repeat with the same --rotation-id after a lost answer: the same rotation carries on.",
    )
    .option('--rotation-id <id>', 'make the request retry-safe with an id of your own')
    .action(
      action(context, (caller: string, options: { rotationId?: string }) =>
        rotate(caller, options.rotationId, context),
      ),
    );

  keys
    .command('read')
    .argument('<caller>', 'a caller whose key is delivered through the API')
    .summary("print the caller's new key once (delivery: api)")
    .description(
      "Prints the caller's new virtual key on stdout, once: the service forgets it after this read. For callers without a deliver hook or file.",
    )
    .action(action(context, (caller: string) => read(caller, context)));
}

async function rotate(
  caller: string,
  rotationId: string | undefined,
  context: CliContext,
): Promise<ExitCode> {
  const reply = await askService(
    `/v1/keys/${encodeURIComponent(caller)}/rotate`,
    rotationId ? { rotation_id: rotationId } : {},
    context.env,
    context.io,
  );
  if ('failed' in reply) return reply.failed;
  const failed = serviceError(reply, context.io);
  if (failed !== undefined) return failed;
  const r = reply.answer as {
    id: string;
    phase: string;
    fingerprint: string;
    oldFingerprint?: string;
    delivery: string;
    oldKeyRevokedAt?: string;
  };
  context.io.stdout(
    `rotation ${r.id} of ${caller}: ${r.phase}; new key ${r.fingerprint}${r.oldFingerprint ? `, old key ${r.oldFingerprint} works until ${r.oldKeyRevokedAt ?? 'the grace period ends'}` : ''}; ${r.delivery === 'api' ? `read it once with: modelcenter keys read ${caller}` : `delivered by ${r.delivery}`}\n`,
  );
  return EXIT.ok;
}

async function read(caller: string, context: CliContext): Promise<ExitCode> {
  const reply = await askService(
    `/v1/keys/${encodeURIComponent(caller)}/delivery`,
    {},
    context.env,
    context.io,
  );
  if ('failed' in reply) return reply.failed;
  const failed = serviceError(reply, context.io);
  if (failed !== undefined) return failed;
  context.io.stdout(`${String(reply.answer.key)}\n`);
  return EXIT.ok;
}
