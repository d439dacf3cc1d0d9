/** The documented API as the page calls it: the session's bearer token on every request. */

const TOKEN_KEY = 'modelcenter.token';

export type Scope = 'read' | 'admin';

/** The API refused the token (401): the page goes back to the login view. */
export class Unauthorized extends Error {}

/** Any other non-2xx answer, with the API's own message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly body: unknown,
  ) {
    super(message);
  }
}

export function savedToken(): string | undefined {
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
}

export function saveToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

export async function call<T>(
  token: string,
  method: 'GET' | 'POST' | 'PUT',
  path: string,
  body?: unknown,
): Promise<T> {
  const response = await fetch(path, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  const parsed: unknown = text ? JSON.parse(text) : undefined;
  if (response.status === 401) throw new Unauthorized('the token was refused');
  if (!response.ok) {
    const message =
      (parsed as { error?: { message?: string } } | undefined)?.error?.message ??
      `${method} ${path} answered ${response.status}`;
    // Apply, reload and rollback answer their report with 4xx/5xx when it did not go live.
    throw new ApiError(response.status, message, parsed);
  }
  return parsed as T;
}

export const get = <T>(token: string, path: string): Promise<T> => call<T>(token, 'GET', path);

/** `?a=1&b=2` from the defined entries. */
export function query(params: Record<string, string | number | undefined>): string {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) search.set(k, String(v));
  const text = search.toString();
  return text ? `?${text}` : '';
}
