import type { ClusterContext } from '../cluster/context.js';
import { DEFAULT_HA_POLICY, type HaPolicy } from './observations.js';

/** The failover policy as the configuration sets it (ha.*), over the defaults. */
export function haPolicy(ctx: ClusterContext): HaPolicy {
  const ha = ctx.cfg.ha;
  return {
    ...DEFAULT_HA_POLICY,
    failoverTimeoutMs: ha.failoverTimeoutMs,
    restartFirst: ha.restartFirst,
    maximumLagOnFailoverBytes: ha.maximumLagOnFailover,
    synchronous: ha.quorum === null ? null : { quorum: ha.quorum },
  };
}
