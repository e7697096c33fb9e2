import type { ClusterContext } from '../cluster/context.js';
import type { DataDirState } from '../cluster/datadir.js';
import { ensureSecrets } from '../cluster/secrets.js';
import { logicalApply, type Log } from './apply.js';
import { preflightQueryNodes, provisionQueryNodes, queryNodes } from './query-node.js';

/**
 * `up`'s logical part. Before the members are touched: the query nodes'
 * directories, ports and configuration are checked (`preflight`). Once the
 * members are healthy: the query nodes are created and started, then the
 * declared publications and subscriptions are applied (as `logical apply`,
 * never pruning). The caller holds the cluster lock.
 */
export async function preflightLogical(ctx: ClusterContext): Promise<Map<string, DataDirState>> {
  return preflightQueryNodes(ctx);
}

export async function upLogical(ctx: ClusterContext, states: ReadonlyMap<string, DataDirState>, log: Log): Promise<void> {
  const secrets = ensureSecrets(ctx.cfg, ctx.user);
  if (queryNodes(ctx).length > 0) await provisionQueryNodes(ctx, states, log);
  const lg = ctx.cfg.logical;
  if (!lg || (lg.publications.length === 0 && lg.subscriptions.length === 0)) return;
  await logicalApply(ctx, secrets, { dryRun: false, prune: false, wait: true, copyTimeoutMs: 600_000 }, log);
}
