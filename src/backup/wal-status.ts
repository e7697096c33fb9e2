import { adminTarget, currentPrimaryName, findNode, type ClusterContext } from '../cluster/context.js';
import { readSecrets } from '../cluster/secrets.js';
import { formatLsn, lsnDiff, parseLsn } from '../postgres/lsn.js';
import type { Lsn } from '../postgres/lsn.js';
import { withClient } from '../postgres/sql.js';
import type { Repository } from './repository.js';
import { archivePosition } from './wal-archive.js';

/** What `status` shows about the WAL archive. */
export interface ArchiveStatus {
  /** The newest archived segment, null when none is. */
  readonly last_segment: string | null;
  /** Where it ends (`X/X`): WAL before it is archived. */
  readonly archived_lsn: string | null;
  readonly timeline: number | null;
  /** Bytes the primary has written past the archive; null when either position is unknown. */
  readonly lag_bytes: number | null;
}

/**
 * The archive's position and its lag behind the primary. `primaryLsn` is the
 * primary's current WAL position when the caller already has it (status
 * does); otherwise the primary is asked, and an unreachable primary gives
 * `lag_bytes: null`, never an error.
 */
export async function archiveStatus(ctx: ClusterContext, repo: Repository, primaryLsn?: Lsn | string | null): Promise<ArchiveStatus> {
  const pos = archivePosition(repo);
  let primary: Lsn | null = typeof primaryLsn === 'string' ? parseLsn(primaryLsn) : (primaryLsn ?? null);
  if (primaryLsn === undefined && pos) primary = await currentLsn(ctx).catch(() => null);
  return {
    last_segment: pos?.segment ?? null,
    archived_lsn: pos ? formatLsn(pos.lsn) : null,
    timeline: pos?.timeline ?? null,
    lag_bytes: pos && primary !== null ? Number(lsnDiff(primary, pos.lsn)) : null,
  };
}

async function currentLsn(ctx: ClusterContext): Promise<Lsn | null> {
  const secrets = readSecrets(ctx.cfg);
  if (!secrets) return null;
  const node = findNode(ctx.cfg, await currentPrimaryName(ctx));
  return withClient(adminTarget(ctx, node, secrets), async (c) => {
    const r = await c.query<{ lsn: string | null }>('SELECT CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS lsn');
    return r.rows[0]?.lsn ? parseLsn(r.rows[0].lsn) : null;
  });
}
