import { formatLsn, parseLsn } from '../postgres/lsn.js';
import type { BackupInfo } from './types.js';
import type { WalGap } from './wal-gaps.js';
import { parseSegmentName, segmentStartLsn, segnoOf, timelineOfSegment, timelineSpans, type TimelineSpan } from './wal-names.js';

/**
 * Is every moment of the recovery window restorable right now, and if not,
 * which ranges are not and why? Pure: plain data in (what `backup list`,
 * `status` and the console all have), ranges out.
 *
 * A moment T is restorable when some physical backup whose chain is intact
 * ended at or before T and the archive holds every WAL segment from that
 * backup's start up to T on the newest timeline's history (the segment in
 * progress counts up to what was flushed). Each backup thus covers
 * [its stop, the end of the continuous WAL run holding its start]; the
 * window's ranges are the union of those, and the pieces between, named
 * with their cause: no backup that old (an expired or missing anchor), a WAL
 * gap (with the recorded reason), WAL not archived yet, a failed backup.
 */
export interface WindowInput {
  readonly now: string;
  readonly windowMs: number;
  readonly backups: readonly Pick<BackupInfo, 'id' | 'type' | 'parent' | 'stop_time' | 'start_lsn' | 'stop_lsn' | 'timeline'>[];
  /** Backups whose records do not check out. */
  readonly damaged: readonly string[];
  readonly wal: {
    /** Continuous archiving configured; without it a backup restores only to its own end. */
    readonly archiving: boolean;
    readonly segments: readonly { readonly name: string; readonly size: number; readonly archived_at: string }[];
    readonly histories: ReadonlyMap<number, string>;
    readonly open: { readonly segment: string; readonly size: number; readonly segment_size: number; readonly flushed_at: string } | null;
  };
  readonly gaps: readonly WalGap[];
  readonly failures: readonly { readonly at: string; readonly type: string; readonly reason: string }[];
  /** The archive may trail `now` by this much before the tail counts as not restorable (default 60 s). */
  readonly lagToleranceMs?: number;
}

export interface WindowRange {
  readonly from: string;
  readonly to: string;
  readonly restorable: boolean;
  /** For restorable ranges: the backups they start from; else why not. */
  readonly reason: string;
}

export interface WindowReport {
  readonly window_start: string;
  readonly window_end: string;
  readonly restorable: boolean;
  readonly ranges: readonly WindowRange[];
  /** One line for `backup list` and `status`. */
  readonly sentence: string;
}

interface Run {
  readonly firstSegno: bigint;
  readonly lastSegno: bigint;
  readonly endLsn: bigint;
  readonly endTime: string;
}

export function recoveryWindow(input: WindowInput): WindowReport {
  const nowMs = Date.parse(input.now);
  const windowStart = new Date(nowMs - input.windowMs).toISOString();
  const windowEnd = new Date(nowMs).toISOString();
  const covered = coverage(input);
  const ranges: WindowRange[] = [];
  let at = windowStart;
  for (const c of covered) {
    if (c.to < at) continue;
    const from = c.from < at ? at : c.from;
    if (from > at) ranges.push({ from: at, to: from, restorable: false, reason: whyNot(input, at, from, ranges.length === 0 ? null : c, covered) });
    ranges.push({ from, to: c.to, restorable: true, reason: c.reason });
    at = c.to;
  }
  const tolerance = input.lagToleranceMs ?? 60_000;
  if (Date.parse(at) < nowMs - tolerance) ranges.push({ from: at, to: windowEnd, restorable: false, reason: tailReason(input, at, covered.length === 0 ? undefined : (covered.at(-1)?.runEndLsn ?? null)) });
  const bad = ranges.filter((r) => !r.restorable);
  const restorable = bad.length === 0;
  const sentence = restorable
    ? `every moment since ${windowStart.slice(0, 19)}Z can be restored (to ${(covered.at(-1)?.to ?? windowEnd).slice(0, 19)}Z)`
    : `not restorable: ${bad.map((r) => `${r.from.slice(0, 19)}Z to ${r.to.slice(0, 19)}Z (${r.reason})`).join('; ')}`;
  return { window_start: windowStart, window_end: windowEnd, restorable, ranges, sentence };
}

interface Covered {
  readonly from: string;
  readonly to: string;
  readonly reason: string;
  readonly runEndLsn: bigint | null;
}

