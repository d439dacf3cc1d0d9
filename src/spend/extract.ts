import { SPOOL_CONTENT_CALLBACK } from '../compile/compile.js';
import type { LiteLLMConfig } from '../compile/litellm-config.js';
import { parseRendered } from '../compile/render.js';
import { readIfExists } from '../shared/fs.js';
import type { LedgerRow, RequestContent } from '../store/ledger.js';
import {
  costUsd,
  inTimeRange,
  MAX_KEY_BYTES,
  MAX_TEXT_BYTES,
  storableOrNull,
  storableText,
  tokenCount,
  flag,
  type DeadLetterReason,
  type Flags,
} from './clean.js';
import { standardLoggingPayloadSchema, type StandardLoggingPayload } from './schema.js';

/** The policy model and provider behind a deployment id (from the compiled config). */
export interface DeploymentOrigin {
  model: string;
  provider: string;
}
export type DeploymentCatalog = (deploymentId: string) => DeploymentOrigin | undefined;

/** The generated config at `file`, or undefined when there is none (yet) or it cannot be read. */
export async function readGeneratedConfig(file: string): Promise<LiteLLMConfig | undefined> {
  const text = await readIfExists(file).catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    return parseRendered(text);
  } catch {
    return undefined;
  }
}

/**
 * Whether the config wires the content-keeping spool callback, which compile does only for
 * policies with `spend.keep_content`: the applied config, not the policy files being edited,
 * decides whether the ledger stores prompts and responses.
 */
export function wiresContent(config: LiteLLMConfig | undefined): boolean {
  const callbacks = config?.litellm_settings?.callbacks;
  return Array.isArray(callbacks) && callbacks.includes(SPOOL_CONTENT_CALLBACK);
}

/** deployment id → the catalog model and policy provider it was compiled from. */
export function deploymentCatalog(config: LiteLLMConfig | undefined): DeploymentCatalog {
  const origins = new Map<string, DeploymentOrigin>();
  for (const deployment of config?.model_list ?? []) {
    const info = deployment.model_info;
    origins.set(info.id, { model: info.modelcenter_model, provider: info.modelcenter_provider });
  }
  return (id) => origins.get(id);
}

const CONTEXT_KEYS = ['goal', 'caller', 'conversation'] as const;
type ContextKey = (typeof CONTEXT_KEYS)[number];
/** Characters of a goal, caller or conversation the ledger keeps; longer ones are cut, flagged. */
export const MAX_CONTEXT_CHARS = 200;

/**
 * Goal, caller and conversation of a request: a tag `goal:<id>` (body `tags`, `metadata.tags` or
 * the `x-litellm-tags` header all land in request_tags), else the same key in the request's
 * `metadata` (requester_metadata) or spend_logs_metadata; the caller falls back to the virtual
 * key's alias, the conversation to LiteLLM's session id. Values come as sent (ledgerRow cuts them).
 */
export function requestContext(payload: StandardLoggingPayload): Record<ContextKey, string | null> {
  const fromTags: Partial<Record<ContextKey, string>> = {};
  for (const tag of payload.request_tags ?? []) {
    if (typeof tag !== 'string') continue;
    const colon = tag.indexOf(':');
    if (colon <= 0) continue;
    const key = tag.slice(0, colon).trim().toLowerCase() as ContextKey;
    if (CONTEXT_KEYS.includes(key) && fromTags[key] === undefined) {
      const value = tag.slice(colon + 1).trim();
      if (value) fromTags[key] = value;
    }
  }
  const requester = mapOf(payload.metadata?.requester_metadata);
  const spendLogs = mapOf(payload.metadata?.spend_logs_metadata);
  const pick = (key: ContextKey): string | null => {
    const value =
      fromTags[key] ?? textOf(requester[key]) ?? textOf(spendLogs[key]) ?? fallback(key, payload);
    return value || null;
  };
  return { goal: pick('goal'), caller: pick('caller'), conversation: pick('conversation') };
}

function fallback(key: ContextKey, payload: StandardLoggingPayload): string | undefined {
  if (key === 'caller') return textOf(payload.metadata?.user_api_key_alias);
  if (key === 'conversation') return textOf(payload.session_id);
  return undefined;
}

/** `value` when it is a JSON object, else an empty one. */
export function mapOf(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

/** A non-blank string (trimmed) or a number as text; undefined for anything else. */
export function textOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value.trim() || undefined;
  if (typeof value === 'number') return String(value);
  return undefined;
}

/** Why a spool line could not become a ledger row: a dead-letter reason and a sentence. */
export type Rejection = { kind: DeadLetterReason; reason: string };

/**
 * One StandardLoggingPayload (parsed JSON) → one ledger row, or why it cannot be one. The row
 * carries the payload's prompt and response only when `keepContent` (the policies ask for it).
 * Values the ledger cannot store as they are (clean.ts) are cleaned, and the row lists what was
 * cleaned in `cleaned`; a record without a call id or a plausible start time is a rejection.
 */
