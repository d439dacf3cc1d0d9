import { z } from 'zod';
import { ProviderCallError, type ProviderTarget } from './list-models.js';

/** One line of Ollama's `/api/pull` progress. */
export interface PullProgress {
  status: string;
  digest?: string;
  total?: number;
  completed?: number;
}

const progressLine = z.object({
  status: z.string().optional(),
  digest: z.string().optional(),
  total: z.number().optional(),
  completed: z.number().optional(),
  error: z.string().optional(),
});

/**
 * Pulls `model` into an Ollama server through `/api/pull`, yielding its progress lines as they
 * stream. Ends after `success`; an `error` line or a failed request throws ProviderCallError.
 */
export async function* pullModel(
  target: ProviderTarget,
  model: string,
  signal?: AbortSignal,
): AsyncGenerator<PullProgress> {
  const base = target.baseUrl.replace(/\/+$/, '').replace(/\/v1$/, '');
  const endpoint = `${base}/api/pull`;
  let response: Response;
  try {
    response = await fetch(endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(target.key && { authorization: `Bearer ${target.key}` }),
      },
      body: JSON.stringify({ model, stream: true }),
      ...(signal && { signal }),
    });
  } catch (error) {
    throw new ProviderCallError(
      `cannot reach ${endpoint} (${(error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message}) — is Ollama running there?`,
      endpoint,
    );
  }
  if (!response.ok || !response.body) {
    const text = await response.text().catch(() => '');
    throw new ProviderCallError(
      `${endpoint} answered ${response.status}${text ? `: ${text.slice(0, 200)}` : ''}`,
      endpoint,
      response.status,
    );
  }
  const decoder = new TextDecoder();
  let buffer = '';
  let succeeded = false;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (!line) continue;
      const parsed = progressLine.safeParse(JSON.parse(line));
      if (!parsed.success) continue;
      if (parsed.data.error) {
        throw new ProviderCallError(
          `Ollama could not pull ${model}: ${parsed.data.error}`,
          endpoint,
        );
      }
      const { status = '', digest, total, completed } = parsed.data;
      if (status === 'success') succeeded = true;
      yield {
        status,
        ...(digest && { digest }),
        ...(total !== undefined && { total }),
        ...(completed !== undefined && { completed }),
      };
    }
  }
  if (!succeeded) {
    throw new ProviderCallError(`the pull of ${model} ended before Ollama said success`, endpoint);
  }
}
