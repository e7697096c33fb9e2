import path from 'node:path';
import { PgmError } from '../errors.js';

/**
 * The `INCREMENTAL.<name>` files of a PostgreSQL 17+ incremental backup, in
 * the server's byte order (little-endian: every platform we run on):
 *
 *   uint32 magic, uint32 block_count, uint32 truncation_block_length,
 *   uint32 block_numbers[block_count]   (segment-relative, ascending)
 *   zero padding to a multiple of BLCKSZ, only when block_count > 0
 *   block_count pages of BLCKSZ bytes, in the order of block_numbers
 */
export const BLCKSZ = 8192;
export const INCREMENTAL_MAGIC = 0xd3ae1f0d;
const PREFIX = 'INCREMENTAL.';
const FIXED_HEADER = 12;
/** Far above any real segment (1 GiB = 131072 blocks by default); only bounds what a damaged header makes us allocate. */
export const MAX_SEGMENT_BLOCKS = 1 << 24;

export interface IncrementalHeader {
  /**
   * Minimum length of the reconstructed file: blocks below it that are not in
   * this file come from the prior backup; blocks at or above it exist only if
   * this file has them.
   */
  readonly truncationBlockLength: number;
  /** Segment-relative block numbers, strictly ascending; page i of the file is block blocks[i]. */
  readonly blocks: readonly number[];
}

export interface IncrementalPage {
  readonly block: number;
  readonly data: Buffer;
}

export interface IncrementalReader {
  readonly header: IncrementalHeader;
  /**
   * The pages in file order, read from the source as they are asked for. Can
   * be iterated once. Throws 'backup.corrupt' if the file ends before its last
   * page or goes on after it.
   */
  readonly pages: AsyncIterator<IncrementalPage>;
  /** Stops reading the source without consuming the rest; safe to call twice. */
  close(): Promise<void>;
}

export function isIncrementalName(rel: string): boolean {
  const base = path.posix.basename(rel);
  return base.startsWith(PREFIX) && base.length > PREFIX.length;
}

/** 'base/5/INCREMENTAL.16384.1' -> 'base/5/16384.1'. */
export function incrementalTarget(rel: string): string {
  if (!isIncrementalName(rel)) throw new RangeError(`not an INCREMENTAL file name: ${rel}`);
  const dir = path.posix.dirname(rel);
  const name = path.posix.basename(rel).slice(PREFIX.length);
  return dir === '.' ? name : `${dir}/${name}`;
}

/** 'base/5/16384.1' -> 'base/5/INCREMENTAL.16384.1'. */
export function incrementalName(rel: string): string {
  const dir = path.posix.dirname(rel);
  const name = PREFIX + path.posix.basename(rel);
  return dir === '.' ? name : `${dir}/${name}`;
}

/** Bytes before the first page: the fixed fields and block numbers, padded to BLCKSZ when there are pages. */
export function incrementalHeaderLength(blockCount: number): number {
  const raw = FIXED_HEADER + 4 * blockCount;
  return blockCount > 0 ? Math.ceil(raw / BLCKSZ) * BLCKSZ : raw;
}

/**
 * Reads the header of an INCREMENTAL file from `src` and leaves the source
 * positioned at the first page. `where` names the file in error messages
 * ("base/5/INCREMENTAL.16384 of backup 20250101-000000F").
 */
export async function readIncremental(src: AsyncIterable<Buffer>, where: string): Promise<IncrementalReader> {
  const reader = new ExactReader(src);
  try {
    const header = await readHeader(reader, where);
    return { header, pages: pagesOf(reader, header, where), close: () => reader.close() };
  } catch (err) {
    await reader.close();
    throw err;
  }
}

async function readHeader(reader: ExactReader, where: string): Promise<IncrementalHeader> {
  const fixed = await reader.read(FIXED_HEADER);
  if (fixed.length < FIXED_HEADER) throw short(where, `${fixed.length} bytes, less than the ${FIXED_HEADER}-byte header`);
  const magic = fixed.readUInt32LE(0);
  if (magic !== INCREMENTAL_MAGIC) {
    const swapped = fixed.readUInt32BE(0) === INCREMENTAL_MAGIC;
    throw corrupt(`${where} has magic number 0x${hex(magic)}, not 0x${hex(INCREMENTAL_MAGIC)}`, swapped ? 'It was written by a big-endian server, which pgmaestro does not support.' : undefined);
  }
  const count = fixed.readUInt32LE(4);
  const truncationBlockLength = fixed.readUInt32LE(8);
  if (count > MAX_SEGMENT_BLOCKS || truncationBlockLength > MAX_SEGMENT_BLOCKS) {
    throw corrupt(`${where} claims ${count} blocks and a truncation length of ${truncationBlockLength} blocks, more than a segment can hold`);
  }
  const numbers = await reader.read(4 * count);
  if (numbers.length < 4 * count) throw short(where, `its header lists ${count} blocks but ends after ${numbers.length / 4}`);
  const blocks: number[] = new Array<number>(count);
  for (let i = 0; i < count; i++) {
    blocks[i] = numbers.readUInt32LE(4 * i);
    if (i > 0 && blocks[i] <= blocks[i - 1]) throw corrupt(`${where} lists block ${blocks[i]} after block ${blocks[i - 1]}; block numbers must be ascending`);
  }
  const padding = incrementalHeaderLength(count) - FIXED_HEADER - 4 * count;
  if ((await reader.skip(padding)) < padding) throw short(where, 'it ends inside the header padding');
  return { truncationBlockLength, blocks };
}

