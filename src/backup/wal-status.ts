import fs from 'node:fs';
import { adminTarget, currentPrimaryName, findNode, type ClusterContext } from '../cluster/context.js';
import { readSecrets } from '../cluster/secrets.js';
import { formatLsn, lsnDiff, parseLsn } from '../postgres/lsn.js';
import type { Lsn } from '../postgres/lsn.js';
import { withClient } from '../postgres/sql.js';
import { archiveReach } from '../restore/restore.js';
import type { Repository } from './repository.js';
import { archivePosition, readHistories } from './wal-archive.js';
import { readGaps } from './wal-gaps.js';
import { openSegments } from './wal-open.js';
import { archiverStateFile, type ArchiverState } from './wal-receiver.js';
import { recoveryWindow, type WindowInput, type WindowReport } from './window.js';

/** What `status` shows about the WAL archive. */
export interface ArchiveStatus {
  /** The newest complete archived segment, null when none is. */
  readonly last_segment: string | null;
  /** Where the durable WAL ends (`X/X`), the segment in progress included: WAL before it is archived. */
  readonly archived_lsn: string | null;
  readonly timeline: number | null;
  /** Bytes the primary has written past the archive; null when either position is unknown. */
  readonly lag_bytes: number | null;
  /** Seconds since the archive last held everything the primary had sent (0 when caught up); null when unknown. */
  readonly lag_seconds: number | null;
}

/**
 * The archive's position and its lag behind the primary. `primaryLsn` is the
 * primary's current WAL position when the caller already has it (status
 * does); otherwise the primary is asked, and an unreachable primary gives
 * `lag_bytes: null`, never an error. The archiver's own state file (written
 * every flush interval) gives the seconds.
 */
export async function archiveStatus(ctx: ClusterContext, repo: Repository, primaryLsn?: Lsn | string | null): Promise<ArchiveStatus> {
  const entries = await repo.walEntries();
  const pos = archivePosition(entries.values());
  const reach = await archiveReach(repo);
  const state = readArchiverState(ctx);
  let archived = reach.endLsn ? parseLsn(reach.endLsn) : null;
  if (state && (archived === null || parseLsn(state.archived_lsn) > archived)) archived = parseLsn(state.archived_lsn);
  let primary: Lsn | null = typeof primaryLsn === 'string' ? parseLsn(primaryLsn) : (primaryLsn ?? null);
  if (primaryLsn === undefined && archived !== null) primary = await currentLsn(ctx).catch(() => null);
  const lagBytes = archived !== null && primary !== null ? Math.max(0, Number(lsnDiff(primary, archived))) : null;
  const lagSeconds = lagBytes === null ? null : lagBytes === 0 ? 0 : state ? Math.max(0, (Date.now() - Date.parse(state.caught_up_at)) / 1000) : null;
  return {
    last_segment: pos?.segment ?? null,
    archived_lsn: archived === null ? null : formatLsn(archived),
    timeline: pos?.timeline ?? state?.timeline ?? null,
    lag_bytes: lagBytes,
    lag_seconds: lagSeconds === null ? null : Math.round(lagSeconds * 10) / 10,
  };
}

export function readArchiverState(ctx: ClusterContext): ArchiverState | null {
  try {
    return JSON.parse(fs.readFileSync(archiverStateFile(ctx), 'utf8')) as ArchiverState;
  } catch {
    return null;
  }
}

/** Everything the recovery-window decision needs, read from the repository. */
export async function windowInput(ctx: ClusterContext, repo: Repository, now = new Date()): Promise<WindowInput> {
  const { backups, damaged } = await repo.scan();
  const entries = [...(await repo.walEntries()).values()];
  const segments = entries.filter((e) => /^[0-9A-F]{24}$/.test(e.name));
  const opens = await openSegments(repo);
  const failures: { at: string; type: string; reason: string }[] = [];
  for (const n of await repo.storage.list('failures')) {
    try {
      failures.push(JSON.parse((await repo.storage.read(`failures/${n}`)).toString('utf8')) as { at: string; type: string; reason: string });
    } catch {
      // an unreadable failure note is no reason to fail the report
    }
  }
  const pos = archivePosition(entries);
  const open = opens.find((o) => pos && o.segment > pos.segment) ?? opens.sort((a, b) => a.segment.localeCompare(b.segment)).at(-1) ?? null;
  return {
    now: now.toISOString(),
    windowMs: ctx.cfg.backup.retentionMs,
    backups,
    damaged: damaged.map((d) => d.id),
    wal: { archiving: ctx.cfg.backup.walArchive, segments, histories: await readHistories(repo, entries), open },
    gaps: await readGaps(repo),
    failures,
  };
}

export async function repositoryWindow(ctx: ClusterContext, repo: Repository, now = new Date()): Promise<WindowReport> {
  return recoveryWindow(await windowInput(ctx, repo, now));
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
