import crypto from 'node:crypto';
import type { Repository } from './repository.js';
import { storedWriter, type StoredWriter } from './stored-file.js';
import { assertSameContent, readRecord, removeUnrecorded, storeSegment, writeRecord, type StoreOutcome } from './wal-archive.js';
import { MAX_PENDING, OpenSegmentWriter, dropOpen, openSegmentBytes, readOpen } from './wal-open.js';

/**
 * The segment being received, written once:
 * - into a local repository uncompressed, it grows in its in-progress file
 *   (wal-open.ts), fdatasynced at every flush, and that file becomes the
 *   archived segment when complete;
 * - compressed, the compressed copy streams beside it into its own file;
 * - into S3, it streams into its (multipart) object while the bytes since
 *   the last flush become one more in-progress chunk at each flush.
 * Memory stays bounded whatever `wal_segment_size` is. A segment already
 * archived (streamed again after a restart) is only compared with the
 * archived copy.
 */
export class SegmentSink {
  size = 0;
  private flushing: Promise<void> = Promise.resolve();
  private failure: unknown = null;

  private constructor(
    private readonly repo: Repository,
    readonly name: string,
    private readonly writer: StoredWriter | null,
    private readonly compare: crypto.Hash | null,
    private readonly open: OpenSegmentWriter | null,
  ) {}

  static async start(repo: Repository, name: string, timeline: number, segmentSize: number): Promise<SegmentSink> {
    if (await readRecord(repo, name)) return new SegmentSink(repo, name, null, crypto.createHash('sha256'), null);
    await removeUnrecorded(repo, name);
    const open = await OpenSegmentWriter.create(repo, name, timeline, segmentSize);
    const writer = open.growing && repo.codec.kind === 'none' ? null : await storedWriter(repo.storage, repo.codecPool(), `wal/${name}`, repo.codec, { sha256: true });
    return new SegmentSink(repo, name, writer, null, open);
  }

  /** Bytes of the segment durable in the repository so far (a segment already archived: all that was compared). */
  get flushed(): number {
    return this.open ? this.open.flushed : this.size;
  }

  /** True when a flush is worth it soon: bytes arrived since the last one. */
  get dirty(): boolean {
    return this.open !== null && this.size > this.open.flushed;
  }

  /** Where a flush is cheap (an fdatasync of a local file), the archiver flushes more often than the interval. */
  get cheapFlush(): boolean {
    return this.open?.growing ?? false;
  }

  /** `chunk` may be a view into a buffer the caller reuses: whatever keeps it copies it. */
  async write(chunk: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    this.open?.write(chunk);
    if (this.writer) await this.writer.write(Buffer.from(chunk));
    else this.compare?.update(chunk);
    this.size += chunk.length;
    if (this.open && this.open.pendingBytes >= MAX_PENDING) await this.flush();
  }

  /** Makes what arrived durable as the segment in progress. Flushes run one after the other, in order. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (this.open && !this.failure) await this.open.flush().catch((err: unknown) => void (this.failure ??= err));
    });
    return this.flushing.then(() => {
      if (this.failure) throw this.failure;
    });
  }

  /** The segment is complete: its file and record, then its in-progress record is dropped. */
  async finish(): Promise<StoreOutcome> {
    await this.flushing;
    if (this.failure) throw this.failure;
    let out: StoreOutcome;
    if (this.compare) {
      const existing = (await readRecord(this.repo, this.name))!;
      await assertSameContent(this.repo, existing, this.compare.digest('hex'), this.size);
      await dropOpen(this.repo, this.name);
      return { entry: existing, created: false };
    }
    if (this.writer) {
      out = { entry: await writeRecord(this.repo, this.name, await this.writer.end()), created: true };
      await this.open?.close();
    } else {
      const r = await this.open!.completeAs(`wal/${this.name}`);
      out = { entry: await writeRecord(this.repo, this.name, { stored: `wal/${this.name}`, size: r.size, sha256: r.sha256 }), created: true };
    }
    await dropOpen(this.repo, this.name);
    return out;
  }

  /** Its timeline ended inside it: what there is becomes `<name>.partial`, from what is durable in progress. */
  async finishPartial(): Promise<StoreOutcome> {
    await this.flush();
    await this.writer?.abort();
    await this.open?.close();
    const rec = await readOpen(this.repo, this.name);
    const out = await storeSegment(this.repo, `${this.name}.partial`, () => (rec ? openSegmentBytes(this.repo, rec, false) : []));
    await dropOpen(this.repo, this.name);
    return out;
  }

  async abort(): Promise<void> {
    await this.flushing.catch(() => undefined);
    await this.writer?.abort();
    await this.open?.close();
  }
}
