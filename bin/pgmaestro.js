#!/usr/bin/env node
// Runs the compiled CLI (npm install builds it through the prepare script).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
if (!existsSync(main)) {
  process.stderr.write('pgmaestro: the compiled CLI is missing (dist/). HINT: run `npm install` (or `npm run build`) in the pgmaestro directory.\n');
  process.exit(1);
}
await import(main);
