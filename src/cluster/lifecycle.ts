import fs from 'node:fs';
import path from 'node:path';
import type { NodeConfig } from '../config/types.js';
import { pgStart, pgStop, postmasterRunning, readTail } from '../postgres/control.js';
import type { ClusterContext } from './context.js';
import { nodeUser } from './lab.js';
import { assertPortFree } from './ports.js';

/** Starts `node` unless its postmaster already runs; says which. */
export async function startNode(ctx: ClusterContext, node: NodeConfig): Promise<'started' | 'running'> {
  if (postmasterRunning(node.dataDir)) return 'running';
  if (!ctx.lab) await assertPortFree(node, ctx.cfg.file); // a lab namespace is private to its node
  await pgStart(ctx.bins, nodeUser(ctx.user, ctx.lab, node), node.dataDir, ctx.paths.nodeLog(node));
  return 'started';
}

export async function stopNode(ctx: ClusterContext, node: NodeConfig, mode: 'fast' | 'immediate' = 'fast'): Promise<'stopped' | 'not running'> {
  if (!postmasterRunning(node.dataDir)) return 'not running';
  await pgStop(ctx.bins, ctx.user, node.dataDir, mode);
  return 'stopped';
}

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