async function* pagesOf(reader: ExactReader, header: IncrementalHeader, where: string): AsyncGenerator<IncrementalPage> {
  try {
    for (const [i, block] of header.blocks.entries()) {
      const data = await reader.read(BLCKSZ);
      if (data.length < BLCKSZ) throw short(where, `it ends in page ${i + 1} of ${header.blocks.length} (block ${block})`);
      yield { block, data };
    }
    if (!(await reader.atEnd())) throw corrupt(`${where} has bytes after its last page`);
  } finally {
    await reader.close();
  }
}

/** An INCREMENTAL file's bytes, as the server writes them (tests, fixtures). Pages must be BLCKSZ long, blocks ascending. */
export function encodeIncrementalFile(file: { truncationBlockLength: number; pages: readonly IncrementalPage[] }): Buffer {
  const count = file.pages.length;
  const head = Buffer.alloc(incrementalHeaderLength(count));
  head.writeUInt32LE(INCREMENTAL_MAGIC, 0);
  head.writeUInt32LE(count, 4);
  head.writeUInt32LE(file.truncationBlockLength, 8);
  file.pages.forEach((p, i) => {
    if (p.data.length !== BLCKSZ) throw new RangeError(`page for block ${p.block} is ${p.data.length} bytes, not ${BLCKSZ}`);
    head.writeUInt32LE(p.block, FIXED_HEADER + 4 * i);
  });
  return Buffer.concat([head, ...file.pages.map((p) => p.data)]);
}

/**
 * Reads exact byte counts from a stream of arbitrarily split chunks, holding
 * only what the current read needs. Returned buffers may share memory with
 * the source's chunks.
 */
export class ExactReader {
  private readonly it: AsyncIterator<Buffer>;
  private readonly pending: Buffer[] = [];
  private pendingBytes = 0;
  private ended = false;

  constructor(src: AsyncIterable<Buffer>) {
    this.it = src[Symbol.asyncIterator]();
  }

  /** Exactly `n` bytes, or fewer only when the stream ends first (then all that was left). */
  async read(n: number): Promise<Buffer> {
    await this.fill(n);
    const want = Math.min(n, this.pendingBytes);
    const first = this.pending[0];
    if (first !== undefined && first.length >= want) return this.take(want);
    const parts: Buffer[] = [];
    for (let left = want; left > 0; ) {
      const part = this.take(Math.min(left, this.pending[0].length));
      parts.push(part);
      left -= part.length;
    }
    return Buffer.concat(parts, want);
  }

  /** Discards up to `n` bytes without holding them; returns how many were there. */
  async skip(n: number): Promise<number> {
    let skipped = 0;
    while (skipped < n) {
      await this.fill(1);
      if (this.pendingBytes === 0) break;
      skipped += this.take(Math.min(n - skipped, this.pending[0].length)).length;
    }
    return skipped;
  }

  async atEnd(): Promise<boolean> {
    await this.fill(1);
    return this.pendingBytes === 0;
  }

  async close(): Promise<void> {
    this.pending.length = 0;
    this.pendingBytes = 0;
    if (this.ended) return;
    this.ended = true;
    await this.it.return?.();
  }

  private async fill(n: number): Promise<void> {
    while (this.pendingBytes < n && !this.ended) {
      const r = await this.it.next();
      if (r.done) {
        this.ended = true;
        break;
      }
      if (r.value.length === 0) continue;
      this.pending.push(r.value);
      this.pendingBytes += r.value.length;
    }
  }

  /** `n` bytes from the first pending chunk (n <= its length). */
  private take(n: number): Buffer {
    const first = this.pending[0];
    const out = first.subarray(0, n);
    if (n === first.length) this.pending.shift();
    else this.pending[0] = first.subarray(n);
    this.pendingBytes -= n;
    return out;
  }
}

function hex(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function corrupt(message: string, why?: string): PgmError {
  return new PgmError('backup.corrupt', `${message}.`, {
    hint: `${why ? `${why} ` : ''}The backup is damaged or was not written by PostgreSQL 17 or later; verify the repository and take a new full backup.`,
  });
}

function short(where: string, what: string): PgmError {
  return corrupt(`${where} is truncated: ${what}`);
}
