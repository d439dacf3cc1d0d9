import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { litellmVenv } from '../../src/litellm/install.js';
import { projectRoot } from '../../src/shared/paths.js';
import { parseChunk } from '../../src/spend/parse.js';
import { payloadFixture } from '../helpers/spool.js';

const run = promisify(execFile);
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'modelcenter-spool-py-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/**
 * Drives litellm/modelcenter_spool.py in the pinned LiteLLM's Python, as LiteLLM would: the module
 * is imported, its hooks are called with kwargs holding a standard_logging_object, and the process
 * exits (the atexit flush writes what is queued).
 */
async function python(script: string, env: Record<string, string>): Promise<string> {
  const file = path.join(dir, `drive-${Date.now()}.py`);
  await writeFile(file, script);
  const { stdout, stderr } = await run(path.join(litellmVenv(), 'bin', 'python'), [file], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      PYTHONPATH: path.join(projectRoot(), 'litellm'),
      LITELLM_LOCAL_MODEL_COST_MAP: 'True',
      ...env,
    },
  });
  return stdout + stderr;
}

const DRIVER = (
  payloadFile: string,
  events: number,
  instance = 'proxy_handler_instance',
  promptRepeat = 1,
) => `
import asyncio, json
from modelcenter_spool import ${instance} as spool
payload = json.load(open(${JSON.stringify(payloadFile)}))
payload["messages"] = [{"role": "user", "content": "a secret prompt" * ${promptRepeat}}]
payload["response"] = {"choices": [{"message": {"content": "a private answer"}}]}
async def main():
    for i in range(${events}):
        p = dict(payload, litellm_call_id=f"py-{i}")
        if i % 2:
            await spool.async_log_success_event({"standard_logging_object": p}, None, None, None)
        else:
            spool.log_failure_event({"standard_logging_object": p}, None, None, None)
    await spool.async_log_success_event({"no": "payload"}, None, None, None)
asyncio.run(main())
print("done")
`;

