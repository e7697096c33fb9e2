import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = path.join(REPO, 'src', 'cli', 'main.ts');
export const PG15_BIN = '/usr/lib/postgresql/15/bin';
