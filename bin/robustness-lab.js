#!/usr/bin/env node
// The CLI is bundled by `npm run build` (run automatically by `npm ci` through `prepare`).
require('../dist/cli.js');
