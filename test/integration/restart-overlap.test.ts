import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LiteLLMClient } from '../../src/litellm/client.js';
import { freePort } from '../../src/litellm/process.js';
import { RestartStrategy } from '../../src/reload/restart.js';
import type { SupervisionEvent } from '../../src/reload/supervisor.js';
import { until } from '../helpers/serve.js';
import { testKey } from '../helpers/secrets.js';

/**
 * A stand-in for the litellm binary with the two timings that matter to an overlapped restart:
 * how long it takes to bind its port after start (LiteLLM imports for seconds) and to exit after
 * SIGTERM (answering meanwhile). It binds the port as uvicorn does (failing with uvicorn's message when it is taken) and
 * answers readiness with the config it was started with, so a test sees which process answers.
 */
const FAKE_LITELLM = `#!/usr/bin/env python3
import http.server, json, os, signal, sys, threading, time
args = sys.argv[1:]
config = args[args.index('--config') + 1]
port = int(args[args.index('--port') + 1])
with open(os.environ['FAKE_SPAWNS'], 'a') as spawns:
    spawns.write(os.path.basename(config) + '\\n')
with open(os.environ['FAKE_SPAWNS'] + '.times', 'a') as times:
    times.write(f"{os.path.basename(config)} {time.time()}\\n")
time.sleep(float(os.environ.get('FAKE_IMPORT_S', '0')))
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith('/v1/model/info'):
            body = json.dumps({'data': []}).encode()
        else:
            body = json.dumps({'status': 'connected', 'litellm_version': os.path.basename(config)}).encode()
        self.send_response(200)
        self.send_header('content-type', 'application/json')
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *_):
        pass
try:
    server = http.server.ThreadingHTTPServer(('127.0.0.1', port), Handler)
except OSError:
    print(f"ERROR:    [Errno 98] error while attempting to bind on address ('127.0.0.1', {port}): address already in use", file=sys.stderr)
    sys.exit(1)
threading.Thread(target=server.serve_forever, daemon=True).start()
stopping = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stopping.set())
while not stopping.wait(0.05):
    pass
# Graceful stop: it keeps answering until it exits (the worst case for a readiness check).
time.sleep(float(os.environ.get('FAKE_STOP_S', '0')))
with open(os.environ['FAKE_SPAWNS'] + '.exits', 'a') as exits:
    exits.write(f"{os.path.basename(config)} {time.time()}\\n")
os._exit(0)
`;

describe('restart strategy: the new LiteLLM starts while the old one stops', () => {
  const masterKey = testKey('sk-master-');
  let dir: string;
  let port: number;
  let strategy: RestartStrategy | undefined;

  const spawns = async (): Promise<string[]> =>
    (await readFile(path.join(dir, 'spawns'), 'utf8')).trim().split('\n');
  /**
   * When each config's process was spawned / exited, epoch seconds: the last spawn of each (a
   * change is first proven on a spare port), the first exit.
   */
  const moments = async (kind: 'times' | 'exits'): Promise<Map<string, number>> => {
    const text = await readFile(path.join(dir, `spawns.${kind}`), 'utf8');
    const seen = new Map<string, number>();
    for (const [name, at] of text
      .trim()
      .split('\n')
      .map((l) => l.split(' ')))
      if (kind === 'times' || !seen.has(name!)) seen.set(name!, Number(at));
    return seen;
  };
  const serving = async (): Promise<string | undefined> =>
    (await new LiteLLMClient(`http://127.0.0.1:${port}`, masterKey).readiness()).litellm_version;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mc-restart-overlap-'));
    port = await freePort();
    await writeFile(path.join(dir, 'litellm'), FAKE_LITELLM);
    await chmod(path.join(dir, 'litellm'), 0o755);
    for (const name of ['a.yaml', 'b.yaml'])
      await writeFile(path.join(dir, name), `# ${name}\nmodel_list: []\n`); // distinct: same bytes are no change
  });
  afterEach(async () => {
    await strategy?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const start = (timing: { importS: number; stopS: number }) =>
    new RestartStrategy({
      port,
      masterKey,
      binary: path.join(dir, 'litellm'),
      env: {
        FAKE_SPAWNS: path.join(dir, 'spawns'),
        FAKE_IMPORT_S: String(timing.importS),
        FAKE_STOP_S: String(timing.stopS),
      },
      stateDir: dir,
      readinessTimeoutMs: 20_000,
    });

  it('slow import, quick stop: one spawn, and readiness is never answered by the old process', async () => {
    // The stop is long enough that a Python start slowed by a loaded machine still spawns before
    // the old process exits, and the import longer still, so the new one binds after it.
    strategy = start({ importS: 3, stopS: 1.5 });
    await strategy.reload(path.join(dir, 'a.yaml'));
    expect(await serving()).toBe('a.yaml');
    await strategy.reload(path.join(dir, 'b.yaml'));
    // The instant reload returns, the new process answers (the old one answered until it stopped).
    expect(await serving()).toBe('b.yaml');
    // b.yaml twice: proven on a spare port first, then started on the service port.
    expect(await spawns()).toEqual(['a.yaml', 'b.yaml', 'b.yaml']);
    // Overlapped: the new process was spawned before the old one had exited.
    expect((await moments('times')).get('b.yaml')!).toBeLessThan(
      (await moments('exits')).get('a.yaml')!,
    );
  });

  it('the old process still holds the port when the new one binds: it is started again once the port is free', async () => {
    strategy = start({ importS: 0, stopS: 1.5 });
    await strategy.reload(path.join(dir, 'a.yaml'));
    await strategy.reload(path.join(dir, 'b.yaml'));
    expect(await serving()).toBe('b.yaml');
    expect(await spawns()).toEqual(['a.yaml', 'b.yaml', 'b.yaml', 'b.yaml']); // proof, taken, again
  });
});

