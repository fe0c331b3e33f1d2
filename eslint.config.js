import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      'proto/gen/**',
      '.runs/**',
      '**/*.mjs',
      '**/*.js',
      'vitest.config.ts',
    ],
  },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { project: './tsconfig.test.json', tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/loadgen/**', '**/deploy/**', '**/test/**'],
              message: 'nothing imports loadgen, deploy or test',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['loadgen/**', 'deploy/**', 'test/**'],
    rules: { 'no-restricted-imports': 'off' },
  },
);
