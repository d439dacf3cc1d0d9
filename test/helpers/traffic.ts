import OpenAI from 'openai';

export interface Outcome {
  /** When the request was sent and when it ended (Date.now()). */
  sentAt: number;
  endedAt: number;
  ok: boolean;
  error?: string;
}

export interface Traffic {
  outcomes: Outcome[];
  failures(): Outcome[];
  /** The first request sent at or after `since` that succeeded. */
  firstSuccessSince(since: number): Outcome | undefined;
  stop(): Promise<void>;
}

/** A client that never retries: a request the system drops shows up as a failure. */
export function trafficClient(baseUrl: string, masterKey: string, timeoutMs = 30_000): OpenAI {
  return new OpenAI({
    baseURL: `${baseUrl}/v1`,
    apiKey: masterKey,
    maxRetries: 0,
    timeout: timeoutMs,
  });
}

/**
 * Steady chat traffic to `model` (default: the `fast` profile) from `loops` sequential senders. A failed request is
 * followed by a short pause (a down proxy refuses at once; spinning would only load the machine).
 * Bounded: at most 20,000 requests per loop, loopback only.
 */
export function steadyTraffic(client: OpenAI, loops = 2, model = 'fast'): Traffic {
  const outcomes: Outcome[] = [];
  let running = true;
  const loop = async (): Promise<void> => {
    for (let n = 0; running && n < 20_000; n++) {
      const sentAt = Date.now();
      try {
        const answer = await client.chat.completions.create({
          model,
          messages: [{ role: 'user', content: 'hi' }],
        });
        const ok = answer.choices[0]?.message.content?.includes('reply from') ?? false;
        outcomes.push({
          sentAt,
          endedAt: Date.now(),
          ok,
          ...(!ok && { error: `unexpected answer ${JSON.stringify(answer.choices[0])}` }),
        });
      } catch (error) {
        outcomes.push({ sentAt, endedAt: Date.now(), ok: false, error: causeChain(error) });
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  const running$ = Array.from({ length: loops }, () => loop());
  return {
    outcomes,
    failures: () => outcomes.filter((o) => !o.ok),
    firstSuccessSince: (since) =>
      outcomes.filter((o) => o.ok && o.sentAt >= since).sort((a, b) => a.endedAt - b.endedAt)[0],
    stop: async () => {
      running = false;
      await Promise.all(running$);
    },
  };
}

/** Runs `work` under steady traffic; every outcome is returned beside its result. */
export async function underTraffic<T>(
  client: OpenAI,
  work: () => Promise<T>,
  model = 'fast',
  loops = 2,
): Promise<{ result: T; sent: number; failures: string[] }> {
  const traffic = steadyTraffic(client, loops, model);
  try {
    const result = await work();
    return {
      result,
      sent: traffic.outcomes.length,
      failures: traffic.failures().map((f) => f.error ?? 'failed'),
    };
  } finally {
    await traffic.stop();
  }
}

/** "Connection error. ← fetch failed ← other side closed": what really went wrong. */
export function causeChain(error: unknown): string {
  const parts: string[] = [];
  for (let e = error; e && parts.length < 5; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: string }).code;
    parts.push(`${e instanceof Error ? e.message : JSON.stringify(e)}${code ? ` [${code}]` : ''}`);
  }
  return parts.join(' ← ');
}