describe('restart strategy: the new process cannot take the port after the old one stopped', () => {
  const masterKey = testKey('sk-master-');
  let dir: string;
  let port: number;
  let strategy: RestartStrategy | undefined;
  let squatter: Server | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mc-restart-taken-'));
    port = await freePort();
    await writeFile(path.join(dir, 'litellm'), FAKE_LITELLM);
    await chmod(path.join(dir, 'litellm'), 0o755);
    for (const name of ['a.yaml', 'b.yaml'])
      await writeFile(path.join(dir, name), `# ${name}\nmodel_list: []\n`);
  });
  afterEach(async () => {
    await new Promise((resolve) => (squatter ? squatter.close(resolve) : resolve(undefined)));
    await strategy?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('nothing serves after the failed reload: supervision brings back the config that served, no apply needed', async () => {
    strategy = new RestartStrategy({
      port,
      masterKey,
      binary: path.join(dir, 'litellm'),
      env: { FAKE_SPAWNS: path.join(dir, 'spawns'), FAKE_IMPORT_S: '2', FAKE_STOP_S: '0' },
      stateDir: dir,
      readinessTimeoutMs: 20_000,
      supervision: { probeIntervalMs: 100 },
    });
    const events: SupervisionEvent[] = [];
    strategy.onSupervision((e) => events.push(e));
    await strategy.reload(path.join(dir, 'a.yaml'));
    const reloading = strategy.reload(path.join(dir, 'b.yaml'));
    // Another program takes the port the moment the old process has let go of it.
    for (;;) {
      const exits = await readFile(path.join(dir, 'spawns.exits'), 'utf8').catch(() => '');
      if (exits.includes('a.yaml')) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    squatter = await new Promise<Server>((resolve, reject) => {
      const server = createServer((socket) => socket.destroy());
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve(server));
    });
    await expect(reloading).rejects.toThrow(/address already in use/);
    expect(strategy.readiness().ready).toBe(false);
    await new Promise((resolve) => squatter!.close(resolve));
    squatter = undefined;

    const deadline = Date.now() + 60_000;
    let answer: string | undefined;
    while (Date.now() < deadline && !answer?.startsWith('config-')) {
      answer = await new LiteLLMClient(`http://127.0.0.1:${port}`, masterKey)
        .readiness()
        .then((r) => r.litellm_version)
        .catch(() => undefined);
      await new Promise((r) => setTimeout(r, 100));
    }
    // The snapshot of what served before (a.yaml), not the config that could not start.
    expect(answer).toMatch(/^config-/);
    expect(await readFile(path.join(dir, 'live', answer!), 'utf8')).toBe(
      await readFile(path.join(dir, 'a.yaml'), 'utf8'),
    );
    expect(events[0]).toMatchObject({ kind: 'down', process: 'litellm', cause: 'exit' });
    expect((events[0] as { reason: string }).reason).toMatch(
      /could not be started on port \d+ and nothing serves there: .*address already in use/,
    );
    await until(() => Promise.resolve(strategy!.readiness().ready || undefined), 10_000);
  });
});
