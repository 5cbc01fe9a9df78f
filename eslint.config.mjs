// ESLint: typescript-eslint's recommended rules plus the import boundaries of the design (the same
// ones scripts/check-imports.mjs checks for cycles): the engine never imports VS Code, the extension
// reaches the engine only through the worker and src/protocol, the webview imports no Node built-ins.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const NODE_BUILTINS = ['fs', 'path', 'os', 'child_process', 'worker_threads', 'crypto', 'zlib', 'util', 'module', 'url', 'stream', 'events'];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.vscode-test/**', 'test-artifacts/**', 'demo/**', 'bench/out/**', '**/*.d.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        console: 'readonly',
        process: 'readonly',
        Buffer: 'readonly',
        __dirname: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        performance: 'readonly',
        TextDecoder: 'readonly',
        TextEncoder: 'readonly',
        URL: 'readonly',
        AbortController: 'readonly',
        AbortSignal: 'readonly',
        DOMException: 'readonly',
        btoa: 'readonly',
        atob: 'readonly',
        structuredClone: 'readonly',
        queueMicrotask: 'readonly',
        require: 'readonly',
        module: 'writable',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    // CommonJS entry points and the Electron test suite.
    files: ['bin/**/*.js', '**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { exports: 'writable' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Scripts and e2e tests: Node's fetch, and browser code passed to page.evaluate.
    files: ['scripts/**', 'test/e2e/**'],
    languageOptions: { globals: { fetch: 'readonly', window: 'readonly', document: 'readonly', MutationObserver: 'readonly' } },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['vscode'], message: 'src/core never imports VS Code.' },
            { group: ['**/extension/**', '**/cli/**', '**/worker/**'], message: 'The engine does not import its front ends.' },
          ],
        },
      ],
    },
  },
  {
    files: ['src/protocol/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group: ['**/core/**'], message: 'src/protocol imports nothing from src/core.' }] }] },
  },
  {
    files: ['src/extension/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/core/**'], message: 'The extension reaches the engine through the worker and src/protocol only.' }] },
      ],
    },
  },
  {
    files: ['webview-ui/**/*.ts'],
    languageOptions: {
      globals: {
        window: 'readonly',
        document: 'readonly',
        HTMLElement: 'readonly',
        MessageEvent: 'readonly',
        MutationObserver: 'readonly',
        acquireVsCodeApi: 'readonly',
        getComputedStyle: 'readonly',
        ImageData: 'readonly',
        HTMLCanvasElement: 'readonly',
      },
    },
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: ['vscode', ...NODE_BUILTINS, ...NODE_BUILTINS.map((m) => `node:${m}`)],
          patterns: [{ group: ['**/core/**'], message: 'The webview renders RunResults; it does not run the engine.' }],
        },
      ],
    },
  },
);
