// @ts-check
// ESLint (flat config): the recommended rules over the app (browser), the
// browser scenarios (node, with callbacks that run in the page), the unit
// tests, scripts and the configuration files (node). `npm run lint`.

import js from '@eslint/js';
import globals from 'globals';

export default [
  { ignores: ['dist/', 'node_modules/', 'src/types/'] },
  js.configs.recommended,
  { files: ['src/**/*.js'], languageOptions: { globals: globals.browser } },
  { files: ['e2e/**/*.mjs'], languageOptions: { globals: { ...globals.node, ...globals.browser } } },
  { files: ['test/**/*.js', 'scripts/**/*.mjs', '*.config.js'], languageOptions: { globals: globals.node } },
];