export function ledgerRow(
  value: unknown,
  catalog: DeploymentCatalog,
  keepContent = false,
): LedgerRow | Rejection {
  const parsed = standardLoggingPayloadSchema.safeParse(value);
  if (!parsed.success)
    return {
      kind: 'not-a-payload',
      reason: `not a StandardLoggingPayload: ${parsed.error.issues[0]?.message ?? 'invalid'}`,
    };
  const p = parsed.data;
  if (typeof p.startTime !== 'number')
    return {
      kind: 'not-a-payload',
      reason: 'not a StandardLoggingPayload: startTime is not epoch seconds',
    };
  const rawCallId = p.litellm_call_id ?? p.call_id ?? p.id;
  if (!rawCallId) return { kind: 'not-a-payload', reason: 'no litellm_call_id' };
  if (!inTimeRange(p.startTime))
    return {
      kind: 'date-out-of-range',
      reason: `startTime ${String(p.startTime)} is not between 2000 and 2100`,
    };
  const flags: Flags = {};
  const callId = storableText(rawCallId, Infinity, flags);
  if (callId.length * 3 > MAX_KEY_BYTES && Buffer.byteLength(callId) > MAX_KEY_BYTES)
    return { kind: 'too-long', reason: `call id longer than ${MAX_KEY_BYTES} bytes` };
  const errorClass = p.error_information?.error_class || null;
  const status =
    p.status === 'failure' || (p.status !== 'success' && errorClass) ? 'failure' : 'success';
  const startedAt = p.startTime;
  let endedAt = startedAt;
  if (inTimeRange(p.endTime)) endedAt = p.endTime;
  else if (p.endTime !== undefined && p.endTime !== null) flag(flags, 'time');
  let ttftMs: number | null = null;
  if (p.stream === true && p.completionStartTime !== undefined && p.completionStartTime !== null) {
    if (inTimeRange(p.completionStartTime))
      ttftMs = millisecondsBetween(startedAt, p.completionStartTime);
    else flag(flags, 'time');
  }
  const origin = p.model_id ? catalog(p.model_id) : undefined;
  const errorCode = p.error_information?.error_code;
  const context = requestContext(p);
  const row: LedgerRow = {
    callId,
    startedAt,
    endedAt,
    status,
    goal: contextText(context.goal, flags),
    caller: contextText(context.caller, flags),
    conversation: contextText(context.conversation, flags),
    profile: storableOrNull(p.model_group || null, MAX_KEY_BYTES, flags),
    deployment: storableOrNull(p.model_id || null, MAX_KEY_BYTES, flags),
    model: storableOrNull(origin?.model ?? (p.model || null), MAX_KEY_BYTES, flags),
    provider: storableOrNull(
      origin?.provider ?? (p.custom_llm_provider || null),
      MAX_KEY_BYTES,
      flags,
    ),
    tokensIn: tokenCount(p.prompt_tokens, flags),
    tokensOut: tokenCount(p.completion_tokens, flags),
    costUsd: costUsd(p.response_cost, flags),
    latencyMs: millisecondsBetween(startedAt, endedAt),
    ttftMs,
    cacheHit: p.cache_hit === true,
    errorClass:
      status === 'failure'
        ? storableOrNull(errorClass ?? 'UnknownError', MAX_TEXT_BYTES, flags)
        : null,
    errorCode:
      status === 'failure' &&
      (typeof errorCode === 'number' || (typeof errorCode === 'string' && errorCode !== ''))
        ? storableOrNull(`${errorCode}`, MAX_TEXT_BYTES, flags)
        : null,
    traceId: storableOrNull(p.trace_id || null, MAX_TEXT_BYTES, flags),
    endUser: storableOrNull(p.end_user || null, MAX_TEXT_BYTES, flags),
    keyAlias: storableOrNull(p.metadata?.user_api_key_alias || null, MAX_TEXT_BYTES, flags),
  };
  if (flags.found) row.cleaned = flags.found;
  if (keepContent) {
    const content = contentOf(value as Record<string, unknown>);
    if (content) row.content = content;
  }
  return row;
}

/**
 * A goal, caller or conversation as stored: at most MAX_CONTEXT_CHARS characters (a longer one is
 * cut and flagged `long-value`, so it is counted like every other cleaned value), then storable.
 */
function contextText(value: string | null, flags: Flags): string | null {
  if (value === null) return null;
  let text = value;
  if (text.length > MAX_CONTEXT_CHARS) {
    // Not between the halves of a surrogate pair (that would leave a lone one).
    const high = text.charCodeAt(MAX_CONTEXT_CHARS - 1);
    text = text.slice(
      0,
      high >= 0xd800 && high <= 0xdbff ? MAX_CONTEXT_CHARS - 1 : MAX_CONTEXT_CHARS,
    );
    flag(flags, 'long-value');
  }
  return storableText(text, MAX_KEY_BYTES, flags);
}

/** `messages` and `response` as logged (the loose schema drops them), or undefined when absent. */
export function contentOf(payload: Record<string, unknown>): RequestContent | undefined {
  const { messages, response } = payload;
  const present = (v: unknown): boolean => v !== undefined && v !== null && v !== '';
  if (!present(messages) && !present(response)) return undefined;
  return { messages: messages ?? null, response: response ?? null };
}

/** Epoch seconds → milliseconds between them, to the microsecond (no float noise in reports). */
function millisecondsBetween(start: number, end: number): number {
  return Math.max(0, Math.round((end - start) * 1e6) / 1000);
}

export function isRejection(value: LedgerRow | Rejection): value is Rejection {
  return 'reason' in value;
}
