import { stopDaemon } from '../daemon/spawn.js';
import { currentPrimaryName, type ClusterContext } from './context.js';
import { destroyLab } from './lab.js';
import type { Log } from './provision.js';
import { stopQueryNodes } from '../logical/query-node.js';

/**
 * `pgmaestro down`: stop the daemon, then the primary (its walsenders hand the
 * replicas everything up to the shutdown checkpoint), then the replicas. Data is kept.
 */
export async function down(ctx: ClusterContext, log: Log): Promise<void> {
  if (await stopDaemon(ctx)) log('daemon: stopped');
  const primary = await currentPrimaryName(ctx);
  const ordered = [...ctx.cfg.nodes].sort((a, b) => Number(b.name === primary) - Number(a.name === primary));
  for (const node of ordered) {
    const r = await ctx.control(node).stop();
    log(`${node.name}: ${r}`);
  }
  await stopQueryNodes(ctx, log);
  if (await destroyLab(ctx.paths.stateDir)) log('lab: network namespaces and bridge removed');
}
