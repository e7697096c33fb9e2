import { stopDaemon, stopRole, supervisorRole } from '../daemon/spawn.js';
import { stopEndpoints } from '../router/processes.js';
import { currentPrimaryName, type ClusterContext } from './context.js';
import { destroyLab } from './lab.js';
import type { Log } from './provision.js';
import { stopQueryNodes } from '../logical/query-node.js';

/**
 * `pgmaestro down`: stop the supervisor (so nothing restarts the daemon), the
 * daemon (so nothing restarts an endpoint), the endpoint processes, then the
 * primary (its walsenders hand the replicas everything up to the shutdown
 * checkpoint), then the replicas. Each process by its pid. Data is kept.
 */
export async function down(ctx: ClusterContext, log: Log): Promise<void> {
  if (await stopRole(ctx, supervisorRole(ctx))) log('supervisor: stopped');
  if (await stopDaemon(ctx)) log('daemon: stopped');
  for (const line of await stopEndpoints(ctx)) log(line);
  const primary = await currentPrimaryName(ctx);
  const ordered = [...ctx.cfg.nodes].sort((a, b) => Number(b.name === primary) - Number(a.name === primary));
  for (const node of ordered) {
    const r = await ctx.control(node).stop();
    log(`${node.name}: ${r}`);
  }
  await stopQueryNodes(ctx, log);
  if (await destroyLab(ctx.paths.stateDir)) log('lab: network namespaces and bridge removed');
}
