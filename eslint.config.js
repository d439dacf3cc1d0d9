// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Each side effect has exactly one adapter folder that may import its library (STYLE.md §5). */
const adapters = [
  { name: 'simple-git', owner: 'src/gitstate/**' },
  { name: 'axios', owner: 'src/litellm/**' },
  { name: 'node-cron', owner: 'src/scheduler/**' },
  { name: 'chokidar', owner: 'src/watch/**' },
  { name: 'pino', owner: 'src/log/logger.ts' },
  { name: 'pino-pretty', owner: 'src/log/logger.ts' },
  { name: 'prom-client', owner: 'src/metrics/**' },
  { name: 'pg', owner: 'src/store/**' },
  { name: '@electric-sql/pglite', owner: 'src/store/**' },
];

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'litellm/.venv/', 'eslint.config.js', 'bin/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: adapters.map((a) => ({
            name: a.name,
            message: `only ${a.owner} imports ${a.name}`,
          })),
        },
      ],
    },
  },
  ...adapters.map((a) => ({ files: [a.owner], rules: { 'no-restricted-imports': 'off' } })),
  {
    files: ['src/shared/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['../*/**', '!../shared/**'], message: 'src/shared imports no domain folder' },
          ],
        },
      ],
    },
  },
);
