import crypto from 'node:crypto';
import { PgmError } from '../errors.js';
import type { Repository } from './repository.js';
import type { AppendFile } from './storage.js';
import { isSegmentName } from './wal-names.js';

/**
 * The WAL segment in progress, made durable before it is complete, as a
 * record listing where its bytes are with their SHA-256:
 *
 *   wal/open/<segment>.json                 an OpenSegment: the chunks, in order, from offset 0
 *   wal/open/<segment>/<session>[-<offset>] the bytes
 *
 * Two ways, by what the storage can do:
 * - growing (a local directory): the archiver appends the segment to one
 *   file per session as it arrives and fdatasyncs it; the record's single
 *   chunk says how much of the file is durable (the file may hold more).
 *   Each byte is written once: stored uncompressed, that file becomes the
 *   archived segment itself when complete.
 * - chunks (S3, which cannot append): the bytes received since the last
 *   flush are stored as one more chunk object.
 * The record is replaced only by one that covers at least as many bytes, so
 * a restarted archiver never shrinks what an earlier session made durable.
 * Once the whole segment is archived the record and its files are removed.
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

/** WAL held in memory for the next chunk at most (chunks mode): past it, the caller flushes at once. */
export const MAX_PENDING = 16 << 20;

/** Writes one segment in progress for one archiver session (growing or chunks, see above). */
export class OpenSegmentWriter {
  private chunks: OpenChunk[] = [];
  private size = 0;
  /** How far an earlier session's record reaches (read once): this one's replaces it only once it covers more. */
  private earlier: OpenSegment | null | undefined = undefined;
  /** chunks mode: bytes since the last flush. */
  private pending: Buffer[] = [];
  pendingBytes = 0;
  /** growing mode: everything appended, and the running SHA-256 of it. */
  private readonly hash = crypto.createHash('sha256');
  private written = 0;

  private constructor(
    private readonly repo: Repository,
    readonly segment: string,
    private readonly timeline: number,
    private readonly segmentSize: number,
    private readonly file: AppendFile | null,
    private readonly session: string,
  ) {}

  static async create(repo: Repository, segment: string, timeline: number, segmentSize: number): Promise<OpenSegmentWriter> {
    if (!isSegmentName(segment)) throw new RangeError(`not a WAL segment name: ${segment}`);
    const session = `${Date.now().toString(36)}${process.pid.toString(36)}`;
    const file = await repo.storage.appendFile(`wal/open/${segment}/${session}`);
    return new OpenSegmentWriter(repo, segment, timeline, segmentSize, file, session);
  }

  /** True when the segment grows in one file that becomes the archived segment (a local directory). */
  get growing(): boolean {
    return this.file !== null;
  }

  /** Bytes of the segment durable in the repository, from its start. */
  get flushed(): number {
    return this.size;
  }

  /** Takes the next bytes of the segment (not durable until `flush`). `chunk` may be reused by the caller afterwards. */
  write(chunk: Buffer): void {
    if (this.file) {
      this.file.append(chunk);
      this.hash.update(chunk);
      this.written += chunk.length;
      return;
    }
    this.pending.push(Buffer.from(chunk));
    this.pendingBytes += chunk.length;
  }

  /** Makes what was written durable, then the record (if it now covers more than the stored one). Calls must not overlap. */
  async flush(): Promise<void> {
    if (this.file) {
      if (this.written === this.size) return;
      const digest = this.hash.copy().digest('hex');
      const upTo = this.written;
      await this.file.sync();
      this.chunks = [{ name: this.session, offset: 0, size: upTo, sha256: digest }];
      this.size = upTo;
    } else {
      if (this.pendingBytes === 0) return;
      const data = Buffer.concat(this.pending);
      this.pending = [];
      this.pendingBytes = 0;
      const name = `${this.session}-${this.size.toString(16).padStart(8, '0')}`;
      await this.repo.storage.put(`wal/open/${this.segment}/${name}`, data);
      this.chunks.push({ name, offset: this.size, size: data.length, sha256: crypto.createHash('sha256').update(data).digest('hex') });
      this.size += data.length;
    }
    if (this.earlier === undefined) this.earlier = await readOpen(this.repo, this.segment);
    if (this.earlier && this.earlier.size > this.size) return; // an earlier session got further; keep its record until this one passes it
    const rec: OpenSegment = { segment: this.segment, timeline: this.timeline, segment_size: this.segmentSize, size: this.size, chunks: this.chunks, flushed_at: new Date().toISOString() };
    await this.repo.storage.put(`wal/open/${this.segment}.json`, JSON.stringify(rec) + '\n');
    if (this.earlier) {
      await removeChunks(this.repo, this.segment, new Set(this.chunks.map((c) => c.name)));
      this.earlier = null;
    }
  }

  /** growing mode, the segment complete: its file becomes `rel`, durable. Returns the SHA-256 and size of everything written. */
  async completeAs(rel: string): Promise<{ sha256: string; size: number }> {
    if (!this.file) throw new Error('internal: completeAs on a segment stored as chunks');
    await this.file.complete(rel);
    return { sha256: this.hash.digest('hex'), size: this.written };
  }

  /** Stops writing; the durable part and its record stay (a restore uses them; the next session replaces them). */
  async close(): Promise<void> {
    await this.file?.close();
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
    // a growing file may hold more than its record says is durable: only the recorded prefix counts
    const whole = await repo.storage.read(`wal/open/${rec.segment}/${c.name}`);
    const data = whole.length > c.size ? whole.subarray(0, c.size) : whole;
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
