import type { ClusterContext } from '../cluster/context.js';
import { nextState } from '../cluster/state.js';

/**
 * The endpoints' hold on new connections, recorded in the cluster state so
 * every endpoint process sees it (with or without a daemon): while it holds,
 * the endpoints have no primary, so new connections (rw) and writes (auto)
 * wait up to `endpoints.hold` instead of failing. Set by a planned stop of
 * the primary (switchover, rolling restart in place) before anything is
 * irreversible; a hold left behind by a command that died lapses by itself.
 */
export const HOLD_LIMIT_MS = 180_000;

export async function holdNewConnections(ctx: ClusterContext, reason: string): Promise<void> {
  await ctx.store.update(ctx.group, (st) => (st ? nextState(st, { hold: { reason, until: new Date(Date.now() + HOLD_LIMIT_MS).toISOString() } }) : null));
}

export async function releaseHold(ctx: ClusterContext): Promise<void> {
  await ctx.store.update(ctx.group, (st) => (st?.hold ? nextState(st, { hold: null }) : null));
}
