import type { ArchiveReach } from '../restore/plan.js';
import { formatLsn } from '../postgres/lsn.js';
import type { Repository } from './repository.js';

const SEGMENT_NAME = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/;

/** The start LSN of segment `name` (TTTTTTTTXXXXXXXXYYYYYYYY) for a segment size. */
export function segmentStart(name: string, segmentSize: number): bigint {
  const m = SEGMENT_NAME.exec(name);
  if (!m) throw new Error(`not a WAL segment name: ${name}`);
  const perId = 0x100000000n / BigInt(segmentSize);
  return (BigInt('0x' + m[2]) * perId + BigInt('0x' + m[3])) * BigInt(segmentSize);
}

export function isSegmentName(name: string): boolean {
  return SEGMENT_NAME.test(name);
}

/** How far the archive reaches: the end of its highest segment and when it was archived. */
export function archiveReach(repo: Repository): ArchiveReach {
  let best: { end: bigint; time: string } | null = null;
  for (const e of repo.walEntries().values()) {
    if (!isSegmentName(e.name)) continue;
    const end = segmentStart(e.name, e.size) + BigInt(e.size);
    if (!best || end > best.end) best = { end, time: e.archived_at };
  }
  return best ? { endLsn: formatLsn(best.end), endTime: best.time } : { endLsn: null, endTime: null };
}
