import { parseLsn } from '../postgres/lsn.js';
import type { Lsn } from '../postgres/lsn.js';

/**
 * Names of the files in the WAL archive, as PostgreSQL names them, and the
 * timeline history format. Pure.
 *
 *   TTTTTTTTXXXXXXXXYYYYYYYY          a complete segment (timeline, then segment number split in two)
 *   TTTTTTTTXXXXXXXXYYYYYYYY.partial  the last, incomplete segment of a timeline that ended inside it
 *   TTTTTTTT.history                  the history of timeline T (> 1): its ancestors and where each ended
 */

const SEGMENT = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/;
const PARTIAL = /^[0-9A-F]{24}\.partial$/;
const HISTORY = /^([0-9A-F]{8})\.history$/;

export interface SegmentId {
  readonly timeline: number;
  /** Segment number: LSN / segment size. */
  readonly segno: bigint;
}

export function isSegmentName(name: string): boolean {
  return SEGMENT.test(name);
}

export function isPartialName(name: string): boolean {
  return PARTIAL.test(name);
}

export function isHistoryName(name: string): boolean {
  return HISTORY.test(name) && name !== '00000000.history';
}

/** Any name the archive may hold. */
export function isWalFileName(name: string): boolean {
  return isSegmentName(name) || isPartialName(name) || isHistoryName(name);
}

/** Timeline and segment number of a segment name; null for anything else. */
export function parseSegmentName(name: string, segmentSize: number): SegmentId | null {
  const m = SEGMENT.exec(name);
  if (!m) return null;
  const perId = segmentsPerId(segmentSize);
  const low = BigInt('0x' + m[3]);
  if (low >= perId) return null; // not a segment this segment size can produce
  return { timeline: parseInt(m[1], 16), segno: BigInt('0x' + m[2]) * perId + low };
}

export function segmentName(timeline: number, segno: bigint, segmentSize: number): string {
  const perId = segmentsPerId(segmentSize);
  return hex8(timeline) + hex8(segno / perId) + hex8(segno % perId);
}

export function historyName(timeline: number): string {
  return `${hex8(timeline)}.history`;
}

export function historyTimeline(name: string): number | null {
  const m = HISTORY.exec(name);
  return m ? parseInt(m[1], 16) : null;
}

export function segnoOf(lsn: Lsn, segmentSize: number): bigint {
  return lsn / BigInt(segmentSize);
}

export function segmentStartLsn(segno: bigint, segmentSize: number): Lsn {
  return segno * BigInt(segmentSize);
}

/** `lsn` rounded down to the start of its segment. */
export function floorToSegment(lsn: Lsn, segmentSize: number): Lsn {
  return lsn - (lsn % BigInt(segmentSize));
}

/** One ancestor line of a history file: timeline `timeline` ended at `end`, where its child began. */
export interface HistoryLine {
  readonly timeline: number;
  readonly end: Lsn;
}

/**
 * Parses a timeline history file (`parentTLI <tab> X/X <tab> reason` per
 * line; `#` comments and blank lines ignored). Throws on a malformed line:
 * a history that cannot be read must not be guessed.
 */
export function parseHistory(content: string): HistoryLine[] {
  const out: HistoryLine[] = [];
  for (const raw of content.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\d+)\s+([0-9A-Fa-f]+\/[0-9A-Fa-f]+)(\s|$)/.exec(line);
    if (!m) throw new Error(`not a timeline history line: ${JSON.stringify(line)}`);
    const timeline = Number(m[1]);
    if (out.length > 0 && timeline <= out[out.length - 1].timeline) throw new Error(`timeline history is not in ascending order at ${JSON.stringify(line)}`);
    out.push({ timeline, end: parseLsn(m[2]) });
  }
  return out;
}

/** A timeline of a server's history: valid from `begin` until `end` (null: still current). */
export interface TimelineSpan {
  readonly timeline: number;
  readonly begin: Lsn;
  readonly end: Lsn | null;
}

/** The spans of `timeline` and its ancestors, oldest first, from the timeline's history file (null for timeline 1). */
export function timelineSpans(timeline: number, history: string | null): TimelineSpan[] {
  const lines = history === null ? [] : parseHistory(history);
  const spans: TimelineSpan[] = [];
  let begin = 0n;
  for (const l of lines) {
    if (l.timeline >= timeline) throw new Error(`the history of timeline ${timeline} names timeline ${l.timeline} as an ancestor`);
    spans.push({ timeline: l.timeline, begin, end: l.end });
    begin = l.end;
  }
  spans.push({ timeline, begin, end: null });
  return spans;
}

/**
 * Which timeline's file holds segment `segno` on this history: the newest
 * timeline that began in or before the segment. This is the file recovery
 * asks `restore_command` for first (the segment where a timeline switched is
 * taken from the new timeline, which holds the old timeline's WAL up to the
 * switch).
 */
export function timelineOfSegment(spans: readonly TimelineSpan[], segno: bigint, segmentSize: number): number {
  for (let i = spans.length - 1; i >= 0; i--) {
    if (segnoOf(spans[i].begin, segmentSize) <= segno) return spans[i].timeline;
  }
  return spans[0].timeline;
}

/** Parses a size setting as SHOW prints it (`16MB`, `1GB`, `8192`). */
export function parseSizeSetting(text: string): number {
  const m = /^(\d+)\s*(B|kB|MB|GB|TB)?$/.exec(text.trim());
  if (!m) throw new Error(`not a size: ${JSON.stringify(text)}`);
  const unit = { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 }[m[2] ?? 'B'] ?? 1;
  return Number(m[1]) * unit;
}

function segmentsPerId(segmentSize: number): bigint {
  if (!Number.isInteger(segmentSize) || segmentSize <= 0 || (segmentSize & (segmentSize - 1)) !== 0) throw new RangeError(`not a WAL segment size: ${segmentSize}`);
  return 0x100000000n / BigInt(segmentSize);
}

function hex8(n: number | bigint): string {
  return n.toString(16).toUpperCase().padStart(8, '0');
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}
