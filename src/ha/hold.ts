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

export function holdNewConnections(ctx: ClusterContext, reason: string): void {
  const st = ctx.store.read();
  if (st) ctx.store.write(nextState(st, { hold: { reason, until: new Date(Date.now() + HOLD_LIMIT_MS).toISOString() } }));
}

export function releaseHold(ctx: ClusterContext): void {
  const st = ctx.store.read();
  if (st?.hold) ctx.store.write(nextState(st, { hold: null }));
}
