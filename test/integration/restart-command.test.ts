import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Controller } from '../../src/apply/controller.js';
import { litellmBinary } from '../../src/litellm/install.js';
import { freePort, OFFLINE_ENV } from '../../src/litellm/process.js';
import { CommandRestartStrategy } from '../../src/reload/command.js';
import { projectRoot } from '../../src/shared/paths.js';
import { controllerFor } from '../helpers/controller.js';
import { commitPolicies, git, policyRepo } from '../helpers/repo.js';
import {
  allFakes,
  newKeys,
  providerEnv,
  scenarioPolicies,
  startFakes,
  type Fakes,
} from '../helpers/stack.js';

/**
 * MODELCENTER_RESTART_COMMAND: a LiteLLM that Model Center does not start (systemd, compose, …).
 * Here the "service manager" is a shell script that stops the running LiteLLM and starts the real
 * pinned one on the config it is given, with the environment of its own unit file (the command
 * never gets the controller's keys).
 */
describe('apply with a restart command (an externally run real LiteLLM)', () => {
  const keys = newKeys();
  let fakes: Fakes;
  let repo: string;
  let dir: string;
  let port: number;
  let strategy: CommandRestartStrategy;
  let controller: Controller;
  let base: string;

  const pid = async (): Promise<string> => (await readFile(path.join(dir, 'pid'), 'utf8')).trim();
  const served = async () => (await strategy.instances()[0]!.deployments()).map((d) => d.id).sort();

  beforeAll(async () => {
    fakes = await startFakes(keys);
    base = scenarioPolicies(fakes);
    repo = await policyRepo(base);
    dir = await mkdtemp(path.join(tmpdir(), 'mc-restart-command-'));
    port = await freePort();
    const unitEnv = {
      ...OFFLINE_ENV,
      ...providerEnv(keys),
      LITELLM_MASTER_KEY: keys.master,
      PYTHONPATH: path.join(projectRoot(), 'litellm'),
      MODELCENTER_SPOOL_DIR: path.join(dir, 'spool'),
    };
    await writeFile(
      path.join(dir, 'unit.env'),
      Object.entries(unitEnv)
        .map(([name, value]) => `export ${name}='${value}'`)
        .join('\n'),
      { mode: 0o600 },
    );
    const script = path.join(dir, 'restart-litellm.sh');
    await writeFile(
      script,
      `#!/bin/sh
set -e
. '${dir}/unit.env'
if [ -f '${dir}/fail-once' ]; then
  rm '${dir}/fail-once'
  echo "litellm.service: start request repeated too quickly" >&2
  exit 3
fi
if [ -f '${dir}/pid' ]; then
  old=$(cat '${dir}/pid')
  kill "$old" 2>/dev/null || true
  while kill -0 "$old" 2>/dev/null; do sleep 0.1; done
fi
nohup '${litellmBinary()}' --config "$MODELCENTER_CONFIG_FILE" --host 127.0.0.1 --port ${port} --num_workers 1 >> '${dir}/litellm.log' 2>&1 &
echo $! > '${dir}/pid'
`,
    );
    await chmod(script, 0o755);
    strategy = new CommandRestartStrategy({
      command: script,
      instances: [`http://127.0.0.1:${port}`],
      masterKey: keys.master,
    });
    controller = await controllerFor(repo, strategy);
  });

  afterAll(async () => {
    const running = await pid().catch(() => undefined);
    if (running) process.kill(Number(running), 'SIGTERM');
    await Promise.all(allFakes(fakes).map((f) => f.close()));
    await rm(repo, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  });

  it('the first apply runs the command, waits for readiness, verifies and serves requests', async () => {
    const report = await controller.apply();
    expect(report.problems).toEqual([]);
    expect(report.outcome).toBe('applied');
    expect(await served()).toContain('fast/llama-small');
    const client = new OpenAI({
      baseURL: `http://127.0.0.1:${port}/v1`,
      apiKey: keys.master,
      maxRetries: 0,
    });
    const answer = await client.chat.completions.create({
      model: 'fast',
      messages: [{ role: 'user', content: 'hello' }],
    });
    expect(answer.choices[0]?.message.content).toBeTruthy();
  });

  it('a policy commit restarts it through the command with the new config', async () => {
    const before = await pid();
    await commitPolicies(
      repo,
      base.replace(
        'profiles:',
        '  gpt-big:\n    provider: openai\n    upstream: gpt-4o\n    capabilities: [chat, tools]\n    context_window: 128000\n    pricing: { input_per_mtok: 2.5, output_per_mtok: 10 }\n\nprofiles:',
      ),
      'policies: add gpt-big',
    );
    const report = await controller.apply();
    expect(report.outcome).toBe('applied');
    expect(await pid()).not.toBe(before);
    expect(await served()).toContain('gpt-big');
  });

  it('a command that fails is rolled back: its output is reported, last-known-good still serves', async () => {
    const lkg = await controller.state.lastKnownGood();
    await writeFile(path.join(dir, 'fail-once'), '');
    await commitPolicies(repo, base, 'policies: drop gpt-big');
    const report = await controller.apply();
    expect(report.outcome).toBe('rolled-back');
    expect(report.problems.join('\n')).toMatch(/restart command exited with code 3/);
    expect(report.litellmOutput).toContain('start request repeated too quickly');
    expect(await controller.state.lastKnownGood()).toBe(lkg);
    expect(await served()).toContain('gpt-big');
    expect(git(repo, 'log', '-1', '--format=%s')).toMatch(/^modelcenter: roll back config to/);
  });

  it('the command never sees the controller’s keys; LiteLLM got them from its own unit file', async () => {
    // The controller's environment holds a master key the script must not receive.
    process.env.MODELCENTER_TEST_MASTER_KEY = keys.master;
    try {
      await writeFile(path.join(dir, 'spy.sh'), `#!/bin/sh\nenv > '${dir}/command-env'\n`);
      await chmod(path.join(dir, 'spy.sh'), 0o755);
      const spy = new CommandRestartStrategy({
        command: path.join(dir, 'spy.sh'),
        instances: [`http://127.0.0.1:${port}`],
        masterKey: keys.master,
      });
      await spy.reload(path.join(repo, 'litellm', 'config.yaml'));
      const seen = await readFile(path.join(dir, 'command-env'), 'utf8');
      expect(seen).toContain(
        `MODELCENTER_CONFIG_FILE=${path.join(repo, 'litellm', 'config.yaml')}`,
      );
      expect(seen).not.toContain(keys.master);
    } finally {
      delete process.env.MODELCENTER_TEST_MASTER_KEY;
    }
  });
});
