import crypto from 'node:crypto';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { PgmError } from '../errors.js';
import { BLOCK, SUFFIX, crc32cCombine, decodeStored, kindOfStored, type Codec, type FrameDecoder } from './codec.js';
import type { CodecPool } from './codec-pool.js';
import type { RawWriter, Storage } from './storage.js';
import type { FileEntry } from './types.js';

/**
 * Checksums of stored files. Every stored file (or packed member) carries
 * `blocks`: the CRC-32C of each BLOCK (1 MiB) of its stored bytes, in
 * order, so any block can be read and checked on its own (a rebuild reads
 * only the blocks it needs and still checks each one), and `crc32c`: the
 * CRC-32C of the original bytes as PostgreSQL's backup_manifest writes it
 * (stored uncompressed, that is the combination of the block checksums).
 * CRC-32C is PostgreSQL's own default for manifests: it catches every burst
 * of up to 32 flipped bits and random damage with odds of 2^-32 per block,
 * and costs a fraction of SHA-256 (which the catalog files themselves keep).
 */
export interface StoredResult {
  /** Relative name as stored (with the compression's suffix). */
  readonly stored: string;
  readonly size: number;
  readonly storedSize: number;
  /** CRC-32C of the original bytes, 8 hex digits in PostgreSQL's byte order. */
  readonly crc32c: string;
  /** CRC-32C of each BLOCK of the stored bytes, 8 hex digits each, concatenated. */
  readonly blocks: string;
  /** SHA-256 of the stored bytes, when asked for (the WAL archive's records). */
  readonly sha256?: string;
}

/** The catalog entry of file `logical` stored as `r`, its stored name made relative to the backup's folder. */
export function entryOf(logical: string, r: StoredResult, backupDir: string): FileEntry {
  return { kind: 'file', path: logical, size: r.size, stored: path.posix.relative(backupDir, r.stored), stored_size: r.storedSize, crc32c: r.crc32c, blocks: r.blocks };
}

export interface StoredWriter {
  write(chunk: Buffer): Promise<void>;
  /** Completes the file (durable unless opened with deferSync); returns what was stored. */
  end(): Promise<StoredResult>;
  abort(): Promise<void>;
}

/** Running CRC-32C of consecutive BLOCK-sized ranges of a byte stream. */
export class BlockSums {
  private readonly done: number[] = [];
  private crc = 0;
  private fill = 0;
  total = 0;

  update(b: Buffer): void {
    for (let off = 0; off < b.length; ) {
      const n = Math.min(b.length - off, BLOCK - this.fill);
      this.crc = crc32c(off === 0 && n === b.length ? b : b.subarray(off, off + n), this.crc);
      this.fill += n;
      off += n;
      if (this.fill === BLOCK) this.close();
    }
    this.total += b.length;
  }

  /** The blocks' checksums as stored in the catalog. */
  hex(): string {
    if (this.fill > 0) this.close();
    return this.done.map(crcHex).join('');
  }

  /** The CRC-32C of the whole stream, from the blocks' (no second pass). */
  whole(): number {
    if (this.fill > 0) this.close();
    let crc = 0;
    for (const [i, c] of this.done.entries()) crc = i === 0 ? c : crc32cCombine(crc, c, Math.min(BLOCK, this.total - i * BLOCK));
    return crc;
  }

  private close(): void {
    this.done.push(this.crc);
    this.crc = 0;
    this.fill = 0;
  }
}

/** Blocks of one file waiting for their worker at most, so both workers can chew on one large file. */
const PENDING_PER_FILE = 6;

/**
 * A file stored compressed or not, checksummed as above. Uncompressed,
 * bytes go straight through (checksummed on the way, no copy). Compressed,
 * raw bytes are cut into blocks, compressed by the pool's workers (any of
 * them, in parallel) and written in order.
 */
