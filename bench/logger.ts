/**
 * Cost of one log line with secret redaction, against bare pino and against pino's own `redact`
 * with wildcard paths (the alternative docs/decisions.md weighs).
 * Run: npx tsx bench/logger.ts
 */
import pino from 'pino';
import { createLogger } from '../src/log/logger.js';
import { SecretValues } from '../src/log/redact.js';
import { testKey } from '../test/helpers/secrets.js';

const LINES = 20_000;
const sink = { write: (_line: string) => undefined };
const request = {
  requestId: 'r-1',
  method: 'GET',
  route: '/v1/status',
  status: 200,
  ms: 1.2,
  req: { headers: { host: 'localhost:8080', 'user-agent': 'curl/8', authorization: 'Bearer x' } },
};
const flat = { job: 'drift-check', runId: 'a1b2', outcome: 'ok', seconds: 0.42 };

function microsPerLine(logger: { info: (o: object, m: string) => void }, line: object): number {
  for (let i = 0; i < 2_000; i++) logger.info(line, 'warm-up');
  const start = performance.now();
  for (let i = 0; i < LINES; i++) logger.info(line, 'request');
  return ((performance.now() - start) / LINES) * 1000;
}

const secrets = new SecretValues();
for (let i = 0; i < 10; i++) secrets.add(testKey());
const ours = createLogger({ level: 'info', destination: sink, secrets, pretty: false });
const bare = pino({ level: 'info' }, sink);
const names = ['apiKey', 'api_key', 'authorization', 'token', 'key', 'password', 'secret'];
const names2 = [...names, 'masterKey', 'master_key', 'credential', 'cookie', 'access_token'];
const wildcardPaths = names2.flatMap((n) => [n, `*.${n}`, `*.*.${n}`]);
const pinoRedact = pino({ level: 'info', redact: { paths: wildcardPaths } }, sink);

const rows: [string, number, number][] = [
  ['bare pino (no redaction)', microsPerLine(bare, flat), microsPerLine(bare, request)],
  [
    'modelcenter logger (keys + 10 values)',
    microsPerLine(ours, flat),
    microsPerLine(ours, request),
  ],
  [
    `pino redact, ${wildcardPaths.length} paths to depth 2`,
    microsPerLine(pinoRedact, flat),
    microsPerLine(pinoRedact, request),
  ],
];
console.log(`µs per line, ${LINES} lines each (flat job line / HTTP request line with headers)`);
for (const [label, a, b] of rows) {
  console.log(`${label.padEnd(42)} ${a.toFixed(1).padStart(6)} ${b.toFixed(1).padStart(6)}`);
}
