import { PgmError } from '../errors.js';
import { formatLsn } from '../postgres/lsn.js';
import type { Lsn } from '../postgres/lsn.js';
import {
  floorToSegment,
  historyName,
  historyTimeline,
  parseSegmentName,
  segmentName,
  segmentStartLsn,
  segnoOf,
  timelineOfSegment,
  timelineSpans,
  type SegmentId,
  type TimelineSpan,
} from './wal-names.js';

/**
 * Decisions about the WAL archive, on plain data: is it continuous, and
 * where must the archiver resume. Pure: names and history contents in,
 * names and positions out.
 */

export interface WalPoint {
  readonly lsn: Lsn;
  readonly timeline: number;
}

export interface Continuity {
  /** Segments (in WAL order), then history files, that a recovery from `from` to `last` would ask for and not find. */
  readonly missing: string[];
  /** First and last segment of the checked path; null when the archive has no segment on it. */
  readonly first: string | null;
  readonly last: string | null;
  /** The timeline the path ends on: the newest one the archive knows. */
  readonly timeline: number;
}

/**
 * The gaps in the archive between `from` and its newest segment, following
 * timeline switches the way recovery with `recovery_target_timeline =
 * 'latest'` does: the path ends on the newest timeline (the highest in
 * `entries`, `histories` or `from`), its history file says which timeline's
 * file holds each segment (the segment where a switch happened comes from
 * the new timeline), and every history file from `from`'s timeline up to
 * the newest must be present (recovery probes them one by one).
 *
 * `entries` are archived file names (anything that is not a segment or a
 * history file, e.g. `.partial`, is ignored); `histories` the contents of the
 * archived history files by timeline. Throws `backup.corrupt` when `from`
 * does not lie on the newest timeline's history: no archive can make such a
 * start reach the newest timeline.
 */
export function checkContinuity(entries: readonly string[], from: WalPoint, segmentSize: number, histories: ReadonlyMap<number, string>): Continuity {
  const names = new Set(entries);
  const segments = parsedSegments(entries, segmentSize);

  // 1. the newest timeline known, and its history
  let newest = from.timeline;
  for (const s of segments) newest = Math.max(newest, s.timeline);
  for (const t of histories.keys()) newest = Math.max(newest, t);
  if (newest > 1 && !histories.has(newest)) return { missing: [historyName(newest)], first: null, last: null, timeline: newest };
  const spans = timelineSpans(newest, histories.get(newest) ?? null);

  // 2. `from` must lie on that history
  const span = spans.find((s) => s.timeline === from.timeline);
  if (!span || from.lsn < span.begin || (span.end !== null && from.lsn > span.end)) {
    throw new PgmError('backup.corrupt', `the WAL archive's newest timeline ${newest} does not descend from timeline ${from.timeline} at ${formatLsn(from.lsn)}.`, {
      hint: 'a restore from that point cannot follow the archive to its end; restore from a backup taken on the newest timeline, or to a point before the switch.',
      data: { timeline: newest, from_timeline: from.timeline, from_lsn: formatLsn(from.lsn) },
    });
  }

  // 3. the segments on the path, from `from` to the newest one present
  const start = segnoOf(from.lsn, segmentSize);
  const last = newestOnPath(segments, spans, segmentSize, start);
  const missing: string[] = [];
  if (last !== null) {
    for (let n = start; n <= last; n++) {
      const name = segmentName(timelineOfSegment(spans, n, segmentSize), n, segmentSize);
      if (!names.has(name)) missing.push(name);
    }
  }

  // 4. the history files recovery reads on its way to the newest timeline
  for (let t = Math.max(2, from.timeline); t <= newest; t++) {
    if (!names.has(historyName(t))) missing.push(historyName(t));
  }
  const nameOf = (n: bigint) => segmentName(timelineOfSegment(spans, n, segmentSize), n, segmentSize);
  return { missing, first: last === null ? null : nameOf(start), last: last === null ? null : nameOf(last), timeline: newest };
}

export interface ResumePoint extends WalPoint {
  /** Half a sentence saying why: "after 000000010000000000000004, the newest archived segment on this history". */
  readonly reason: string;
}

/**
 * Where the archiver starts streaming from a server whose timeline history
 * is `spans` (oldest first, the server's current timeline last): at the end
 * of the newest archived segment that lies on that history, so that no
 * segment is skipped — segments of an abandoned branch (an old timeline past
 * its switch point) are not on it and are ignored. When the archive holds no
 * segment on the history, or `fromSlot` is set (the server no longer has the
 * WAL the archive needs), at the start of the segment holding the slot's
 * `restart_lsn`. The timeline returned is the one whose file holds the start
 * segment, so START_REPLICATION … TIMELINE streams exactly the bytes recovery
 * will read. Null when neither source gives a start (a slot without WAL).
 */
export function resumePoint(archived: readonly string[], segmentSize: number, spans: readonly TimelineSpan[], slotRestart: Lsn | null, fromSlot = false): ResumePoint | null {
  const last = newestOnPath(parsedSegments(archived, segmentSize), spans, segmentSize, 0n);
  const at = (segno: bigint) => ({ lsn: segmentStartLsn(segno, segmentSize), timeline: timelineOfSegment(spans, segno, segmentSize) });
  const lastName = last === null ? null : segmentName(timelineOfSegment(spans, last, segmentSize), last, segmentSize);
  if (last !== null && !fromSlot) return { ...at(last + 1n), reason: `after ${lastName}, the newest archived segment on this history` };
  if (slotRestart === null || slotRestart === 0n) return null;
  const p = at(segnoOf(floorToSegment(slotRestart, segmentSize), segmentSize));
  if (last !== null && p.lsn <= segmentStartLsn(last + 1n, segmentSize)) {
    return { ...at(last + 1n), reason: `after ${lastName}, the newest archived segment on this history` };
  }
  const why = last === null ? 'the archive has no segment on this history yet' : `WAL after ${lastName} is no longer on the server: a gap`;
  return { ...p, reason: `at the slot's restart point ${formatLsn(slotRestart)} (${why})` };
}

function parsedSegments(names: readonly string[], segmentSize: number): SegmentId[] {
  const out: SegmentId[] = [];
  for (const n of names) {
    const s = parseSegmentName(n, segmentSize);
    if (s) out.push(s);
  }
  return out;
}

/** The highest segment number >= `start` whose archived file is the one the history says holds it. */
function newestOnPath(segments: readonly SegmentId[], spans: readonly TimelineSpan[], segmentSize: number, start: bigint): bigint | null {
  const onHistory = new Set(spans.map((s) => s.timeline));
  let last: bigint | null = null;
  for (const s of segments) {
    if (s.segno < start || !onHistory.has(s.timeline)) continue;
    if (timelineOfSegment(spans, s.segno, segmentSize) !== s.timeline) continue;
    if (last === null || s.segno > last) last = s.segno;
  }
  return last;
}

/** Timelines named by history files among `names`. */
export function historyTimelines(names: readonly string[]): number[] {
  return names.map(historyTimeline).filter((t): t is number => t !== null);
}