export async function storedWriter(storage: Storage, pool: CodecPool, rel: string, codec: Codec, opts: { deferSync?: boolean; sha256?: boolean } = {}): Promise<StoredWriter> {
  const stored = rel + SUFFIX[codec.kind];
  const out: RawWriter = await storage.writer(stored, opts);
  const sums = new BlockSums();
  const sha = opts.sha256 ? crypto.createHash('sha256') : null;
  const pending: Promise<{ frame: Buffer; crc: number; rawLen: number }>[] = [];
  let parts: Buffer[] = [];
  let fill = 0;
  let blocks = 0;
  let size = 0;
  let crc = 0;
  let failed: unknown = null;

  const emit = async (b: Buffer) => {
    sums.update(b);
    sha?.update(b);
    await out.write(b);
  };
  const drainOne = async () => {
    const r = await pending.shift()!;
    crc = blocks++ === 0 ? r.crc : crc32cCombine(crc, r.crc, r.rawLen);
    await emit(r.frame);
  };
  const submit = async () => {
    const raw = Buffer.allocUnsafeSlow(fill);
    let at = 0;
    for (const p of parts) at += p.copy(raw, at);
    parts = [];
    fill = 0;
    const rawLen = raw.length;
    pending.push(pool.compress(codec, raw).then((r) => ({ ...r, rawLen })));
    while (pending.length > PENDING_PER_FILE) await drainOne();
  };
  const guard = async <T>(f: () => Promise<T>): Promise<T> => {
    if (failed) throw failed;
    try {
      return await f();
    } catch (err) {
      failed = err;
      await Promise.allSettled(pending.splice(0));
      await out.abort();
      throw err;
    }
  };

  return {
    write: (chunk) =>
      guard(async () => {
        size += chunk.length;
        if (codec.kind === 'none') return emit(chunk);
        for (let off = 0; off < chunk.length; ) {
          const n = Math.min(chunk.length - off, BLOCK - fill);
          parts.push(chunk.subarray(off, off + n));
          fill += n;
          off += n;
          if (fill === BLOCK) await submit();
        }
      }),
    end: () =>
      guard(async () => {
        // the last block; a compressed file always has at least one frame, so standard tools read an empty one too
        if (codec.kind !== 'none' && (fill > 0 || size === 0)) await submit();
        while (pending.length > 0) await drainOne();
        await out.end();
        const blocksHex = sums.hex();
        return { stored, size, storedSize: sums.total, crc32c: crcHex(codec.kind === 'none' ? sums.whole() : crc), blocks: blocksHex, sha256: sha?.digest('hex') };
      }),
    abort: async () => {
      failed ??= new Error('aborted');
      await Promise.allSettled(pending.splice(0));
      await out.abort();
    },
  };
}

/** PostgreSQL writes a CRC-32C into its manifest as the bytes of the integer in memory order (little-endian here). */
export function crcHex(crc: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(crc >>> 0);
  return b.toString('hex');
}

/** What a reader checks a stored file against: its block checksums (backup files) or its SHA-256 (archived WAL). */
export interface StoredCheck {
  readonly stored: string;
  /** -1: unknown (checked by the SHA-256 alone). */
  readonly stored_size: number;
  /** Set for a file packed with others: where its bytes start in `stored`. */
  readonly offset?: number;
  readonly blocks?: string;
  readonly sha256?: string;
}

/**
 * The original bytes of a stored file, checked as they are read. With block
 * checksums, each block of stored bytes is checked before any of it is
 * handed on, so nothing unchecked ever reaches a caller; with a SHA-256 the
 * mismatch fails the iteration at the end, naming the file (a caller that
 * wrote what it got must discard it). Then decompressed by its suffix.
 * `rel` is the stored name relative to the storage root.
 */
export function verifiedReader(storage: Storage, rel: string, check: StoredCheck, what: string, packs?: PackCache, decoder?: FrameDecoder): AsyncIterable<Buffer> {
  return decodeStored(kindOfStored(check.stored), checkedBytes(storage, rel, check, what, packs), `${what} is damaged: ${check.stored}`, decoder);
}

