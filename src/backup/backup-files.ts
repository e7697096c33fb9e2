import { crc32c } from '@node-rs/crc32';
import { BLOCK, SUFFIX, type Codec } from './codec.js';
import type { CodecPool } from './codec-pool.js';
import type { RawWriter, Storage } from './storage.js';
import { BlockSums, crcHex, entryOf, storedWriter, type StoredWriter } from './stored-file.js';
import type { FileEntry } from './types.js';

/** A pack is closed and a new one started past this many stored bytes. */
const PACK_SIZE = 64 << 20;
/** Large files whose last compressed blocks are still being stored while the stream goes on, at most. */
const ENDING_LIMIT = 16;

/**
 * Writes the files of one backup into its folder, in the order a stream
 * (BASE_BACKUP's tar, a cold copy) gives them, each checksummed by blocks
 * (stored-file.ts):
 *
 * - a file smaller than a block goes into the current pack
 *   (`packs/<n>[suffix]`), compressed on its own, so a backup of a thousand
 *   small files is a few objects, not a thousand (S3 charges and waits per
 *   object, a file system per create and fsync);
 * - a larger file is stored on its own. Uncompressed, its bytes go from the
 *   stream to the file with synchronous writes of the chunks as they come
 *   (no copy, no thread hop) and are made durable together at the end
 *   (`finish`): large files in the background as soon as they are complete,
 *   then the rest. Compressed, its blocks go to the codec workers.
 *
 * Nothing is visible as a backup until its marker is written, so files are
 * written under their final names directly (`direct`).
 */
export class BackupFiles {
  private pack: { n: number; writer: RawWriter; size: number } | null = null;
  private packs = 0;
  private readonly ending = new Set<Promise<void>>();
  private failure: unknown = null;

  constructor(
    private readonly storage: Storage,
    private readonly pool: () => CodecPool,
    private readonly codec: Codec,
    readonly dir: string,
  ) {}

  /** A new file of `size` bytes (known up front) at `logical`; `done` receives its entry once it is stored. */
  async open(logical: string, size: number, done: (e: FileEntry) => void): Promise<FileSink> {
    if (this.failure) throw this.failure;
    if (size < BLOCK) return this.packed(logical, done);
    if (this.codec.kind === 'none') return this.plain(logical, done);
    const w = await storedWriter(this.storage, this.pool(), `${this.dir}/${logical}`, this.codec, { deferSync: true });
    return {
      write: (c) => w.write(c),
      end: async () => {
        while (this.ending.size >= ENDING_LIMIT) await Promise.race(this.ending);
        const p: Promise<void> = w
          .end()
          .then((r) => done(entryOf(logical, r, this.dir)))
          .catch((err: unknown) => void (this.failure ??= err))
          .finally(() => this.ending.delete(p));
        this.ending.add(p);
      },
      abort: () => w.abort(),
    };
  }

  /** Every file stored and durable (packs closed); throws the first failure. */
  async finish(): Promise<void> {
    await Promise.all(this.ending);
    if (this.failure) throw this.failure;
    await this.closePack();
    await this.storage.syncDeferred();
  }

  /** After a failure: stops what is running; the caller removes the folder. */
  async abort(): Promise<void> {
    await Promise.allSettled(this.ending);
    await this.pack?.writer.abort();
    this.pack = null;
  }

  private plain(logical: string, done: (e: FileEntry) => void): FileSink {
    const sums = new BlockSums();
    let out: Promise<RawWriter> | null = null;
    const writer = () => (out ??= this.storage.writer(`${this.dir}/${logical}`, { deferSync: true, direct: true }));
    return {
      write: async (c) => {
        sums.update(c);
        await (await writer()).write(c);
      },
      end: async () => {
        await (await writer()).end();
        done({ kind: 'file', path: logical, size: sums.total, stored: logical, stored_size: sums.total, crc32c: crcHex(sums.whole()), blocks: sums.hex() });
      },
      abort: async () => {
        if (out) await (await out).abort();
      },
    };
  }

  /** A small file: gathered (it is less than a block), then appended to the pack in one piece. */
  private packed(logical: string, done: (e: FileEntry) => void): FileSink {
    const parts: Buffer[] = [];
    let size = 0;
    return {
      write: async (c) => {
        parts.push(c);
        size += c.length;
      },
      end: async () => {
        const raw = parts.length === 1 ? parts[0] : Buffer.concat(parts, size);
        let stored: Buffer;
        let crc: number;
        if (this.codec.kind === 'none') {
          stored = raw;
          crc = crc32c(raw);
        } else {
          const r = await this.pool().compress(this.codec, Buffer.from(raw)); // its own copy: the pool hands it to a worker
          stored = r.frame;
          crc = r.crc;
        }
        const pack = await this.currentPack();
        const offset = pack.size;
        await pack.writer.write(stored);
        pack.size += stored.length;
        const sums = new BlockSums();
        sums.update(stored);
        done({ kind: 'file', path: logical, size, stored: this.packName(pack.n), offset, stored_size: stored.length, crc32c: crcHex(crc), blocks: sums.hex() });
        if (pack.size >= PACK_SIZE) await this.closePack();
      },
      abort: async () => undefined,
    };
  }

  private packName(n: number): string {
    return `packs/${n}${SUFFIX[this.codec.kind]}`;
  }

  private async currentPack(): Promise<{ n: number; writer: RawWriter; size: number }> {
    if (this.pack) return this.pack;
    const n = this.packs++;
    this.pack = { n, writer: await this.storage.writer(`${this.dir}/${this.packName(n)}`, { deferSync: true, direct: true }), size: 0 };
    return this.pack;
  }

  private async closePack(): Promise<void> {
    const p = this.pack;
    this.pack = null;
    await p?.writer.end();
  }
}

/** One file being stored. `write` takes chunks that are not changed afterwards (views into the stream are fine). */
export interface FileSink {
  write(chunk: Buffer): Promise<void>;
  end(): Promise<void>;
  abort(): Promise<void>;
}

export type { StoredWriter };
