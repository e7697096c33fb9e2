import type { ClusterContext } from '../cluster/context.js';
import type { Secrets } from '../cluster/secrets.js';
import { reconcileFailoverSlots } from './failover-slots.js';

/**
 * What failover, switchover and rejoin call so that subscriptions follow a
 * change of primary. Each returns sentences for the event log and never
 * throws: the change of primary itself must not fail because of a subscriber.
 */

/** Right after a promotion: the new primary waits for its standbys before it feeds subscribers; below 17, say plainly that the slots did not move. */
export async function afterPromotion(ctx: ClusterContext, secrets: Secrets, promoted: string): Promise<string[]> {
  const subs = ctx.cfg.logical?.subscriptions ?? [];
  if (subs.length === 0) return [];
  if (ctx.bins.major < 17) {
    const names = subs.map((s) => s.name);
    return [
      `logical replication: the subscription${names.length === 1 ? '' : 's'} ${names.join(', ')} lost ${names.length === 1 ? 'its slot' : 'their slots'} with this change of primary: PostgreSQL ${ctx.bins.major} has no failover slots, so ${promoted} never had a copy and ${names.length === 1 ? 'it stops' : 'they stop'} with "replication slot does not exist"; copy ${names.length === 1 ? 'its' : 'their'} tables afresh with ${names.map((n) => `pgmaestro logical resync ${n}`).join(' and ')} (logical status shows it)`,
    ];
  }
  return reconcileFailoverSlots(ctx, secrets, { replicas: false }).catch(() => []);
}

/** Once an old primary runs again as a replica: its own slots of the subscriptions go, so it keeps synchronised copies of the new primary's. */
export async function afterFollow(ctx: ClusterContext, secrets: Secrets): Promise<string[]> {
  if ((ctx.cfg.logical?.subscriptions ?? []).length === 0) return [];
  return reconcileFailoverSlots(ctx, secrets, { replicas: true }).catch(() => []);
}
