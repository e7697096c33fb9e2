import type { Lsn } from '../postgres/lsn.js';
import { walFileName } from '../postgres/lsn.js';
import type { Repository } from './repository.js';
import { isSegmentName, segmentStart } from './wal-reach.js';

/**
 * Segment names missing from the archive between `from` and its newest
 * segment on the same timeline.
 */
export function walGaps(repo: Repository, from: { lsn: Lsn; timeline: number }): string[] {
  const entries = [...repo.walEntries().values()].filter((e) => isSegmentName(e.name));
  if (entries.length === 0) return [];
  const segSize = entries[0].size;
  const names = new Set(entries.map((e) => e.name));
  const onTimeline = entries.filter((e) => parseInt(e.name.slice(0, 8), 16) === from.timeline);
  const last = onTimeline.reduce((m, e) => (segmentStart(e.name, segSize) > m ? segmentStart(e.name, segSize) : m), -1n);
  const gaps: string[] = [];
  for (let lsn = from.lsn - (from.lsn % BigInt(segSize)); lsn <= last; lsn += BigInt(segSize)) {
    const name = walFileName(from.timeline, lsn, segSize);
    if (!names.has(name)) gaps.push(name);
  }
  return gaps;
}
