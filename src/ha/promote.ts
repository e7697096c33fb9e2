import type { NodeConfig } from '../config/types.js';
import { slotName } from '../config/render.js';
import { PgmError } from '../errors.js';
import { withClient } from '../postgres/sql.js';
import { adminTarget, type ClusterContext } from '../cluster/context.js';
import type { Secrets } from '../cluster/secrets.js';

export const ARCHIVER_SLOT = 'pgm_archiver';

/** Promotes `node` with pg_promote() and returns once it accepts writes; returns its new timeline. */
export async function promoteNode(ctx: ClusterContext, node: NodeConfig, secrets: Secrets, timeoutMs = 60_000): Promise<number> {
  return withClient(adminTarget(ctx, node, secrets), async (c) => {
    const rec = await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    if (rec.rows[0].r) {
      const p = await c.query<{ ok: boolean }>('SELECT pg_promote(true, $1) AS ok', [Math.ceil(timeoutMs / 1000)]);
      if (!p.rows[0].ok) throw new PgmError('cluster.unhealthy', `${node.name} did not finish promotion within ${timeoutMs / 1000} s.`, { hint: `read the server log of ${node.name}.` });
    }
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const r = await c.query<{ ro: boolean; w: string }>("SELECT pg_is_in_recovery() OR current_setting('transaction_read_only')::bool AS ro, pg_walfile_name(pg_current_wal_lsn()) AS w").catch(() => null);
      if (r && !r.rows[0].ro) return parseInt(r.rows[0].w.slice(0, 8), 16);
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new PgmError('cluster.unhealthy', `${node.name} does not accept writes ${timeoutMs / 1000} s after promotion.`, { hint: `read the server log of ${node.name}.` });
  }, timeoutMs);
}

/** Makes sure the new primary has a physical slot for every other node and for the WAL archiver; returns only once they exist. */
export async function ensureSlots(ctx: ClusterContext, primary: NodeConfig, secrets: Secrets): Promise<void> {
  const names = [...ctx.cfg.nodes.filter((n) => n.name !== primary.name).map(slotName), ARCHIVER_SLOT];
  await withClient(adminTarget(ctx, primary, secrets), async (c) => {
    for (const name of names) {
      await c.query('SELECT pg_create_physical_replication_slot($1, true) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)', [name]);
    }
    // the new primary's own slot, inherited from the old primary's copy, is of no use
    await c.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active', [slotName(primary)]);
  });
}

/** Re-points a replica at `primary` (primary_conninfo reloads without restart since PostgreSQL 13). */
export async function repoint(ctx: ClusterContext, node: NodeConfig, primary: NodeConfig): Promise<boolean> {
  return (await ctx.control(node).configure({ kind: 'replica', upstream: primary.name })).outcome !== 'unchanged';
}
