import crypto from 'node:crypto';
import { PgmError } from '../errors.js';
import type { Lsn } from '../postgres/lsn.js';
import type { Repository } from './repository.js';
import { storedWriter, verifiedReader } from './stored-file.js';
import type { WalEntry } from './types.js';
import { checkContinuity, type Continuity, type WalPoint } from './wal-continuity.js';
import { historyTimeline, isPowerOfTwo, isWalFileName, parseSegmentName, segmentStartLsn } from './wal-names.js';

export { checkContinuity } from './wal-continuity.js';
export type { Continuity, WalPoint } from './wal-continuity.js';

/**
 * The repository side of WAL archiving. Every archived file is written
 * first, completely (storage writers make a name visible only whole), then
 * its record `wal/<name>.json`: a file counts as archived if and only if
 * its record exists. An archived file is never overwritten: storing it
 * again with the same content is a no-op, with different content an error.
 *
 * Names: complete segments, `<TLI>.history` files, and `<segment>.partial` —
 * PostgreSQL's own name for the last, incomplete segment of a timeline that
 * ended inside it. Recovery never asks for a `.partial` (it reads that
 * segment from the new timeline's file, which holds the same bytes up to the
 * switch); it is kept so the old timeline's last WAL is not lost. The segment
 * still in progress lives under `wal/open/` (see wal-open.ts).
 */

export interface StoreOutcome {
  readonly entry: WalEntry;
  /** False when the file was already archived with the same content (nothing was written). */
  readonly created: boolean;
}

export type WalData = Buffer | Iterable<Buffer> | AsyncIterable<Buffer>;

/** Archives one file (a segment, a history file or a `.partial`) under `wal/`, compressed as the repository asks. */
export async function storeSegment(repo: Repository, name: string, data: WalData | (() => WalData)): Promise<StoreOutcome> {
  if (!isWalFileName(name)) throw new RangeError(`not a WAL file name: ${name}`);
  const source = typeof data === 'function' ? data : () => data;
  const existing = await readRecord(repo, name);
  if (existing) {
    const hash = crypto.createHash('sha256');
    let size = 0;
    for await (const c of chunks(source())) {
      hash.update(c);
      size += c.length;
    }
    await assertSameContent(repo, existing, hash.digest('hex'), size);
    return { entry: existing, created: false };
  }
  await removeUnrecorded(repo, name);
  const w = await storedWriter(repo.storage, repo.codecPool(), `wal/${name}`, repo.codec, { sha256: true });
  try {
    for await (const c of chunks(source())) await w.write(c);
  } catch (err) {
    await w.abort();
    throw err;
  }
  return { entry: await writeRecord(repo, name, await w.end()), created: true };
}

/** The record that makes a stored file count as archived. */
export async function writeRecord(repo: Repository, name: string, r: { readonly stored: string; readonly size: number; readonly sha256?: string }): Promise<WalEntry> {
  if (r.sha256 === undefined) throw new Error('internal: a WAL file stored without its SHA-256');
  const entry: WalEntry = { name, stored: r.stored.replace(/^wal\//, ''), sha256: r.sha256, size: r.size, archived_at: new Date().toISOString() };
  await repo.storage.put(`wal/${name}.json`, JSON.stringify(entry) + '\n');
  return entry;
}

/** The archived file's record, or null when `name` is not archived. */
export async function readRecord(repo: Repository, name: string): Promise<WalEntry | null> {
  const rel = `wal/${name}.json`;
  if (!(await repo.storage.exists(rel))) return null;
  return JSON.parse((await repo.storage.read(rel)).toString('utf8')) as WalEntry;
}

/** The original bytes of an archived file, checked against its record as they are read. */
export function archivedReader(repo: Repository, entry: WalEntry): AsyncIterable<Buffer> {
  return verifiedReader(repo.storage, `wal/${entry.stored}`, { stored: entry.stored, sha256: entry.sha256, stored_size: -1 }, `the WAL archive's ${entry.name}`);
}

/** Decompressed, checked content of an archived file (small files: history files). */
export async function readArchived(repo: Repository, entry: WalEntry): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of archivedReader(repo, entry)) parts.push(c);
  return Buffer.concat(parts);
}

/** The archived history files' contents, by timeline. */
export async function readHistories(repo: Repository, entries?: Iterable<WalEntry>): Promise<Map<number, string>> {
  const out = new Map<number, string>();
  for (const e of entries ?? (await repo.walEntries()).values()) {
    const tli = historyTimeline(e.name);
    if (tli !== null) out.set(tli, (await readArchived(repo, e)).toString('utf8'));
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

/** The newest complete archived segment and where it ends; null when no segment is archived. Pure. */
export function archivePosition(entries: Iterable<WalEntry>): ArchivePosition | null {
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
export async function archiveGaps(repo: Repository, from?: WalPoint): Promise<Continuity> {
  const entries = [...(await repo.walEntries()).values()];
  const pos = archivePosition(entries);
  if (!pos) return { missing: [], first: null, last: null, timeline: from?.timeline ?? 1 };
  const names = entries.map((e) => e.name);
  const start = from ?? oldestSegment(names, pos.segmentSize);
  return checkContinuity(names, start, pos.segmentSize, await readHistories(repo, entries));
}

/**
 * Removes what interrupted archiving left in `wal/`: temporary files of dead
 * processes, and stored files without a record (they never counted). Call
 * it only while this process has no file open there. Returns the names removed.
 */
export async function removeWalLeftovers(repo: Repository): Promise<string[]> {
  const files = await repo.storage.list('wal');
  const present = new Set(files);
  const removed: string[] = [];
  for (const f of files) {
    const tmp = /\.tmp-(\d+)$/.exec(f);
    const base = f.replace(/\.(gz|lz4|zst)$/, '');
    const orphan = tmp ? !alive(Number(tmp[1])) : isWalFileName(base) && !present.has(`${base}.json`);
    if (orphan) {
      await repo.storage.remove(`wal/${f}`);
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

/** Stored copies of `name` (any compression) without a record: leftovers of an interrupted store. */
export async function removeUnrecorded(repo: Repository, name: string): Promise<void> {
  for (const f of [name, `${name}.gz`, `${name}.lz4`, `${name}.zst`]) if (await repo.storage.exists(`wal/${f}`)) await repo.storage.remove(`wal/${f}`);
}

export async function assertSameContent(repo: Repository, existing: WalEntry, sha256: string, size: number): Promise<void> {
  const hash = crypto.createHash('sha256');
  let got = 0;
  for await (const c of archivedReader(repo, existing)) {
    hash.update(c);
    got += c.length;
  }
  const archived = hash.digest('hex');
  if (archived === sha256 && got === size) return;
  throw new PgmError('repository.invalid', `the WAL archive already holds ${existing.name} with different content (${existing.size} bytes, sha256 ${archived.slice(0, 12)}…; received ${size} bytes, sha256 ${sha256.slice(0, 12)}…); an archived file is never overwritten.`, {
    hint: 'another cluster or a second primary writes into this repository: check backup.repository and which node is primary (pgmaestro status).',
    data: { name: existing.name },
  });
}

async function* chunks(data: WalData): AsyncGenerator<Buffer> {
  if (Buffer.isBuffer(data)) yield data;
  else yield* data;
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
