import crypto from 'node:crypto';
import { PgmError } from '../errors.js';
import type { Repository } from './repository.js';
import { isSegmentName } from './wal-names.js';

/**
 * The WAL segment in progress, made durable before it is complete: every
 * `backup.wal_flush_interval` the archiver stores the bytes received since
 * its last flush as one chunk object, then rewrites the segment's record
 * listing every chunk with its SHA-256:
 *
 *   wal/open/<segment>/<session>-<offset>   raw WAL bytes from <offset> (hex)
 *   wal/open/<segment>.json                 an OpenSegment: the chunks, in order, from offset 0
 *
 * Only appends happen (a store cannot append, so each flush is a new object),
 * and the record is replaced only by one that covers at least as many bytes.
 * Once the whole segment is archived the record and its chunks are removed.
 * A restore uses the record for the segment after the last complete one:
 * the chunks concatenated, zero-padded to the segment size (as
 * pg_receivewal's .partial files are), which recovery replays to the last
 * complete record and then ends.
 */
export interface OpenChunk {
  readonly name: string;
  readonly offset: number;
  readonly size: number;
  readonly sha256: string;
}

export interface OpenSegment {
  readonly segment: string;
  readonly timeline: number;
  readonly segment_size: number;
  /** Bytes of the segment durable in the repository, from its start. */
  readonly size: number;
  readonly chunks: readonly OpenChunk[];
  /** When the last chunk was stored. */
  readonly flushed_at: string;
}

export async function readOpen(repo: Repository, segment: string): Promise<OpenSegment | null> {
  const rel = `wal/open/${segment}.json`;
  if (!(await repo.storage.exists(rel))) return null;
  return JSON.parse((await repo.storage.read(rel)).toString('utf8')) as OpenSegment;
}

/** Every open segment's record. */
export async function openSegments(repo: Repository): Promise<OpenSegment[]> {
  const names = (await repo.storage.list('wal/open')).filter((n) => n.endsWith('.json'));
  const out: OpenSegment[] = [];
  for (const n of names) {
    const r = await readOpen(repo, n.slice(0, -5));
    if (r) out.push(r);
  }
  return out;
}

/** Writes the chunks of one segment in progress, for one archiver session. */
export class OpenSegmentWriter {
  private chunks: OpenChunk[] = [];
  private size = 0;
  /** How far an earlier session's record reaches (read once): this one's replaces it only once it covers more. */
  private earlier: OpenSegment | null | undefined = undefined;
  private readonly session = `${Date.now().toString(36)}${process.pid.toString(36)}`;

  constructor(
    private readonly repo: Repository,
    readonly segment: string,
    private readonly timeline: number,
    private readonly segmentSize: number,
  ) {
    if (!isSegmentName(segment)) throw new RangeError(`not a WAL segment name: ${segment}`);
  }

  get flushed(): number {
    return this.size;
  }

  /** Stores `data`, the segment's bytes from `this.flushed` on, then the record (if it now covers more than the stored one). */
  async append(data: Buffer): Promise<void> {
    if (data.length === 0) return;
    const name = `${this.session}-${this.size.toString(16).padStart(8, '0')}`;
    await this.repo.storage.put(`wal/open/${this.segment}/${name}`, data);
    this.chunks.push({ name, offset: this.size, size: data.length, sha256: crypto.createHash('sha256').update(data).digest('hex') });
    this.size += data.length;
    if (this.earlier === undefined) this.earlier = await readOpen(this.repo, this.segment);
    if (this.earlier && this.earlier.size > this.size) return; // an earlier session got further; keep its record until this one passes it
    const rec: OpenSegment = { segment: this.segment, timeline: this.timeline, segment_size: this.segmentSize, size: this.size, chunks: this.chunks, flushed_at: new Date().toISOString() };
    await this.repo.storage.put(`wal/open/${this.segment}.json`, JSON.stringify(rec) + '\n');
    if (this.earlier) {
      await removeChunks(this.repo, this.segment, new Set(this.chunks.map((c) => c.name)));
      this.earlier = null;
    }
  }
}

/** Removes the segment's open record and chunks (its complete file is archived). */
export async function dropOpen(repo: Repository, segment: string): Promise<void> {
  await repo.storage.remove(`wal/open/${segment}.json`);
  await repo.storage.remove(`wal/open/${segment}`);
}

async function removeChunks(repo: Repository, segment: string, keep: ReadonlySet<string>): Promise<void> {
  for (const n of await repo.storage.list(`wal/open/${segment}`)) if (!keep.has(n)) await repo.storage.remove(`wal/open/${segment}/${n}`);
}

/** The open segment's bytes, each chunk checked against its checksum, zero-padded to the segment size. */
export async function* openSegmentBytes(repo: Repository, rec: OpenSegment, pad = true): AsyncGenerator<Buffer> {
  let at = 0;
  for (const c of rec.chunks) {
    if (c.offset !== at) throw damagedOpen(rec.segment, `chunk ${c.name} starts at ${c.offset}, not ${at}`);
    const data = await repo.storage.read(`wal/open/${rec.segment}/${c.name}`);
    if (data.length !== c.size || crypto.createHash('sha256').update(data).digest('hex') !== c.sha256) throw damagedOpen(rec.segment, `chunk ${c.name} does not match its checksum`);
    at += data.length;
    yield data;
  }
  for (let left = pad ? rec.segment_size - at : 0; left > 0; ) {
    const n = Math.min(left, 1 << 20);
    yield Buffer.alloc(n);
    left -= n;
  }
}

function damagedOpen(segment: string, why: string): PgmError {
  return new PgmError('backup.corrupt', `the WAL archive's segment in progress ${segment} is damaged: ${why}.`, { hint: 'run pgmaestro backup verify; restore to a point before that segment.', data: { segment } });
}
