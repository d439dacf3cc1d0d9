import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  readServiceFile,
  removeServiceFile,
  serviceFilePath,
  writeServiceFile,
} from '../../src/cli/service-file.js';

const entry = (pid: number) => ({
  apiUrl: 'http://127.0.0.1:41234',
  litellmUrl: 'http://127.0.0.1:41235',
  pid,
  strategy: 'blue-green',
  startedAt: new Date().toISOString(),
});

describe('.modelcenter/service.json: where the running service is', () => {
  it('is found while its process lives, and ignored as stale once the pid is gone', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mc-service-'));
    await writeServiceFile(dir, entry(process.pid));
    expect(await readServiceFile(dir)).toMatchObject({ apiUrl: 'http://127.0.0.1:41234' });
    // A pid that existed and ended: what kill -9 of `serve` leaves behind.
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    await writeServiceFile(dir, entry(dead));
    expect(await readServiceFile(dir)).toBeUndefined();
    expect(await readServiceFile(dir, { includeStale: true })).toMatchObject({ pid: dead });
  });

  it('is removed on stop only by the process that wrote it', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mc-service-'));
    await writeServiceFile(dir, entry(process.pid + 1_000_000));
    await removeServiceFile(dir);
    expect(await readFile(serviceFilePath(dir), 'utf8')).toContain('"pid"');
    await writeServiceFile(dir, entry(process.pid));
    await removeServiceFile(dir);
    await expect(readFile(serviceFilePath(dir), 'utf8')).rejects.toThrow();
  });

  it('an unreadable file is no service', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mc-service-'));
    await writeServiceFile(dir, entry(process.pid));
    const { writeFile } = await import('node:fs/promises');
    await writeFile(serviceFilePath(dir), '{"apiUrl": 1');
    expect(await readServiceFile(dir)).toBeUndefined();
  });
});
