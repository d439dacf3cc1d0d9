import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { buildFromDir } from '../../src/compile/build.js';
import { GENERATED_HEADER, render, RENDER_OPTIONS } from '../../src/compile/render.js';
import type { LiteLLMConfig } from '../../src/compile/litellm-config.js';
import { litellmVenv } from '../../src/litellm/install.js';
import { EXAMPLE_POLICIES } from '../helpers/policies.js';

/** Parses YAML with the PyYAML inside the pinned LiteLLM venv: the parser LiteLLM itself uses. */
function pyyaml(text: string): unknown {
  const python = path.join(litellmVenv(), 'bin', 'python');
  const script = 'import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))';
  return JSON.parse(execFileSync(python, ['-c', script], { input: text, encoding: 'utf8' }));
}

const asConfig = (value: unknown) => value as LiteLLMConfig;

describe('render', () => {
  it('writes the example config byte-for-byte as the yaml library would', async () => {
    const build = await buildFromDir(EXAMPLE_POLICIES);
    expect(render(build.config!)).toBe(GENERATED_HEADER + stringify(build.config, RENDER_OPTIONS));
  });

  it.each([
    [
      'YAML 1.1 booleans and null words',
      { a: ['yes', 'no', 'on', 'off', 'y', 'N', 'true', 'null', '~'] },
    ],
    ['numbers that look like strings', { a: ['0755', '1e3', '12', '1.5', '.inf', '-1'] }],
    [
      'plain strings with colons and slashes',
      {
        a: [
          'llama3.1:8b',
          'os.environ/KEY',
          'http://127.0.0.1:8000/v1',
          'fast/gpt-4o',
          'Qwen/Qwen2.5-32B',
        ],
      },
    ],
    ['floats in every range', { a: [1e-7, 2.5e-6, 0.1, 5.9e-7, 123.456, -0.5, 1.5e-10] }],
    [
      'empty and nested collections',
      { a: [], b: {}, c: [{}], d: [[1, 2], []], e: [{ x: [{ y: 1 }] }], f: true, g: null },
    ],
  ])('round-trips %s exactly and matches the library', (_label, value) => {
    const text = render(asConfig(value));
    expect(text).toBe(GENERATED_HEADER + stringify(value, RENDER_OPTIONS));
    expect(parse(text, { version: '1.1' })).toEqual(value);
  });

  const awkward = [
    'a: b',
    'x #c',
    'trailing:',
    '',
    ' lead',
    'tab\there',
    'quote"s',
    "it's",
    'line\nbreak',
    'ünï',
    '*star',
    '&amp',
    '!bang',
    '@at',
    '%pc',
    '`tick',
    '{b}',
    '[s]',
    '- dash',
    '? q',
    '|pipe',
    '>gt',
    'yes',
    'Off',
    '0755',
    '1e3',
    '1:20',
    '2026-01-01',
    '.nan',
  ];

  it('keeps every awkward string a string, as both the yaml library and PyYAML read it', () => {
    const value = {
      a: awkward,
      b: Object.fromEntries(awkward.filter(Boolean).map((k, i) => [k, i])),
    };
    const text = render(asConfig(value));
    expect(parse(text, { version: '1.1' })).toEqual(value);
    expect(pyyaml(text)).toEqual(value);
  });

  it("gives LiteLLM's PyYAML the same config the compiler built, numbers as numbers", async () => {
    const build = await buildFromDir(EXAMPLE_POLICIES);
    expect(pyyaml(build.yaml!)).toEqual(JSON.parse(JSON.stringify(build.config)));
  });
});
