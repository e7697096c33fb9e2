import type { QueryNodeConfig } from '../config/types.js';
import type { ClusterContext } from '../cluster/context.js';
import type { DataDirState } from '../cluster/datadir.js';
import { configureAndStart, type Log } from '../cluster/provision.js';
import { checkPlanned } from '../cluster/reload.js';

/**
 * Query nodes: independent servers (their own system identifier, never a
 * physical replica) that pgmaestro initialises with the cluster's binaries
 * and settings — the shared postgresql.conf, their own node file with
 * `default_transaction_read_only = on` and their overrides, a pg_hba.conf
 * without replication — and that logical replication then fills.
 */

export function queryNodes(ctx: ClusterContext): readonly QueryNodeConfig[] {
  return ctx.cfg.queryNodes ?? [];
}

/** `up`, before anything is written: each query node's data directory is empty or its own, its port free, its configuration accepted by PostgreSQL (through its node control, as the members). */
export async function preflightQueryNodes(ctx: ClusterContext): Promise<Map<string, DataDirState>> {
  const states = new Map<string, DataDirState>();
  for (const node of queryNodes(ctx)) states.set(node.name, await ctx.control(node).preflight());
  await checkPlanned(
    ctx,
    queryNodes(ctx).filter((n) => states.get(n.name)?.kind === 'ours').map((node) => ({ node, role: { kind: 'query' } as const })),
  );
  return states;
}

/** `up`, once the members are up: initialise the query nodes that have no data, apply their files and start them. Idempotent. */
export async function provisionQueryNodes(ctx: ClusterContext, states: ReadonlyMap<string, DataDirState>, log: Log): Promise<void> {
  for (const node of queryNodes(ctx)) {
    if (states.get(node.name)?.kind === 'empty') {
      await ctx.control(node).initPrimary('query');
      log(`${node.name}: initialised a new PostgreSQL ${ctx.bins.version} query node in ${node.dataDir} (its own database system, fed by logical replication)`);
    }
    await configureAndStart(ctx, node, { kind: 'query' }, log);
  }
}

/** `down`: the query nodes stop after the members. */
export async function stopQueryNodes(ctx: ClusterContext, log: Log): Promise<void> {
  for (const node of queryNodes(ctx)) log(`${node.name}: ${await ctx.control(node).stop()}`);
}
