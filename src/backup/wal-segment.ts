import crypto from 'node:crypto';
import type { Repository } from './repository.js';
import { storedWriter, type StoredWriter } from './stored-file.js';
import { assertSameContent, readRecord, removeUnrecorded, storeSegment, writeRecord, type StoreOutcome } from './wal-archive.js';
import { OpenSegmentWriter, dropOpen, openSegmentBytes, readOpen } from './wal-open.js';

/** WAL kept in memory between two flushes of the segment in progress, at most: past it, a flush happens at once. */
const MAX_PENDING = 16 << 20;

/**
 * The segment being received. Its bytes stream straight into the
 * repository's file for it (compressed, checksummed, visible only once
 * complete), and those received since the last flush are held (at most
 * MAX_PENDING) for the segment-in-progress record (wal-open.ts), which
 * `flush()` stores. So memory stays bounded whatever `wal_segment_size` is,
 * and each byte is written once as part of the segment plus once as a chunk.
 * A segment already archived (streamed again after a restart) is only
 * compared with the archived copy.
 */
export class SegmentSink {
  size = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private flushing: Promise<void> = Promise.resolve();
  private failure: unknown = null;

  private constructor(
    private readonly repo: Repository,
    readonly name: string,
    private readonly writer: StoredWriter | null,
    private readonly compare: crypto.Hash | null,
    private readonly open: OpenSegmentWriter,
  ) {}

  static async start(repo: Repository, name: string, timeline: number, segmentSize: number): Promise<SegmentSink> {
    const open = new OpenSegmentWriter(repo, name, timeline, segmentSize);
    if (await readRecord(repo, name)) return new SegmentSink(repo, name, null, crypto.createHash('sha256'), open);
    await removeUnrecorded(repo, name);
    return new SegmentSink(repo, name, await storedWriter(repo.storage, repo.codecPool(), `wal/${name}`, repo.codec), null, open);
  }

  /** Bytes of the segment durable in the repository so far (as the segment in progress). */
  get flushed(): number {
    return this.open.flushed;
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    const copy = Buffer.from(chunk);
    if (this.writer) await this.writer.write(copy);
    else this.compare!.update(copy);
    this.size += copy.length;
    this.pending.push(copy);
    this.pendingBytes += copy.length;
    if (this.pendingBytes >= MAX_PENDING) await this.flush();
  }

  /** Stores what arrived since the last flush as the segment in progress. Flushes run one after the other, in order. */
  flush(): Promise<void> {
    const data = this.pending.length === 0 ? null : Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    this.flushing = this.flushing.then(async () => {
      if (data && !this.failure) await this.open.append(data).catch((err: unknown) => void (this.failure ??= err));
    });
    return this.flushing.then(() => {
      if (this.failure) throw this.failure;
    });
  }

  /** The segment is complete: its file and record, then its in-progress record is dropped. */
  async finish(): Promise<StoreOutcome> {
    await this.flushing;
    let out: StoreOutcome;
    if (this.writer) {
      out = { entry: await writeRecord(this.repo, this.name, await this.writer.end()), created: true };
    } else {
      const existing = (await readRecord(this.repo, this.name))!;
      await assertSameContent(this.repo, existing, this.compare!.digest('hex'), this.size);
      out = { entry: existing, created: false };
    }
    await dropOpen(this.repo, this.name);
    return out;
  }

  /** Its timeline ended inside it: what there is becomes `<name>.partial`, from the chunks already stored. */
  async finishPartial(): Promise<StoreOutcome> {
    await this.flush();
    await this.writer?.abort();
    const rec = await readOpen(this.repo, this.name);
    const out = await storeSegment(this.repo, `${this.name}.partial`, () => (rec ? openSegmentBytes(this.repo, rec, false) : []));
    await dropOpen(this.repo, this.name);
    return out;
  }

  async abort(): Promise<void> {
    await this.flushing.catch(() => undefined);
    await this.writer?.abort();
  }
}
