import { sendJson, startFake, type FakeOptions, type FakeUpstream, type Flavour } from './core.js';

/**
 * A fake Gemini API (generativelanguage.googleapis.com): `GET /v1beta/models`, paged with
 * pageSize/pageToken as the real one is, the key in `x-goog-api-key` or `?key=`. Each model's
 * input limit is its context window from the options.
 */
export const geminiFlavour: Flavour = {
  authorized: (req, apiKey) =>
    req.headers['x-goog-api-key'] === apiKey ||
    new URL(req.url ?? '/', 'http://fake').searchParams.get('key') === apiKey,
  presentedKey: (req) =>
    (req.headers['x-goog-api-key'] as string | undefined) ??
    new URL(req.url ?? '/', 'http://fake').searchParams.get('key') ??
    undefined,
  errorBody: (status, message) => ({
    error: {
      code: status,
      message,
      status: status === 401 || status === 403 ? 'PERMISSION_DENIED' : 'INTERNAL',
    },
  }),
  isGeneration: (path) => /:(generateContent|streamGenerateContent|embedContent)$/.test(path),
  handle({ req, res, path }, options) {
    if (path !== '/v1beta/models') {
      return sendJson(res, 404, geminiFlavour.errorBody(404, `no route ${path}`));
    }
    const query = new URL(req.url ?? '/', 'http://fake').searchParams;
    const size = Math.min(Number(query.get('pageSize') ?? 50) || 50, 50);
    const start = Number(query.get('pageToken') ?? 0) || 0;
    const ids = Object.keys(options.contextWindows ?? {});
    const page = ids.slice(start, start + size);
    return sendJson(res, 200, {
      models: page.map((id) => ({
        name: `models/${id}`,
        displayName: id,
        inputTokenLimit: options.contextWindows![id],
        outputTokenLimit: 8192,
        supportedGenerationMethods: id.includes('embedding')
          ? ['embedContent']
          : ['generateContent', 'countTokens'],
      })),
      ...(start + size < ids.length && { nextPageToken: String(start + size) }),
    });
  },
};

export function startGeminiFake(options: FakeOptions): Promise<FakeUpstream> {
  return startFake(geminiFlavour, options);
}