/** The restorable time ranges, merged, oldest first. */
function coverage(input: WindowInput): Covered[] {
  const damaged = new Set(input.damaged);
  const byId = new Map(input.backups.map((b) => [b.id, b]));
  const intact = (b: WindowInput['backups'][number]): boolean => {
    for (let cur: typeof b | undefined = b; cur; cur = cur.type === 'incr' && cur.parent ? byId.get(cur.parent) : undefined) {
      if (damaged.has(cur.id)) return false;
      if (cur.type === 'incr' && (!cur.parent || !byId.has(cur.parent))) return false;
    }
    return true;
  };
  const { runs, spans, segmentSize } = walRuns(input);
  const raw: Covered[] = [];
  for (const b of input.backups) {
    if (b.type === 'logical' || b.start_lsn === null || b.stop_lsn === null || b.timeline === null || !intact(b)) continue;
    if (!input.wal.archiving || segmentSize === null) {
      raw.push({ from: b.stop_time, to: b.stop_time, reason: `backup ${b.id}`, runEndLsn: null });
      continue;
    }
    const start = segnoOf(parseLsn(b.start_lsn), segmentSize);
    const onPath = spans.some((s) => s.timeline === b.timeline) && timelineOfSegment(spans, start, segmentSize) === b.timeline;
    const run = onPath ? runs.find((r) => r.firstSegno <= start && start <= r.lastSegno) : undefined;
    if (run && run.endLsn >= parseLsn(b.stop_lsn)) raw.push({ from: b.stop_time, to: run.endTime > b.stop_time ? run.endTime : b.stop_time, reason: `from backup ${b.id}`, runEndLsn: run.endLsn });
    else raw.push({ from: b.stop_time, to: b.stop_time, reason: `backup ${b.id} alone (WAL after it is missing)`, runEndLsn: null });
  }
  raw.sort((a, b) => a.from.localeCompare(b.from));
  const out: Covered[] = [];
  for (const c of raw) {
    const last = out.at(-1);
    if (last && c.from <= last.to) {
      if (c.to > last.to) out[out.length - 1] = { ...last, to: c.to, runEndLsn: c.runEndLsn };
    } else out.push(c);
  }
  return out;
}

/** The archive's continuous runs of segments on the newest timeline's history (the open segment extending the run it follows). */
function walRuns(input: WindowInput): { runs: Run[]; spans: TimelineSpan[]; segmentSize: number | null } {
  const segmentSize = input.wal.segments[0]?.size ?? input.wal.open?.segment_size ?? null;
  if (segmentSize === null) return { runs: [], spans: [], segmentSize };
  let newest = 1;
  for (const s of input.wal.segments) newest = Math.max(newest, parseSegmentName(s.name, segmentSize)?.timeline ?? 1);
  for (const t of input.wal.histories.keys()) newest = Math.max(newest, t);
  let spans: TimelineSpan[];
  try {
    spans = timelineSpans(newest, input.wal.histories.get(newest) ?? null);
  } catch {
    spans = timelineSpans(newest, null);
  }
  const onPath = new Map<bigint, string>();
  for (const s of input.wal.segments) {
    const id = parseSegmentName(s.name, segmentSize);
    if (id && timelineOfSegment(spans, id.segno, segmentSize) === id.timeline && spans.some((x) => x.timeline === id.timeline)) onPath.set(id.segno, s.archived_at);
  }
  const segnos = [...onPath.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const runs: Run[] = [];
  for (const n of segnos) {
    const last = runs.at(-1);
    const end = { lastSegno: n, endLsn: segmentStartLsn(n + 1n, segmentSize), endTime: onPath.get(n)! };
    if (last && last.lastSegno + 1n === n) runs[runs.length - 1] = { ...last, ...end, endTime: end.endTime > last.endTime ? end.endTime : last.endTime };
    else runs.push({ firstSegno: n, ...end });
  }
  const open = input.wal.open;
  const openId = open ? parseSegmentName(open.segment, segmentSize) : null;
  if (open && openId) {
    const last = runs.find((r) => r.lastSegno + 1n === openId.segno);
    const extended = { lastSegno: openId.segno, endLsn: segmentStartLsn(openId.segno, segmentSize) + BigInt(open.size), endTime: open.flushed_at };
    if (last) runs[runs.indexOf(last)] = { ...last, ...extended };
    else if (!onPath.has(openId.segno)) runs.push({ firstSegno: openId.segno, ...extended });
  }
  return { runs, spans, segmentSize };
}

function whyNot(input: WindowInput, from: string, to: string, next: Covered | null, covered: readonly Covered[]): string {
  if (next === null || covered.indexOf(next) === 0) {
    const why = input.backups.some((b) => b.type !== 'logical') ? `no intact backup ends before ${to.slice(0, 19)}Z (its anchor expired, failed or was never taken)` : 'the repository has no physical backup';
    return withFailures(input, from, to, why);
  }
  const prev = covered[covered.indexOf(next) - 1];
  const gap = input.gaps.find((g) => prev.runEndLsn === null || parseLsn(g.to_lsn) > prev.runEndLsn);
  const where = prev.runEndLsn === null ? '' : ` after ${formatLsn(prev.runEndLsn)}`;
  const why = gap ? `WAL gap${where}: ${gap.reason}; healed by ${next.reason.replace(/^from /, '')}` : `WAL missing from the archive${where}; healed by ${next.reason.replace(/^from /, '')}`;
  return withFailures(input, from, to, why);
}

function tailReason(input: WindowInput, from: string, lastRunEnd: bigint | null | undefined): string {
  if (lastRunEnd === undefined) return withFailures(input, from, input.now, input.backups.some((b) => b.type !== 'logical') ? 'no intact backup with its WAL' : 'the repository has no physical backup');
  const gap = input.gaps.find((g) => lastRunEnd === null || parseLsn(g.to_lsn) > lastRunEnd);
  const why = gap ? `WAL gap: ${gap.reason}; a new full backup heals it` : input.wal.archiving ? 'WAL since then is not in the archive yet (is the archiver running?)' : 'WAL archiving is off: only the backups themselves can be restored';
  return withFailures(input, from, input.now, why);
}

function withFailures(input: WindowInput, from: string, to: string, why: string): string {
  const f = input.failures.filter((x) => x.at >= from && x.at <= to).at(-1);
  return f ? `${why}; the ${f.type} backup at ${f.at.slice(0, 19)}Z failed: ${f.reason.replace(/\.$/, '')}` : why;
}