async function* checkedBytes(storage: Storage, rel: string, check: StoredCheck, what: string, packs?: PackCache): AsyncGenerator<Buffer> {
  const source = check.offset !== undefined ? (packs ? packs.range(storage, rel, check.offset, check.stored_size) : storage.readRange(rel, check.offset, check.stored_size)) : storage.reader(rel);
  const hash = check.blocks === undefined ? crypto.createHash('sha256') : null;
  let size = 0;
  let block = 0;
  let held: Buffer[] = [];
  let heldBytes = 0;
  let crc = 0;
  const release = function* (): Generator<Buffer> {
    const want = check.blocks!.slice(block * 8, block * 8 + 8);
    if (want === '' || crcHex(crc) !== want) throw corrupt(what, check.stored, 'does not match its checksum');
    block++;
    crc = 0;
    heldBytes = 0;
    const out = held;
    held = [];
    yield* out;
  };
  try {
    for await (const c of source) {
      size += c.length;
      if (hash) {
        hash.update(c);
        yield c;
        continue;
      }
      for (let off = 0; off < c.length; ) {
        const n = Math.min(c.length - off, BLOCK - heldBytes);
        const piece = off === 0 && n === c.length ? c : c.subarray(off, off + n);
        crc = crc32c(piece, crc);
        held.push(piece);
        heldBytes += n;
        off += n;
        if (heldBytes === BLOCK) yield* release();
      }
    }
  } catch (err) {
    if (err instanceof PgmError && err.code !== 'repository.missing') throw err;
    throw corrupt(what, check.stored, `cannot be read (${(err as Error).message.replace(/\.$/, '')})`, err);
  }
  if (check.stored_size >= 0 && size !== check.stored_size) throw corrupt(what, check.stored, 'does not match its checksum (its size differs)');
  if (hash) {
    if (hash.digest('hex') !== check.sha256) throw corrupt(what, check.stored, 'does not match its checksum');
    return;
  }
  if (heldBytes > 0) yield* release();
  if (block * 8 !== check.blocks!.length) throw corrupt(what, check.stored, 'does not match its checksum (it is shorter)');
}

/**
 * Blocks `from .. to-1` (BLOCK units) of an uncompressed stored file, each
 * checked against its block checksum before it is returned: what a rebuild
 * reads of a full file whose other blocks newer backups replace.
 */
export async function readCheckedBlocks(storage: Storage, rel: string, check: StoredCheck & { readonly blocks: string }, from: number, to: number, what: string): Promise<Buffer> {
  const start = (check.offset ?? 0) + from * BLOCK;
  const length = Math.min(to * BLOCK, check.stored_size) - from * BLOCK;
  if (length <= 0) return Buffer.alloc(0);
  const parts: Buffer[] = [];
  try {
    for await (const c of storage.readRange(rel, start, length)) parts.push(c);
  } catch (err) {
    if (err instanceof PgmError && err.code !== 'repository.missing') throw err;
    throw corrupt(what, check.stored, `cannot be read (${(err as Error).message.replace(/\.$/, '')})`, err);
  }
  const data = parts.length === 1 ? parts[0] : Buffer.concat(parts);
  if (data.length !== length) throw corrupt(what, check.stored, 'is shorter than its catalog says');
  for (let b = from, off = 0; off < data.length; b++, off += BLOCK) {
    const got = crcHex(crc32c(data.subarray(off, Math.min(off + BLOCK, data.length))));
    if (got !== check.blocks.slice(b * 8, b * 8 + 8)) throw corrupt(what, check.stored, 'does not match its checksum');
  }
  return data;
}

/**
 * Packs fetched whole, for storages where a ranged read of each small member
 * is a request of its own (S3): the first read of a pack brings it in once,
 * the members are sliced from memory. Holds a few packs at most.
 */
export class PackCache {
  private readonly held = new Map<string, Promise<Buffer>>();
  constructor(private readonly keep = 4) {}

  async *range(storage: Storage, rel: string, offset: number, length: number): AsyncGenerator<Buffer> {
    if (storage.localPath(rel) !== null) return yield* storage.readRange(rel, offset, length);
    let p = this.held.get(rel);
    if (!p) {
      p = storage.read(rel);
      this.held.set(rel, p);
      if (this.held.size > this.keep) this.held.delete(this.held.keys().next().value!);
      p.catch(() => this.held.delete(rel));
    }
    const pack = await p;
    yield pack.subarray(offset, offset + length);
  }
}

function corrupt(what: string, file: string, why: string, cause?: unknown): PgmError {
  return new PgmError('backup.corrupt', `${what} is damaged: ${file} ${why}.`, {
    hint: 'run pgmaestro backup verify; restore from another backup or take a new one.',
    cause,
    data: { file },
  });
}

/** SHA-256 and size of a stored file's bytes. */
export async function storedChecksum(storage: Storage, rel: string): Promise<{ sha256: string; size: number }> {
  const hash = crypto.createHash('sha256');
  let size = 0;
  for await (const c of storage.reader(rel)) {
    hash.update(c);
    size += c.length;
  }
  return { sha256: hash.digest('hex'), size };
}
