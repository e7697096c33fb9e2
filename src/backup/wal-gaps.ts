import type { Repository } from './repository.js';

/**
 * WAL the archive lost: the primary removed it before the archiver had it
 * (its slot was invalidated by max_slot_wal_keep_size, dropped, or the
 * daemon was down too long). Recorded once, in `wal/gaps/<from>.json`, so
 * that the recovery window reports the range it breaks and why; a full
 * backup taken after the gap heals the window from its end on.
 */
export interface WalGap {
  readonly from_lsn: string;
  readonly to_lsn: string;
  readonly timeline: number;
  readonly detected_at: string;
  readonly node: string;
  readonly reason: string;
}

export async function recordGap(repo: Repository, gap: WalGap): Promise<WalGap> {
  await repo.storage.put(`wal/gaps/${gap.from_lsn.replace('/', '-')}.json`, JSON.stringify(gap, null, 2) + '\n');
  return gap;
}

export async function readGaps(repo: Repository): Promise<WalGap[]> {
  const out: WalGap[] = [];
  for (const n of await repo.storage.list('wal/gaps')) {
    if (!n.endsWith('.json')) continue;
    out.push(JSON.parse((await repo.storage.read(`wal/gaps/${n}`)).toString('utf8')) as WalGap);
  }
  return out;
}

export async function removeGap(repo: Repository, gap: WalGap): Promise<void> {
  await repo.storage.remove(`wal/gaps/${gap.from_lsn.replace('/', '-')}.json`);
}
