import { PgmError } from '../errors.js';
import { pgStop, postmasterRunning } from '../postgres/control.js';
import { findNode, type ClusterContext } from '../cluster/context.js';
import type { Secrets } from '../cluster/secrets.js';
import { nextState, type ClusterState } from '../cluster/state.js';
import { tcpAnswers } from './probe.js';
import { ensureSlots, promoteNode, repoint } from './promote.js';

/** What the daemon plugs in so a promotion moves the stable endpoint (and VIP) too. */
export interface PrimaryHooks {
  /** null: no primary (fenced, promotion in progress); new connections wait. */
  setPrimary(name: string | null, reason: string): Promise<void> | void;
}

export const NO_HOOKS: PrimaryHooks = { setPrimary: () => undefined };

export interface PromotionRequest {
  readonly kind: 'failover' | 'switchover';
  readonly from: string;
  readonly to: string;
  readonly reason: string;
}

function state(ctx: ClusterContext): ClusterState {
  const st = ctx.store.read();
  if (!st) throw new PgmError('cluster.state', `the cluster ${ctx.cfg.cluster} has no state yet.`, { hint: 'run pgmaestro up first.' });
  return st;
}

/**
 * Failover: fence the old primary, promote `to`, move the endpoint, give the
 * new primary its slots and re-point the other replicas. The step is recorded
 * in the cluster state before the first irreversible action and cleared after
 * the last, so a daemon restarted mid-way calls this again and finishes.
 * Returns the sentence for the event log.
 */
export async function failover(ctx: ClusterContext, secrets: Secrets, req: PromotionRequest, hooks: PrimaryHooks, log: (line: string) => void): Promise<string> {
  const from = findNode(ctx.cfg, req.from);
  const to = findNode(ctx.cfg, req.to);
  const started = Date.now();

  // 0. remember what we are doing
  const st0 = state(ctx);
  ctx.store.write(nextState(st0, { pending: { ...req, at: new Date().toISOString() }, fenced: [...new Set([...st0.fenced, from.name])] }));

  // 1. fence the old primary: no client may reach it, and stop it where we can
  await hooks.setPrimary(null, `${req.kind}: fencing ${from.name}`);
  if (!(await tcpAnswers(from.admin, from.port))) {
    log(`${from.name} cannot be reached: fenced out of the endpoint now, stopped when it can be reached again`);
  } else if (postmasterRunning(from.dataDir)) {
    await pgStop(ctx.bins, ctx.user, from.dataDir, req.kind === 'switchover' ? 'fast' : 'immediate', 30).catch((err: Error) => log(`${from.name}: could not be stopped (${err.message}); it stays fenced`));
  }

  // 2. promote the candidate
  const timeline = await promoteNode(ctx, to, secrets);

  // 3. the endpoint and the state follow the new primary
  ctx.store.write(nextState(state(ctx), { primary: to.name, timeline, pending: null, hold: null }));
  await hooks.setPrimary(to.name, `${req.kind} to ${to.name}`);

  // 4. slots on the new primary, the other replicas re-pointed
  await ensureSlots(ctx, to, secrets);
  for (const n of ctx.cfg.nodes) if (n.name !== to.name && n.name !== from.name) await repoint(ctx, n, to);

  return `${req.kind === 'failover' ? 'promoted' : 'switched over to'} ${to.name} (timeline ${timeline}) in ${((Date.now() - started) / 1000).toFixed(1)} s: ${req.reason}; ${from.name} is fenced until it rejoins`;
}

/** After a daemon restart: finish a promotion that was in progress. */
export async function resumePending(ctx: ClusterContext, secrets: Secrets, hooks: PrimaryHooks, log: (line: string) => void): Promise<string | null> {
  const p = ctx.store.read()?.pending;
  if (!p) return null;
  log(`resuming the ${p.kind} from ${p.from} to ${p.to} that was in progress since ${p.at}`);
  return failover(ctx, secrets, { kind: p.kind, from: p.from, to: p.to, reason: `${p.reason} (resumed after a daemon restart)` }, hooks, log);
}
