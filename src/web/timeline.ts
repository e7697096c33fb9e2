import type { BackupInfo } from '../backup/types.js';

/**
 * The backup timeline as the user draws it:
 *
 *   |-----*-----*------*-----|-----*…----->NOW
 *
 * `|` a full (or cold) backup, `*` an incremental, the WAL archive running
 * under them, and the recovery window marked with what can and cannot be
 * restored. Pure: catalog, WAL times and policy in, positions (0..1 along the
 * bar) and sentences out; the page only draws them.
 */

/** Whether a stretch of time can be restored to, and why not. */
export type RangeState = 'restorable' | 'unrestorable' | 'pending';

export interface RestorableRange {
  readonly from: string;
  readonly to: string;
  /** `pending`: WAL written but not archived yet (archive lag), not a gap. */
  readonly state: RangeState;
  readonly reason: string;
}

/**
 * What the disaster-recovery analysis says about the window (issue 8: which
 * ranges are restorable and why, and the WAL gaps). When it is given, the
 * timeline draws its ranges as they are; without it, `coverage()` below
 * derives the ranges the catalog alone can tell (no backup that old, no WAL
 * archive, WAL not archived yet) and says that gaps inside the archive are
 * not analysed.
 */
export interface RecoveryAnalysis {
  readonly ranges: readonly RestorableRange[];
  readonly walGaps: readonly { readonly from: string; readonly to: string; readonly missing: readonly string[] }[];
}

export interface TimelineInputs {
  readonly backups: readonly BackupInfo[];
  /** When each archived WAL segment was stored (ISO), any order; history files excluded. */
  readonly walArchivedAt: readonly string[];
  readonly walArchive: boolean;
  readonly retentionMs: number;
  readonly retention: string;
  readonly now: Date;
  /** When the database system was created (initdb), if known: nothing before it can need restoring. */
  readonly createdAt: string | null;
  readonly analysis: RecoveryAnalysis | null;
}

export interface TimelineMark {
  readonly id: string;
  readonly type: BackupInfo['type'];
  /** The consistent moment (stop time) and where the backup began. */
  readonly at: string;
  readonly start: string;
  readonly x: number;
  readonly xStart: number;
  readonly node: string;
  readonly storedBytes: number;
  readonly parent: string | null;
}

export interface TimelineSpan extends RestorableRange {
  readonly x0: number;
  readonly x1: number;
}

export interface TimelineModel {
  readonly now: string;
  readonly retention: string;
  /** now - retention, or the cluster's creation when that is later. */
  readonly windowStart: string;
  /** Where the window starts on the bar. */
  readonly xWindowStart: number;
  /** Why it starts there: the retention, or the cluster's creation (younger than the window). */
  readonly windowStartsAt: 'retention' | 'created';
  /** A compressed stretch at the left end standing for time where nothing happened: `… 20 d …`. */
  readonly gap: { readonly from: string; readonly to: string; readonly x0: number; readonly x1: number; readonly kind: 'prehistory' | 'empty'; readonly label: string } | null;
  readonly marks: readonly TimelineMark[];
  readonly spans: readonly TimelineSpan[];
  /** The archive's coverage, from the oldest backup's start to the newest stored segment. */
  readonly wal: { readonly from: string; readonly to: string; readonly x0: number; readonly x1: number } | null;
  /** The oldest and newest moment a restore reaches now. */
  readonly restorable: { readonly from: string; readonly to: string } | null;
  /** Every moment of the window up to the archive's end can be restored (the unarchived tail is lag, not a gap). */
  readonly fullyRestorable: boolean;
  readonly gapsAnalysed: boolean;
  readonly sentence: string;
}

const GAP_WIDTH = 0.1;

