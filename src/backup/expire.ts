import { parseLsn } from '../postgres/lsn.js';
import type { Repository } from './repository.js';
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
export function expire(repo: Repository, windowMs: number, opts: { dryRun: boolean; now?: Date }): ExpiryResult {
  const plan = planExpiry(repo.list(), opts.now ?? new Date(), windowMs);
  const removedWal: string[] = [];
  if (plan.walKeepFrom !== null) {
    const keepFrom = parseLsn(plan.walKeepFrom);
    for (const e of repo.walEntries().values()) {
      const id = parseSegmentName(e.name, e.size);
      if (!id) continue; // history files are tiny and always kept
      if (segmentStartLsn(id.segno + 1n, e.size) <= keepFrom) removedWal.push(e.name);
    }
  }
  if (!opts.dryRun) {
    repo.removeLeftovers();
    for (const id of plan.remove) repo.remove(id);
    for (const name of removedWal) {
      repo.storage.remove(`wal/${name}.json`);
      repo.storage.remove(`wal/${name}`);
      repo.storage.remove(`wal/${name}.gz`);
    }
  }
  return { ...plan, removedWal: removedWal.sort(), dryRun: opts.dryRun };
}