describe('spool callback (litellm/modelcenter_spool.py)', () => {
  it('creates the directory, writes one line per event without content, and rotates by size', async () => {
    const payloadFile = path.join(dir, 'payload.json');
    await writeFile(payloadFile, JSON.stringify(payloadFixture('success-tagged')));
    const spoolDir = path.join(dir, 'deep', 'missing', 'spool');
    const output = await python(DRIVER(payloadFile, 40), {
      MODELCENTER_SPOOL_DIR: spoolDir,
      MODELCENTER_SPOOL_MAX_BYTES: '20000',
    });
    expect(output).toContain('done');
    const files = (await readdir(spoolDir)).sort();
    expect(files.length).toBeGreaterThan(2);
    expect(files.every((f) => /^spool-\d+-\d+-\d{6}\.jsonl$/.test(f))).toBe(true);
    const lines: Record<string, unknown>[] = [];
    for (const file of files) {
      const text = await readFile(path.join(spoolDir, file), 'utf8');
      expect(text.endsWith('\n')).toBe(true);
      expect(Buffer.byteLength(text)).toBeLessThanOrEqual(20000);
      for (const line of text.split('\n').filter(Boolean))
        lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    expect(lines.map((l) => l.litellm_call_id)).toEqual(
      Array.from({ length: 40 }, (_, i) => `py-${i}`),
    );
    const all = JSON.stringify(lines);
    expect(all).not.toContain('a secret prompt');
    expect(all).not.toContain('a private answer');
    expect(lines[0]).toMatchObject({
      request_tags: [
        'goal:q-report',
        'caller:alice',
        'User-Agent: OpenAI',
        'User-Agent: OpenAI/JS 6.49.0',
      ],
    });
  });

  it('writes an event LiteLLM delivers while the process exits, after the spool writer stopped', async () => {
    // LiteLLM registers its logging queue's atexit flush at import, before the spool writer exists
    // (made at the first event); atexit runs last-in first-out, so the writer stops first and the
    // flushed events arrive after it: a request answered just before SIGTERM.
    const payloadFile = path.join(dir, 'payload-at-exit.json');
    await writeFile(payloadFile, JSON.stringify(payloadFixture('success-tagged')));
    const spoolDir = path.join(dir, 'at-exit');
    await python(
      `
import asyncio, atexit, json
from modelcenter_spool import proxy_handler_instance as spool
payload = json.load(open(${JSON.stringify(payloadFile)}))
def litellm_flush_on_exit():
    p = dict(payload, litellm_call_id="py-at-exit")
    asyncio.run(spool.async_log_success_event({"standard_logging_object": p}, None, None, None))
atexit.register(litellm_flush_on_exit)
async def main():
    p = dict(payload, litellm_call_id="py-before-exit")
    await spool.async_log_success_event({"standard_logging_object": p}, None, None, None)
asyncio.run(main())
`,
      { MODELCENTER_SPOOL_DIR: spoolDir },
    );
    const ids: string[] = [];
    for (const file of await readdir(spoolDir)) {
      for (const line of (await readFile(path.join(spoolDir, file), 'utf8')).split('\n')) {
        if (line)
          ids.push(
            (JSON.parse(line) as { id?: string; litellm_call_id?: string }).litellm_call_id ?? '',
          );
      }
    }
    expect(ids.sort()).toEqual(['py-at-exit', 'py-before-exit']);
  });

  it('keeps content only when MODELCENTER_SPOOL_KEEP_CONTENT=1', async () => {
    const payloadFile = path.join(dir, 'payload.json');
    const spoolDir = path.join(dir, 'with-content');
    await python(DRIVER(payloadFile, 1), {
      MODELCENTER_SPOOL_DIR: spoolDir,
      MODELCENTER_SPOOL_KEEP_CONTENT: '1',
    });
    const [file] = await readdir(spoolDir);
    expect(await readFile(path.join(spoolDir, file!), 'utf8')).toContain('a secret prompt');
  });

  it('content_handler_instance (what compile wires for spend.keep_content) keeps content whatever the env says', async () => {
    const payloadFile = path.join(dir, 'payload.json');
    const spoolDir = path.join(dir, 'content-instance');
    await python(DRIVER(payloadFile, 2, 'content_handler_instance'), {
      MODELCENTER_SPOOL_DIR: spoolDir,
      MODELCENTER_SPOOL_KEEP_CONTENT: '0',
    });
    const files = await readdir(spoolDir);
    expect(files).toHaveLength(1);
    const lines = (await readFile(path.join(spoolDir, files[0]!), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => [l.litellm_call_id, l.messages, l.response])).toEqual([
      [
        'py-0',
        [{ role: 'user', content: 'a secret prompt' }],
        { choices: [{ message: { content: 'a private answer' } }] },
      ],
      [
        'py-1',
        [{ role: 'user', content: 'a secret prompt' }],
        { choices: [{ message: { content: 'a private answer' } }] },
      ],
    ]);
  });

  it('writes a request whose content would make the line too long without its content, and says so', async () => {
    const payloadFile = path.join(dir, 'payload.json');
    const spoolDir = path.join(dir, 'huge-content');
    // 15 bytes × 250,000 ≈ 3.6 MiB of prompt: over the 3 MiB line limit the controller reads.
    await python(DRIVER(payloadFile, 1, 'content_handler_instance', 250_000), {
      MODELCENTER_SPOOL_DIR: spoolDir,
    });
    const [file] = await readdir(spoolDir);
    const line = JSON.parse(await readFile(path.join(spoolDir, file!), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(line).toMatchObject({
      litellm_call_id: 'py-0',
      modelcenter_content_dropped: 'too large',
    });
    expect(line.messages).toBeUndefined();
    expect(line.response).toBeUndefined();
  });

  it('writes a record orjson refuses (a lone surrogate in a tag, NaN cost) cleaned, not lost, and the ledger reads it', async () => {
    const payloadFile = path.join(dir, 'payload.json');
    await writeFile(payloadFile, JSON.stringify(payloadFixture('success-tagged')));
    const spoolDir = path.join(dir, 'unencodable');
    const output = await python(
      `
from modelcenter_spool import proxy_handler_instance as spool
import json
payload = json.load(open(${JSON.stringify(payloadFile)}))
# What json.loads makes of a request body's "caller:a\\ud800b": a str with a lone surrogate.
bad = dict(payload, litellm_call_id="py-bad", request_tags=["caller:a\\ud800b", "goal:x\\u0000y"], response_cost=float("nan"))
spool.log_success_event({"standard_logging_object": bad}, None, None, None)
spool.log_success_event({"standard_logging_object": dict(payload, litellm_call_id="py-after")}, None, None, None)
print("done")
`,
      { MODELCENTER_SPOOL_DIR: spoolDir },
    );
    expect(output).toContain('done');
    expect(output).not.toMatch(/cannot serialise/);
    const [file] = await readdir(spoolDir);
    const chunk = parseChunk(await readFile(path.join(spoolDir, file!)));
    expect(chunk.dead).toEqual([]);
    expect(chunk.rows.map((r) => [r.callId, r.caller, r.goal, r.costUsd, r.cleaned])).toEqual([
      ['py-bad', 'a\ufffdb', 'xy', 0, ['nul', 'surrogate']],
      ['py-after', 'alice', 'q-report', expect.any(Number), undefined],
    ]);
  });

  it('logs a write error instead of raising it into LiteLLM', async () => {
    const payloadFile = path.join(dir, 'payload.json');
    const blocked = path.join(dir, 'a-file-not-a-dir');
    await writeFile(blocked, 'x');
    const output = await python(DRIVER(payloadFile, 3), {
      MODELCENTER_SPOOL_DIR: path.join(blocked, 'spool'),
    });
    expect(output).toContain('done');
    expect(output).toMatch(/modelcenter_spool: cannot write \d+ spool records/);
  });

  /** A disk with `room` bytes left until the script sets `room = None` (os.write as the kernel's). */
  const FULL_DISK = (payloadFile: string, events: number) => `
import errno, json, os, time
room = 3000
real_write = os.write
def write(fd, data):
    global room
    if room is None:
        return real_write(fd, data)
    if room == 0:
        raise OSError(errno.ENOSPC, "No space left on device")
    n = real_write(fd, bytes(data[:room]))
    room -= n
    return n
os.write = write
from modelcenter_spool import proxy_handler_instance as spool
payload = json.load(open(${JSON.stringify(payloadFile)}))
for i in range(${events}):
    spool.log_success_event({"standard_logging_object": dict(payload, litellm_call_id=f"py-{i}")}, None, None, None)
    time.sleep(0.01)
time.sleep(0.3)
room = None
time.sleep(1.5)
print("done")
`;

  it('a full disk: records wait in memory and are written once there is room, each once, in order, no half line, in one file', async () => {
    const payloadFile = path.join(dir, 'payload.json');
    await writeFile(payloadFile, JSON.stringify(payloadFixture('success-tagged')));
    const spoolDir = path.join(dir, 'full-disk');
    const output = await python(FULL_DISK(payloadFile, 30), { MODELCENTER_SPOOL_DIR: spoolDir });
    expect(output).toContain('done');
    expect(output).toMatch(
      /cannot write \d+ spool records .*kept in memory, retried.*No space left/,
    );
    const files = await readdir(spoolDir);
    expect(files).toHaveLength(1); // not a new file per failed write
    const chunk = parseChunk(await readFile(path.join(spoolDir, files[0]!)));
    expect(chunk.dead).toEqual([]); // no half line
    expect(chunk.rows.map((r) => r.callId)).toEqual(
      Array.from({ length: 30 }, (_, i) => `py-${i}`),
    );
  });

  it('records beyond what it may hold in memory are given up and counted by a spool-lost line the controller reads', async () => {
    const payloadFile = path.join(dir, 'payload.json');
    await writeFile(payloadFile, JSON.stringify(payloadFixture('success-tagged')));
    const spoolDir = path.join(dir, 'full-disk-lost');
    const output = await python(FULL_DISK(payloadFile, 30), {
      MODELCENTER_SPOOL_DIR: spoolDir,
      MODELCENTER_SPOOL_PENDING_BYTES: '12000',
    });
    expect(output).toContain('done');
    const files = await readdir(spoolDir);
    const chunk = parseChunk(await readFile(path.join(spoolDir, files[0]!)));
    expect(chunk.rows.length).toBeGreaterThan(0);
    expect(chunk.rows.length).toBeLessThan(30);
    // Every record is in the file or counted by a marker line (one per stretch of losses).
    expect(chunk.dead.map((d) => d.reason)).toEqual(chunk.dead.map(() => 'spool-lost'));
    expect(chunk.dead.length).toBeGreaterThan(0);
    const lost = chunk.dead.reduce((sum, d) => sum + (d.records ?? 0), 0);
    expect(chunk.rows.length + lost).toBe(30);
    expect(chunk.dead[0]!.detail).toMatch(/lost \d+ request record\(s\).*not in the ledger/);
  });
});