export function backupTimeline(inp: TimelineInputs): TimelineModel {
  const nowMs = inp.now.getTime();
  const configuredStartMs = nowMs - inp.retentionMs;
  const createdMs = inp.createdAt ? Date.parse(inp.createdAt) : NaN;
  const windowStartMs = createdMs > configuredStartMs && createdMs < nowMs ? createdMs : configuredStartMs;
  const young = windowStartMs !== configuredStartMs;
  const physical = inp.backups.filter((b) => b.type !== 'logical').sort((a, b) => a.stop_time.localeCompare(b.stop_time));
  const ranges = inp.analysis?.ranges ?? coverage(physical, inp, windowStartMs);

  // 1. the scale: linear from the oldest thing worth drawing to now; a long empty stretch of the window before it is compressed
  const oldest = Math.min(...physical.map((b) => Date.parse(b.start_time)), nowMs);
  const span = Math.max(nowMs - oldest, 1000);
  const linearFrom = oldest - Math.max(span * 0.05, 1000);
  const barFrom = configuredStartMs; // the bar spans the configured window (and any older anchor backup)
  const want = young ? Math.min(linearFrom, windowStartMs) : linearFrom;
  const compress = physical.length > 0 && want > barFrom && (want - barFrom) / (nowMs - barFrom) > GAP_WIDTH;
  const axisFrom = compress ? want : Math.min(barFrom, linearFrom);
  const left = compress ? GAP_WIDTH : 0;
  const x = (iso: string | number): number => {
    const t = typeof iso === 'number' ? iso : Date.parse(iso);
    if (compress && t < axisFrom) return round((Math.max(t, barFrom) - barFrom) / (axisFrom - barFrom) * GAP_WIDTH);
    return round(left + ((Math.min(t, nowMs) - axisFrom) / (nowMs - axisFrom)) * (1 - left));
  };

  // 2. marks, spans, WAL coverage
  const marks = physical.map((b) => ({ id: b.id, type: b.type, at: b.stop_time, start: b.start_time, x: x(b.stop_time), xStart: x(b.start_time), node: b.node, storedBytes: b.stored_bytes, parent: b.parent }));
  const spans = ranges.map((r) => ({ ...r, x0: x(r.from), x1: x(r.to) }));
  const walEnd = latest(inp.walArchivedAt);
  const wal = inp.walArchive && walEnd && physical.length > 0 ? { from: physical[0].start_time, to: walEnd, x0: x(physical[0].start_time), x1: x(walEnd) } : null;
  const ok = ranges.filter((r) => r.state === 'restorable');
  const restorable = ok.length > 0 ? { from: ok[0].from, to: ok[ok.length - 1].to } : null;
  const fullyRestorable = ranges.length > 0 && ranges.every((r) => r.state !== 'unrestorable');
  const before = young && axisFrom <= windowStartMs;
  const gap = compress ? { from: iso(barFrom), to: iso(axisFrom), x0: 0, x1: GAP_WIDTH, kind: before ? ('prehistory' as const) : ('empty' as const), label: `${duration(axisFrom - barFrom)} ${before ? 'before the cluster existed' : 'without a backup'}` } : null;

  return {
    now: iso(nowMs),
    retention: inp.retention,
    windowStart: iso(windowStartMs),
    xWindowStart: x(windowStartMs),
    windowStartsAt: young ? 'created' : 'retention',
    gap,
    marks,
    spans,
    wal,
    restorable,
    fullyRestorable,
    gapsAnalysed: inp.analysis !== null,
    sentence: summary(physical, restorable, fullyRestorable, inp, ranges),
  };
}

/**
 * The ranges the catalog alone can tell, until the recovery analysis exists,
 * following the restore planner's rules (src/restore/plan.ts): a backup
 * carries the WAL that makes it consistent, so its own end can always be
 * restored; from the oldest backup's end to the newest archived segment
 * every moment can (gaps inside the archive are not looked for here); WAL
 * not archived yet makes the moments after it pending, not lost. Without
 * WAL archiving only the backups' own moments can be restored.
 */
export function coverage(physical: readonly BackupInfo[], inp: TimelineInputs, windowStartMs: number): RestorableRange[] {
  const now = iso(inp.now.getTime());
  const windowStart = iso(windowStartMs);
  if (physical.length === 0) return [{ from: windowStart, to: now, state: 'unrestorable', reason: 'no physical backup yet' }];
  const first = physical[0];
  const out: RestorableRange[] = [];
  let cursor = first.stop_time > windowStart ? first.stop_time : windowStart;
  if (first.stop_time > windowStart) out.push({ from: windowStart, to: first.stop_time, state: 'unrestorable', reason: `no backup is that old: the oldest, ${first.id}, is consistent from ${first.stop_time}` });
  const walEnd = inp.walArchive ? latest(inp.walArchivedAt) : null;
  if (walEnd && walEnd > cursor) {
    out.push({ from: cursor, to: walEnd, state: 'restorable', reason: 'a backup and the archived WAL after it' });
    cursor = walEnd;
  }
  const between: RangeState = inp.walArchive ? 'pending' : 'unrestorable';
  const why = inp.walArchive ? `WAL after ${walEnd ?? first.stop_time} is not archived yet (the current segment is still being written)` : 'WAL archiving is off: only the moments the backups end at can be restored';
  for (const b of physical) {
    if (b.stop_time < cursor) continue;
    if (b.stop_time > cursor) out.push({ from: cursor, to: b.stop_time, state: between, reason: why });
    out.push({ from: b.stop_time, to: b.stop_time, state: 'restorable', reason: `the end of ${b.id}, whose own WAL is in it` });
    cursor = b.stop_time;
  }
  if (cursor < now) out.push({ from: cursor, to: now, state: between, reason: why });
  return out;
}

function summary(physical: readonly BackupInfo[], restorable: { from: string; to: string } | null, full: boolean, inp: TimelineInputs, ranges: readonly RestorableRange[]): string {
  const fulls = physical.filter((b) => b.type === 'full' || b.type === 'cold').length;
  const incrs = physical.filter((b) => b.type === 'incr').length;
  const counts = `${fulls} full, ${incrs} incremental`;
  if (!restorable) return `${counts}; nothing can be restored yet (${ranges[0]?.reason ?? 'no backup'})`;
  const what = `${counts}; restorable from ${restorable.from} to ${restorable.to}`;
  if (full) return `${what}: the whole ${inp.retention} window`;
  const bad = ranges.filter((r) => r.state === 'unrestorable');
  return `${what}; not restorable: ${bad.map((r) => `${r.from} to ${r.to} (${r.reason})`).join('; ')}`;
}

function latest(times: readonly string[]): string | null {
  let best: string | null = null;
  for (const t of times) if (best === null || t > best) best = t;
  return best;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function round(v: number): number {
  return Math.round(Math.min(1, Math.max(0, v)) * 10000) / 10000;
}

/** 20 d 23 h, 3 h 12 min, 45 s. */
export function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}
