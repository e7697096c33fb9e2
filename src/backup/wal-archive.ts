import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { PgmError } from '../errors.js';
import type { Lsn } from '../postgres/lsn.js';
import type { Repository } from './repository.js';
import type { StoredResult } from './storage.js';
import type { WalEntry } from './types.js';
import { checkContinuity, type Continuity, type WalPoint } from './wal-continuity.js';
import { historyTimeline, isSegmentName, isWalFileName, parseSegmentName, segmentStartLsn } from './wal-names.js';

export { checkContinuity } from './wal-continuity.js';
export type { Continuity, WalPoint } from './wal-continuity.js';

/**
 * The repository side of WAL archiving. Every archived file is written
 * first, completely (temporary name, fsync, rename), then its record
 * `wal/<name>.json`: a file counts as archived if and only if its record
 * exists. An archived file is never overwritten: storing it again with the
 * same content is a no-op, with different content an error.
 *
 * Names: complete segments, `<TLI>.history` files, and `<segment>.partial` —
 * PostgreSQL's own name for the last, incomplete segment of a timeline that
 * ended inside it. Recovery never asks for a `.partial` (it reads that
 * segment from the new timeline's file, which holds the same bytes up to the
 * switch); it is kept so the old timeline's last WAL is not lost.
 */

export interface StoreOutcome {
  readonly entry: WalEntry;
  /** False when the file was already archived with the same content (nothing was written). */
  readonly created: boolean;
}

export type WalData = Buffer | Iterable<Buffer> | AsyncIterable<Buffer>;

/** Archives one file (a segment, a history file or a `.partial`) under `wal/`. */
export async function storeSegment(repo: Repository, name: string, data: WalData): Promise<StoreOutcome> {
  if (!isWalFileName(name)) throw new RangeError(`not a WAL file name: ${name}`);
  const existing = readRecord(repo, name);
  if (existing) {
    const hash = crypto.createHash('sha256');
    let size = 0;
    for await (const c of chunks(data)) {
      hash.update(c);
      size += c.length;
    }
    await assertSameContent(repo, existing, hash.digest('hex'), size);
    return { entry: existing, created: false };
  }
  removeUnrecorded(repo, name);
  const w = await repo.storage.writer(`wal/${name}`, repo.compression);
  try {
    for await (const c of chunks(data)) await w.write(c);
  } catch (err) {
    await w.abort();
    throw err;
  }
  return { entry: writeRecord(repo, name, await w.end()), created: true };
}

/** A segment being received, streamed to disk so memory stays bounded whatever `wal_segment_size` is. */
export interface SegmentSink {
  readonly name: string;
  /** Bytes written so far. */
  readonly size: number;
  write(chunk: Buffer): Promise<void>;
  /**
   * 'segment': the segment is complete, archive it as `<name>`; 'partial':
   * its timeline ended inside it, archive what there is as `<name>.partial`.
   * Returns once the file and its record are durable.
   */
  finish(as: 'segment' | 'partial'): Promise<StoreOutcome>;
  /** Drops what was written. */
  abort(): Promise<void>;
}

/**
 * Starts receiving segment `name`. The bytes go to `wal/<name>.partial`
 * (under the storage's temporary name until finished), so an interrupted
 * segment never shows under its real name. Refuses a segment that was
 * archived as the end of its timeline: a server continuing that timeline is
 * a branch the archive must not mix in.
 */
export async function openSegment(repo: Repository, name: string): Promise<SegmentSink> {
  if (!isSegmentName(name)) throw new RangeError(`not a WAL segment name: ${name}`);
  const partial = `${name}.partial`;
  if (readRecord(repo, partial)) {
    throw new PgmError('repository.invalid', `the WAL archive holds ${partial}, the end of timeline ${parseInt(name.slice(0, 8), 16)}, and the server now sends that segment past the end.`, {
      hint: 'two servers write the same timeline (a split brain?): check which node is primary (pgmaestro status) before archiving resumes.',
      data: { segment: name },
    });
  }
  removeUnrecorded(repo, partial);
  const w = await repo.storage.writer(`wal/${partial}`, repo.compression);
  const hash = crypto.createHash('sha256');
  let size = 0;
  let ended = false;
  return {
    name,
    get size() {
      return size;
    },
    async write(chunk) {
      hash.update(chunk);
      size += chunk.length;
      await w.write(chunk);
    },
    async finish(as) {
      const target = as === 'segment' ? name : partial;
      ended = true;
      const r = await w.end(); // now wal/<name>.partial[.gz], without a record: it does not count yet
      const existing = as === 'segment' ? readRecord(repo, name) : null;
      if (existing) {
        repo.storage.remove(r.stored);
        await assertSameContent(repo, existing, hash.digest('hex'), size);
        return { entry: existing, created: false };
      }
      let stored = r.stored;
      if (as === 'segment') {
        removeUnrecorded(repo, name);
        const to = stored.replace(/\.partial(\.gz)?$/, '$1');
        repo.storage.rename(stored, to);
        stored = to;
      }
      return { entry: writeRecord(repo, target, { ...r, stored }), created: true };
    },
    async abort() {
      if (!ended) await w.abort();
      ended = true;
    },
  };
}

