import { parseLsn } from '../postgres/lsn.js';
import type { Repository } from './repository.js';
import { readGaps, removeGap } from './wal-gaps.js';
import { planExpiry, type ExpiryPlan } from './retention.js';
import { parseSegmentName, segmentStartLsn } from './wal-names.js';

export interface ExpiryResult extends ExpiryPlan {
  readonly removedWal: readonly string[];
  readonly dryRun: boolean;
}

/**
 * `backup expire [--dry-run]`: removes what no point of the recovery window
 * needs — backups first (marker before folder), then WAL segments that end
 * before the oldest kept backup starts — and the leftovers of interrupted work.
 */
export async function expire(repo: Repository, windowMs: number, opts: { dryRun: boolean; now?: Date }): Promise<ExpiryResult> {
  const plan = planExpiry(await repo.list(), opts.now ?? new Date(), windowMs);
  const removedWal: string[] = [];
  if (plan.walKeepFrom !== null) {
    const keepFrom = parseLsn(plan.walKeepFrom);
    for (const e of (await repo.walEntries()).values()) {
      const id = parseSegmentName(e.name, e.size);
      if (!id) continue; // history files are tiny and always kept
      if (segmentStartLsn(id.segno + 1n, e.size) <= keepFrom) removedWal.push(e.name);
    }
  }
  if (!opts.dryRun) {
    await repo.removeLeftovers();
    for (const id of plan.remove) await repo.remove(id);
    const wal = await repo.walEntries();
    for (const name of removedWal) {
      await repo.storage.remove(`wal/${name}.json`);
      await repo.storage.remove(`wal/${wal.get(name)!.stored}`);
    }
    // gaps wholly before the oldest kept backup no longer break the window
    if (plan.walKeepFrom !== null) for (const g of await readGaps(repo)) if (parseLsn(g.to_lsn) <= parseLsn(plan.walKeepFrom)) await removeGap(repo, g);
  }
  return { ...plan, removedWal: removedWal.sort(), dryRun: opts.dryRun };
}
