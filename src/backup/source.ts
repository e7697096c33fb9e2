import type { NodeConfig } from '../config/types.js';
import { PgmError } from '../errors.js';
import { withClient } from '../postgres/sql.js';
import { adminTarget, currentPrimaryName, findNode, type ClusterContext } from '../cluster/context.js';
import type { Secrets } from '../cluster/secrets.js';

export interface BackupSource {
  readonly node: NodeConfig;
  readonly isPrimary: boolean;
  /** server_version_num / 10000 */
  readonly major: number;
  readonly version: string;
  readonly summarizeWal: boolean;
}

/**
 * The node a backup is taken from: `--from NODE` when given; else per
 * `backup.from`: a streaming replica when one exists (sparing the primary),
 * the primary otherwise.
 */
export async function chooseSource(ctx: ClusterContext, secrets: Secrets, from?: string): Promise<BackupSource> {
  const wanted = from ?? ctx.cfg.backup.from;
  const primary = await currentPrimaryName(ctx);
  const candidates =
    wanted === 'primary' ? [findNode(ctx.cfg, primary)] : wanted === 'replica' ? [...ctx.cfg.nodes.filter((n) => n.name !== primary), findNode(ctx.cfg, primary)] : [findNode(ctx.cfg, wanted)];
  const problems: string[] = [];
  for (const node of candidates) {
    try {
      return await withClient(adminTarget(ctx, node, secrets), async (c) => {
        const r = await c.query<{ rec: boolean; num: string; ver: string; sw: string | null }>(
          "SELECT pg_is_in_recovery() AS rec, current_setting('server_version_num') AS num, current_setting('server_version') AS ver, current_setting('summarize_wal', true) AS sw",
        );
        const row = r.rows[0];
        if (row.rec && node.name === primary) throw new Error('it is in recovery');
        if (row.rec) {
          const s = await c.query("SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming'");
          if (s.rowCount === 0 && from === undefined) throw new Error('it is not streaming');
        }
        return { node, isPrimary: !row.rec, major: Math.floor(Number(row.num) / 10000), version: row.ver.split(' ')[0], summarizeWal: row.sw === 'on' };
      }, 3000);
    } catch (err) {
      problems.push(`${node.name}: ${(err as Error).message.replace(/\.$/, '')}`);
    }
  }
  throw new PgmError('node.down', `no node can serve the backup (${problems.join('; ')}).`, {
    hint: 'start the cluster with pgmaestro up, or name a running node with --from NODE.',
  });
}
