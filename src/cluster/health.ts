import type { NodeConfig } from '../config/types.js';
import { PgmError } from '../errors.js';
import { withClient } from '../postgres/sql.js';
import { adminTarget, type ClusterContext } from './context.js';
import type { Secrets } from './secrets.js';

/**
 * Returns once `primary` accepts writes and every replica streams from it,
 * or throws naming the first thing that is not healthy and its log's last words.
 */
export async function waitHealthy(ctx: ClusterContext, primary: NodeConfig, replicas: readonly NodeConfig[], secrets: Secrets, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let problem = '';
  let culprit: NodeConfig = primary;
  while (Date.now() < deadline) {
    try {
      const streaming = await withClient(adminTarget(ctx, primary, secrets), async (c) => {
        const r = await c.query<{ ro: boolean }>("SELECT pg_is_in_recovery() OR current_setting('default_transaction_read_only')::bool AS ro");
        if (r.rows[0].ro) throw new Error(`${primary.name} does not accept writes yet`);
        const s = await c.query<{ application_name: string }>("SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'");
        return new Set(s.rows.map((x) => x.application_name));
      });
      const missing = replicas.find((r) => !streaming.has(r.name));
      if (!missing) return;
      culprit = missing;
      problem = `replica ${missing.name} is not streaming from ${primary.name}`;
    } catch (err) {
      culprit = primary;
      problem = `primary ${primary.name} is not ready (${(err as Error).message.replace(/\.$/, '')})`;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const tail = await ctx.control(culprit).logTail().catch(() => '');
  throw new PgmError('cluster.unhealthy', `${problem} after ${Math.round(timeoutMs / 1000)} s${tail ? `; its log says: ${tail}` : ''}.`, {
    hint: `read the server log in ${culprit.dataDir}/log and ${ctx.paths.nodeLog(culprit)}, fix the cause, then run \`pgmaestro up\` again.`,
  });
}
