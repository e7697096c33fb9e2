import { PgmError } from '../errors.js';
import { findNode, type ClusterContext } from '../cluster/context.js';
import type { Secrets } from '../cluster/secrets.js';
import { nextState, type ClusterState } from '../cluster/state.js';
import { confirmCandidate } from './election.js';
import { haPolicy } from './policy-config.js';
import { observe, tcpAnswers } from './probe.js';
import { ensureSlots, repoint } from './promote.js';
import { afterPromotion } from '../logical/ha-hooks.js';

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
  /** `to` was elected (see PendingStep.elected). */
  readonly elected?: boolean;
}

async function state(ctx: ClusterContext): Promise<ClusterState> {
  const st = await ctx.store.read();
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
  const started = Date.now();

  // 0. remember what we are doing
  const st0 = await state(ctx);
  await ctx.store.write(nextState(st0, { pending: { ...req, at: new Date().toISOString() }, fenced: [...new Set([...st0.fenced, from.name])] }));

  // 1. fence the old primary: no client may reach it, and stop it where we can;
  //    multi-host: nobody is promoted while its lease holds — its agent releases
  //    it once fenced, or it expires after the agent (or its guard) fenced it
  await hooks.setPrimary(null, `${req.kind}: fencing ${from.name}`);
  const fencing = fenceOld(ctx, req, log);
  if (ctx.cfg.dcs) {
    await Promise.race([fencing, waitLeaseReleased(ctx, from.name, log)]);
    await waitLeaseReleased(ctx, from.name, log);
  } else {
    await fencing;
  }

  // 1b. an elected target is confirmed on the positions as they are now that the old primary is stopped
  const to = findNode(ctx.cfg, req.elected ? await confirmTarget(ctx, secrets, req, log) : req.to);

  // 2. promote the candidate
  const timeline = await ctx.control(to).promote();

  // 3. the endpoint and the state follow the new primary
  await ctx.store.write(nextState(await state(ctx), { primary: to.name, timeline, pending: null, hold: null }));
  await hooks.setPrimary(to.name, `${req.kind} to ${to.name}`);

  // 4. slots on the new primary, the other replicas re-pointed
  await ensureSlots(ctx, to, secrets);
  for (const n of ctx.cfg.nodes) if (n.name !== to.name && n.name !== from.name) await repoint(ctx, n, to);
  for (const line of await afterPromotion(ctx, secrets, to.name)) log(line);

  return `${req.kind === 'failover' ? 'promoted' : 'switched over to'} ${to.name} (timeline ${timeline}) in ${((Date.now() - started) / 1000).toFixed(1)} s: ${req.reason}; ${from.name} is fenced until it rejoins`;
}

/** Stops the old primary where it can be reached (a switchover cleanly, a failover at once); never throws. */
async function fenceOld(ctx: ClusterContext, req: PromotionRequest, log: (line: string) => void): Promise<void> {
  const from = findNode(ctx.cfg, req.from);
  const old = ctx.control(from);
  if (old.kind === 'local' && !(await tcpAnswers(from.admin, from.port))) {
    // the lab rehearses a host cut off from the network: its processes are out of reach too
    log(`${from.name} cannot be reached: fenced out of the endpoint now, stopped when it can be reached again`);
    return;
  }
  const how = req.kind === 'switchover' ? old.stop('fast', 30) : old.fence(req.reason);
  await how.then(
    () => undefined,
    (err: Error) => log(`${from.name} could not be stopped (${err.message.replace(/\.$/, '')}); it stays fenced and is stopped when it can be reached again`),
  );
}

/**
 * The elected target, checked again on the replicas' positions now that the
 * old primary is stopped (election.ts, confirmCandidate). In synchronous
 * mode, with too few replicas answering, nobody is promoted: the step stays
 * pending, the old primary fenced, and the next cycle tries again.
 */
async function confirmTarget(ctx: ClusterContext, secrets: Secrets, req: PromotionRequest, log: (line: string) => void): Promise<string> {
  const st = await state(ctx);
  const nodes = await Promise.all(ctx.cfg.nodes.filter((n) => n.name !== req.from).map((n) => observe(ctx, n, secrets, st.fenced.includes(n.name))));
  const c = confirmCandidate(nodes, haPolicy(ctx), req.from, req.to);
  if (c.to === null) {
    throw new PgmError('cluster.unhealthy', `the ${req.kind} from ${req.from} waits: ${c.sentence}.`, {
      hint: `${req.from} stays fenced; the controller promotes a replica as soon as that is safe (bring the replicas back).`,
    });
  }
  if (c.to !== req.to) {
    log(c.sentence!);
    await ctx.store.write(nextState(st, { pending: { ...st.pending!, to: c.to } }));
  }
  return c.to;
}

async function waitLeaseReleased(ctx: ClusterContext, node: string, log: (line: string) => void): Promise<void> {
  if (!ctx.cfg.dcs) return;
  const limit = ctx.cfg.dcs.etcd.ttlMs + 2 * ctx.cfg.ha.loopWaitMs + ctx.cfg.dcs.etcd.retryTimeoutMs;
  const deadline = Date.now() + limit;
  let said = false;
  while ((await ctx.store.primaryHolder(ctx.group)) === node) {
    if (Date.now() > deadline) {
      throw new PgmError('cluster.unhealthy', `${node} still holds its primary lease ${(limit / 1000).toFixed(1)} s after it was fenced, so nobody can be promoted.`, {
        hint: `check the agent of ${node}'s host (pgmaestro status); the promotion resumes by itself once the lease is gone.`,
      });
    }
    if (!said) log(`waiting for ${node}'s primary lease to be released or to expire`);
    said = true;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** After a daemon restart: finish a promotion that was in progress. */
export async function resumePending(ctx: ClusterContext, secrets: Secrets, hooks: PrimaryHooks, log: (line: string) => void): Promise<string | null> {
  const p = (await ctx.store.read())?.pending;
  if (!p) return null;
  log(`resuming the ${p.kind} from ${p.from} to ${p.to} that was in progress since ${p.at}`);
  return failover(ctx, secrets, { kind: p.kind, from: p.from, to: p.to, elected: p.elected, reason: p.reason.endsWith(' (resumed)') ? p.reason : `${p.reason} (resumed)` }, hooks, log);
}
