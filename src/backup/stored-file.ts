import crypto from 'node:crypto';
import { crc32c } from '@node-rs/crc32';
import { PgmError } from '../errors.js';
import { BLOCK, SUFFIX, crc32cCombine, decodeStored, kindOfStored, type Codec } from './codec.js';
import type { CodecPool } from './codec-pool.js';
import type { RawWriter, Storage } from './storage.js';

/** What a completed stored file is. */
export interface StoredResult {
  /** Relative name as stored (with the compression's suffix). */
  readonly stored: string;
  readonly size: number;
  readonly storedSize: number;
  /** SHA-256 of the stored bytes. */
  readonly sha256: string;
  /** CRC-32C of the original bytes (what PostgreSQL's backup_manifest records), as 8 hex digits in PostgreSQL's byte order. */
  readonly crc32c: string;
}

export interface StoredWriter {
  write(chunk: Buffer): Promise<void>;
  /** Completes the file (durable unless opened with deferSync); returns what was stored. */
  end(): Promise<StoredResult>;
  abort(): Promise<void>;
}

/** Blocks of one file waiting for their worker at most, so both workers can chew on one large file. */
const PENDING_PER_FILE = 6;
let nextFid = 1;

/**
 * A file stored compressed and checksummed: raw bytes in, cut into blocks;
 * blocks compressed by the pool's workers (any of them, in parallel) and
 * written in order; the SHA-256 of the stored bytes and the CRC-32C of the
 * original ones computed on the way, in the workers for uncompressed files.
 */
export async function storedWriter(storage: Storage, pool: CodecPool, rel: string, codec: Codec, opts: { deferSync?: boolean } = {}): Promise<StoredWriter> {
  const stored = rel + SUFFIX[codec.kind];
  const out: RawWriter = await storage.writer(stored, opts);
  const fid = nextFid++;
  const sha = crypto.createHash('sha256');
  const pending: Promise<{ frame: Buffer; crc: number; rawLen: number } | null>[] = [];
  // the block being filled, as the received pieces (copied once, into an exactly sized block, when it is full)
  let parts: Buffer[] = [];
  let fill = 0;
  let submitted = 0;
  let blocks = 0;
  let size = 0;
  let storedSize = 0;
  let crc = 0;
  let failed: unknown = null;

  const drainOne = async () => {
    const r = await pending.shift()!;
    if (!r) return;
    sha.update(r.frame);
    storedSize += r.frame.length;
    crc = blocks++ === 0 ? r.crc : crc32cCombine(crc, r.crc, r.rawLen);
    await out.write(r.frame);
  };
  const take = (): Buffer => {
    const b = Buffer.allocUnsafeSlow(fill);
    let at = 0;
    for (const p of parts) at += p.copy(b, at);
    parts = [];
    fill = 0;
    return b;
  };
  const submit = async (raw: Buffer) => {
    submitted++;
    if (codec.kind === 'none') {
      await out.write(raw);
      storedSize += raw.length;
      pending.push(pool.hash(fid, raw, false).then(() => null));
    } else {
      const rawLen = raw.length;
      pending.push(pool.compress(codec, raw).then((r) => ({ ...r, rawLen })));
    }
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
        for (let off = 0; off < chunk.length; ) {
          const n = Math.min(chunk.length - off, BLOCK - fill);
          parts.push(chunk.subarray(off, off + n));
          fill += n;
          off += n;
          if (fill === BLOCK) await submit(take());
        }
      }),
    end: () =>
      guard(async () => {
        // an uncompressed file of one block is checksummed here: a round trip to a worker costs more than the hash
        if (codec.kind === 'none' && submitted === 0) {
          const raw = take();
          await out.write(raw);
          await out.end();
          return { stored, size, storedSize: raw.length, sha256: crypto.createHash('sha256').update(raw).digest('hex'), crc32c: crcHex(crc32c(raw)) };
        }
        // the last block; a compressed file always has at least one frame, so standard tools read an empty one too
        if (fill > 0 || (codec.kind !== 'none' && size === 0)) await submit(take());
        while (pending.length > 0) await drainOne();
        let sha256: string;
        if (codec.kind === 'none') {
          const h = await pool.hash(fid, null, true);
          sha256 = h.sha256!;
          crc = h.crc;
        } else {
          sha256 = sha.digest('hex');
        }
        await out.end();
        return { stored, size, storedSize, sha256, crc32c: crcHex(crc) };
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

/** What a reader checks a stored file against. */
export interface StoredCheck {
  readonly stored: string;
  readonly stored_size: number;
  readonly sha256: string;
}

/**
 * The original bytes of stored file `rel` (its stored name), checked as they
 * are read: the stored bytes against their SHA-256 and size (a mismatch fails
 * the iteration at the end, naming the file, so a caller that wrote what it
 * got must discard it), then decompressed by its suffix.
 */
export function verifiedReader(storage: Storage, rel: string, check: StoredCheck, what: string): AsyncIterable<Buffer> {
  return decodeStored(kindOfStored(rel), checkedBytes(storage, rel, check, what), `${what} is damaged: ${check.stored}`);
}

async function* checkedBytes(storage: Storage, rel: string, check: StoredCheck, what: string): AsyncGenerator<Buffer> {
  const hash = crypto.createHash('sha256');
  let size = 0;
  try {
    for await (const c of storage.reader(rel)) {
      hash.update(c);
      size += c.length;
      yield c;
    }
  } catch (err) {
    if (err instanceof PgmError && err.code !== 'repository.missing') throw err;
    throw corrupt(what, check.stored, `cannot be read (${(err as Error).message.replace(/\.$/, '')})`, err);
  }
  if ((check.stored_size >= 0 && size !== check.stored_size) || hash.digest('hex') !== check.sha256) throw corrupt(what, check.stored, 'does not match its checksum');
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