/** The archived file's record, or null when `name` is not archived. */
export function readRecord(repo: Repository, name: string): WalEntry | null {
  const rel = `wal/${name}.json`;
  if (!repo.storage.exists(rel)) return null;
  return JSON.parse(repo.storage.read(rel).toString('utf8')) as WalEntry;
}

/** Decompressed content of an archived file. */
export function readArchived(repo: Repository, entry: WalEntry): Buffer {
  const raw = repo.storage.read(`wal/${entry.stored}`);
  return entry.stored.endsWith('.gz') ? zlib.gunzipSync(raw) : raw;
}

/** The archived history files' contents, by timeline. */
export function readHistories(repo: Repository, entries: Iterable<WalEntry> = repo.walEntries().values()): Map<number, string> {
  const out = new Map<number, string>();
  for (const e of entries) {
    const tli = historyTimeline(e.name);
    if (tli !== null) out.set(tli, readArchived(repo, e).toString('utf8'));
  }
  return out;
}

export interface ArchivePosition {
  /** The newest archived segment: on the highest timeline, the highest segment number. */
  readonly segment: string;
  readonly timeline: number;
  /** Where it ends: everything before this LSN on its history is archived (when continuous). */
  readonly lsn: Lsn;
  readonly segmentSize: number;
}

/** The newest archived segment and where it ends; null when no segment is archived. */
export function archivePosition(repo: Repository, entries: Iterable<WalEntry> = repo.walEntries().values()): ArchivePosition | null {
  let best: ArchivePosition | null = null;
  for (const e of entries) {
    const id = isPowerOfTwo(e.size) ? parseSegmentName(e.name, e.size) : null;
    if (!id) continue;
    const lsn = segmentStartLsn(id.segno + 1n, e.size);
    if (!best || id.timeline > best.timeline || (id.timeline === best.timeline && lsn > best.lsn)) best = { segment: e.name, timeline: id.timeline, lsn, segmentSize: e.size };
  }
  return best;
}

/** checkContinuity over the repository's archive, from `from` (default: its oldest segment on the newest history). */
export function archiveGaps(repo: Repository, from?: WalPoint): Continuity {
  const entries = [...repo.walEntries().values()];
  const pos = archivePosition(repo, entries);
  if (!pos) return { missing: [], first: null, last: null, timeline: from?.timeline ?? 1 };
  const names = entries.map((e) => e.name);
  const start = from ?? oldestSegment(names, pos.segmentSize);
  return checkContinuity(names, start, pos.segmentSize, readHistories(repo, entries));
}

/**
 * Removes what interrupted archiving left in `wal/`: storage temporary files
 * of dead processes, and stored files without a record (they never counted).
 * Call it only while this process has no segment open. Returns the names removed.
 */
export function removeWalLeftovers(repo: Repository): string[] {
  const files = repo.storage.list('wal');
  const present = new Set(files);
  const removed: string[] = [];
  for (const f of files) {
    const tmp = /\.tmp-(\d+)$/.exec(f);
    const base = f.replace(/\.gz$/, '');
    const orphan = tmp ? !alive(Number(tmp[1])) : isWalFileName(base) && !present.has(`${base}.json`);
    if (orphan) {
      repo.storage.remove(`wal/${f}`);
      removed.push(f);
    }
  }
  return removed;
}

function oldestSegment(names: readonly string[], segmentSize: number): WalPoint {
  let best: { timeline: number; segno: bigint } | null = null;
  for (const n of names) {
    const id = parseSegmentName(n, segmentSize);
    if (id && (!best || id.segno < best.segno || (id.segno === best.segno && id.timeline < best.timeline))) best = id;
  }
  return best ? { lsn: segmentStartLsn(best.segno, segmentSize), timeline: best.timeline } : { lsn: 0n, timeline: 1 };
}

function writeRecord(repo: Repository, name: string, r: StoredResult): WalEntry {
  const entry: WalEntry = { name, stored: r.stored.replace(/^wal\//, ''), sha256: r.sha256, size: r.size, archived_at: new Date().toISOString() };
  repo.storage.put(`wal/${name}.json`, JSON.stringify(entry) + '\n');
  return entry;
}

/** Stored copies of `name` (either compression) without a record: leftovers of an interrupted store. */
function removeUnrecorded(repo: Repository, name: string): void {
  for (const f of [name, `${name}.gz`]) if (repo.storage.exists(`wal/${f}`)) repo.storage.remove(`wal/${f}`);
}

async function assertSameContent(repo: Repository, existing: WalEntry, sha256: string, size: number): Promise<void> {
  const hash = crypto.createHash('sha256');
  for await (const c of repo.storage.reader(`wal/${existing.stored}`)) hash.update(c as Buffer);
  const archived = hash.digest('hex');
  if (archived === sha256 && existing.size === size) return;
  throw new PgmError('repository.invalid', `the WAL archive already holds ${existing.name} with different content (${existing.size} bytes, sha256 ${archived.slice(0, 12)}…; received ${size} bytes, sha256 ${sha256.slice(0, 12)}…); an archived file is never overwritten.`, {
    hint: 'another cluster or a second primary writes into this repository: check backup.repository and which node is primary (pgmaestro status).',
    data: { name: existing.name },
  });
}

async function* chunks(data: WalData): AsyncGenerator<Buffer> {
  if (Buffer.isBuffer(data)) yield data;
  else yield* data;
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
