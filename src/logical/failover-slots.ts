import { adminTarget, currentPrimaryName, findNode, type ClusterContext } from '../cluster/context.js';
import type { Secrets } from '../cluster/secrets.js';
import { slotName } from '../config/render.js';
import type { NodeConfig } from '../config/types.js';
import { quoteLiteral, withClient } from '../postgres/sql.js';

/**
 * Subscriptions survive a failover of the publishing cluster (PostgreSQL
 * 17+): each subscription's slot is a failover slot, every standby keeps a
 * synchronised copy (`sync_replication_slots`), and the primary sends a
 * change to subscribers only once the standbys that may replace it have
 * it (`synchronized_standby_slots`) — so a promoted standby has the slot,
 * at a position no later than what the subscriber applied, and has every
 * change the subscriber has. The subscriber resumes from its own position:
 * nothing is lost and nothing is applied twice.
 *
 * `synchronized_standby_slots` names the slots of the standbys now able to
 * take over: a standby that is fenced, marked nofailover, or gone for longer
 * than the grace is left out, or every subscriber would wait for it. It is
 * state, not configuration, so it is set with ALTER SYSTEM on the primary.
 */

export interface StandbySlotView {
  readonly name: string;
  readonly active: boolean;
  /** How long it has been inactive (null: active, or unknown). */
  readonly inactiveMs: number | null;
}

/** The physical slots the primary's logical walsenders must wait for, pure. */
export function wantedStandbySlots(
  primary: string,
  nodes: readonly { readonly name: string; readonly nofailover: boolean }[],
  fenced: ReadonlySet<string>,
  slots: readonly StandbySlotView[],
  graceMs: number,
): string[] {
  return nodes
    .filter((n) => n.name !== primary && !n.nofailover && !fenced.has(n.name))
    .map((n) => ({ n, slot: slots.find((s) => s.name === slotName(n as NodeConfig)) }))
    .filter(({ slot }) => slot !== undefined && (slot.active || (slot.inactiveMs !== null && slot.inactiveMs < graceMs)))
    .map(({ slot }) => slot!.name)
    .sort();
}

/** How long a standby may be gone before subscribers stop waiting for it. */
export function standbyGraceMs(failoverTimeoutMs: number): number {
  return Math.max(30_000, 3 * failoverTimeoutMs);
}

/** Whether this cluster's subscriptions have failover slots (publications declared and PostgreSQL 17+). */
export function hasFailoverSlots(ctx: ClusterContext): boolean {
  return ctx.bins.major >= 17 && (ctx.cfg.logical?.publications.length ?? 0) > 0;
}

/**
 * Sets synchronized_standby_slots on the primary when it differs from what
 * it should be; with `replicas`, also drops, on each running replica, a
 * stale slot named after a subscription that is not a synchronised copy (an
 * old primary keeps its own after a switchover or rewind, and a same-named
 * unsynchronised slot stops the standby from keeping the primary's).
 * Returns a sentence per change. Never throws for a node that cannot be reached.
 */
export async function reconcileFailoverSlots(ctx: ClusterContext, secrets: Secrets, opts: { replicas: boolean } = { replicas: true }): Promise<string[]> {
  if (!hasFailoverSlots(ctx)) return [];
  const out: string[] = [];
  const primary = findNode(ctx.cfg, await currentPrimaryName(ctx));
  const fenced = new Set((await ctx.store.read())?.fenced ?? []);
  try {
    const line = await withClient(adminTarget(ctx, primary, secrets), async (c) => {
      const r = await c.query<{ slot_name: string; active: boolean; inactive_ms: number | null }>(
        `SELECT slot_name, active, (EXTRACT(epoch FROM now() - inactive_since) * 1000)::float8 AS inactive_ms FROM pg_replication_slots WHERE slot_type = 'physical'`,
      );
      const wanted = wantedStandbySlots(primary.name, ctx.cfg.nodes, fenced, r.rows.map((x) => ({ name: x.slot_name, active: x.active, inactiveMs: x.inactive_ms })), standbyGraceMs(ctx.cfg.ha.failoverTimeoutMs)).join(',');
      const now = (await c.query<{ v: string }>("SELECT current_setting('synchronized_standby_slots') AS v")).rows[0].v;
      if (now.split(',').map((s) => s.trim()).filter(Boolean).sort().join(',') === wanted) return null;
      await c.query(`ALTER SYSTEM SET synchronized_standby_slots = ${quoteLiteral(wanted)}`);
      await c.query('SELECT pg_reload_conf()');
      return wanted === ''
        ? `${primary.name}: subscribers no longer wait for any standby (synchronized_standby_slots emptied: no standby can take over now)`
        : `${primary.name}: subscribers get a change once ${wanted.split(',').join(' and ')} ${wanted.includes(',') ? 'have' : 'has'} it (synchronized_standby_slots), so a failover keeps them consistent`;
    });
    if (line) out.push(line);
  } catch {
    // the primary cannot be asked now: the next reconcile does it
  }
  if (!opts.replicas) return out;
  const names = (ctx.cfg.logical?.subscriptions ?? []).map((s) => s.name);
  for (const n of ctx.cfg.nodes.filter((x) => x.name !== primary.name && !fenced.has(x.name))) {
    // asked on its host (multi-host: through its agent), never a connection to a node that is down
    if ((await ctx.control(n).inspect()).pid === null) continue;
    try {
      const dropped = await withClient(adminTarget(ctx, n, secrets), async (c) => {
        const r = await c.query<{ slot_name: string }>(
          `SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'logical' AND NOT synced AND NOT active AND slot_name = ANY($1) AND pg_is_in_recovery()`,
          [names],
        );
        for (const x of r.rows) await c.query('SELECT pg_drop_replication_slot($1)', [x.slot_name]);
        return r.rows.map((x) => x.slot_name);
      });
      for (const s of dropped) out.push(`${n.name}: dropped its own slot ${s}, left from when it was primary, so that it keeps a synchronised copy of ${primary.name}'s instead`);
    } catch {
      // not reachable now
    }
  }
  return out;
}
