import fs from 'node:fs';
import path from 'node:path';
import type { NodeConfig } from '../config/types.js';
import { readTail } from '../postgres/control.js';

/** Last lines of the node's newest server log, to explain a failure. */
export function serverLogTail(node: NodeConfig, lines = 3): string {
  const dir = path.join(node.dataDir, 'log');
  let newest: string | null = null;
  try {
    const files = fs.readdirSync(dir).map((f) => path.join(dir, f));
    newest = files.sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0] ?? null;
  } catch {
    return '';
  }
  if (!newest) return '';
  return readTail(newest, 8192)
    .trim()
    .split('\n')
    .slice(-lines)
    .join(' / ');
}
