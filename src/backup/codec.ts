import zlib from 'node:zlib';
import { createRequire } from 'node:module';
import { PgmError } from '../errors.js';

/**
 * How stored files are compressed. Each file is cut into blocks of BLOCK
 * raw bytes, and each block is compressed on its own — by any worker thread,
 * so one large file uses every `backup.process_max` worker — into a frame of
 * the standard format:
 *
 *   gzip  a gzip member per block (a multi-member file, as `gzip -d` reads it)
 *   lz4   an LZ4 frame per block, each preceded by a skippable frame
 *   zstd  a zstd frame per block, each preceded by a skippable frame
 *
 * The skippable frame (magic 0x184D2A5E, 4 bytes of payload: the length of
 * the next frame, little-endian) is ignored by `lz4 -d` and `zstd -d`, which
 * read the file as is, and lets pgmaestro decompress it frame by frame with
 * bounded memory.
 *
 * zstd: Node's own zlib where it has it (22.15+), else @mongodb-js/zstd 1.x
 * (N-API binaries shipped as npm packages, so it installs from the registry
 * alone). lz4: lz4-napi (same kind of packaging).
 */
export type CompressionKind = 'none' | 'gzip' | 'lz4' | 'zstd';

export interface Codec {
  readonly kind: CompressionKind;
  readonly level: number;
}

export const BLOCK = 1 << 20;
export const SKIPPABLE_MAGIC = 0x184d2a5e;
export const SKIPPABLE_LENGTH = 12;

const DEFAULT_LEVEL: Record<CompressionKind, number> = { none: 0, gzip: 6, lz4: 1, zstd: 3 };
const LEVELS: Record<CompressionKind, [number, number]> = { none: [0, 0], gzip: [1, 9], lz4: [1, 1], zstd: [1, 19] };

export const SUFFIX: Record<CompressionKind, string> = { none: '', gzip: '.gz', lz4: '.lz4', zstd: '.zst' };

/** 'zstd:3' -> { kind: 'zstd', level: 3 }. Throws a usage error naming the allowed forms. */
export function parseCompression(text: string): Codec {
  const m = /^(none|gzip|lz4|zstd)(?::(\d+))?$/.exec(text);
  const kind = m?.[1] as CompressionKind | undefined;
  if (!m || !kind) throw new PgmError('config.invalid', `backup.compression: '${text}' is not none, gzip, lz4 or zstd (with an optional level, e.g. zstd:3).`, { hint: 'use none, gzip[:1-9], lz4 or zstd[:1-19].' });
  const level = m[2] === undefined ? DEFAULT_LEVEL[kind] : Number(m[2]);
  const [lo, hi] = LEVELS[kind];
  if (level < lo || level > hi) throw new PgmError('config.invalid', `backup.compression: level ${level} is out of range for ${kind} (${lo}-${hi}).`, { hint: `use ${kind}:${DEFAULT_LEVEL[kind]}.` });
  return { kind, level };
}

/** The compression of a stored file, from its name. */
export function kindOfStored(name: string): CompressionKind {
  return name.endsWith('.gz') ? 'gzip' : name.endsWith('.lz4') ? 'lz4' : name.endsWith('.zst') ? 'zstd' : 'none';
}

const require = createRequire(import.meta.url);
type ZstdLib = { compress(b: Buffer, level?: number): Promise<Buffer>; decompress(b: Buffer): Promise<Buffer> };
type Lz4Lib = { compressFrameSync(b: Buffer): Buffer; decompressFrameSync(b: Buffer): Buffer };
let zstdLib: ZstdLib | null = null;
let lz4Lib: Lz4Lib | null = null;
const nodeZstd = zlib as unknown as { zstdCompressSync?: (b: Buffer, o: object) => Buffer; zstdDecompressSync?: (b: Buffer) => Buffer; constants: Record<string, number> };

function lz4(): Lz4Lib {
  return (lz4Lib ??= require('lz4-napi') as Lz4Lib);
}
function zstd(): ZstdLib {
  return (zstdLib ??= require('@mongodb-js/zstd') as ZstdLib);
}

/** One block compressed into its stored form (skippable header included for lz4/zstd). */
export async function compressBlock(codec: Codec, raw: Buffer): Promise<Buffer> {
  switch (codec.kind) {
    case 'none':
      return raw;
    case 'gzip':
      return zlib.gzipSync(raw, { level: codec.level });
    case 'lz4':
      return framed(lz4().compressFrameSync(raw));
    case 'zstd':
      return framed(
        nodeZstd.zstdCompressSync
          ? nodeZstd.zstdCompressSync(raw, { params: { [nodeZstd.constants.ZSTD_c_compressionLevel]: codec.level } })
          : await zstd().compress(raw, codec.level),
      );
  }
}

function framed(frame: Buffer): Buffer {
  const out = Buffer.allocUnsafe(SKIPPABLE_LENGTH + frame.length);
  out.writeUInt32LE(SKIPPABLE_MAGIC, 0);
  out.writeUInt32LE(4, 4);
  out.writeUInt32LE(frame.length, 8);
  frame.copy(out, SKIPPABLE_LENGTH);
  return out;
}

export async function decompressFrame(kind: 'lz4' | 'zstd', frame: Buffer): Promise<Buffer<ArrayBufferLike>> {
  if (kind === 'lz4') return lz4().decompressFrameSync(frame);
  return nodeZstd.zstdDecompressSync ? nodeZstd.zstdDecompressSync(frame) : zstd().decompress(frame);
}

/**
 * The original bytes of a stored file from its stored bytes. `where` names
 * the file when the stored bytes are not what the format says.
 */
export interface FrameDecoder {
  decompress(kind: 'lz4' | 'zstd', frame: Buffer): Promise<Buffer>;
}

/** lz4 / zstd frames decompressed at the same time at most, with a decoder (worker threads). */
const FRAMES_IN_FLIGHT = 4;

export async function* decodeStored(kind: CompressionKind, stored: AsyncIterable<Buffer>, where: string, decoder?: FrameDecoder): AsyncGenerator<Buffer> {
  if (kind === 'none') return yield* stored;
  if (kind === 'gzip') {
    const gunzip = zlib.createGunzip({ chunkSize: 1 << 18 });
    const feed = (async () => {
      try {
        for await (const c of stored) if (!gunzip.write(c)) await new Promise((r) => gunzip.once('drain', r));
        gunzip.end();
      } catch (err) {
        gunzip.destroy(err as Error);
      }
    })();
    try {
      for await (const c of gunzip) yield c as Buffer;
    } catch (err) {
      if (err instanceof PgmError) throw err;
      throw damaged(where, (err as Error).message, err);
    }
    return void (await feed);
  }
  const inFlight: Promise<Buffer>[] = [];
  const next = async () => {
    try {
      return await inFlight.shift()!;
    } catch (err) {
      throw damaged(where, (err as Error).message, err);
    }
  };
  let buf: Buffer = Buffer.alloc(0);
  for await (const c of stored) {
    buf = buf.length === 0 ? c : Buffer.concat([buf, c]);
    while (buf.length >= SKIPPABLE_LENGTH) {
      if (buf.readUInt32LE(0) !== SKIPPABLE_MAGIC || buf.readUInt32LE(4) !== 4) throw damaged(where, 'a frame header is missing');
      const len = buf.readUInt32LE(8);
      if (buf.length < SKIPPABLE_LENGTH + len) break;
      const frame = buf.subarray(SKIPPABLE_LENGTH, SKIPPABLE_LENGTH + len);
      buf = buf.subarray(SKIPPABLE_LENGTH + len);
      if (!decoder) {
        try {
          yield await decompressFrame(kind, frame);
        } catch (err) {
          throw damaged(where, (err as Error).message, err);
        }
        continue;
      }
      const p = decoder.decompress(kind, Buffer.from(frame));
      p.catch(() => undefined);
      inFlight.push(p);
      if (inFlight.length >= FRAMES_IN_FLIGHT) yield await next();
    }
  }
  if (buf.length > 0) throw damaged(where, 'it ends inside a frame');
  while (inFlight.length > 0) yield await next();
}

function damaged(where: string, why: string, cause?: unknown): PgmError {
  return new PgmError('backup.corrupt', `${where} cannot be decompressed: ${why.replace(/\.$/, '')}.`, { hint: 'run pgmaestro backup verify; restore from another backup.', cause, data: { file: where } });
}

// CRC-32C combination (crc of A+B from crc(A), crc(B), len(B)), as zlib's crc32_combine does it, for the Castagnoli polynomial.
const POLY = 0x82f63b78;
function multModP(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}
const X2N: number[] = [];
{
  let p = 0x40000000; // x^1
  X2N.push(p);
  for (let n = 1; n < 32; n++) X2N.push((p = multModP(p, p)));
}
function x2nModP(n: number, k: number): number {
  let p = 0x80000000;
  while (n) {
    if (n & 1) p = multModP(X2N[k & 31], p);
    n = Math.floor(n / 2);
    k++;
  }
  return p;
}
export function crc32cCombine(crc1: number, crc2: number, len2: number): number {
  return (multModP(x2nModP(len2, 3), crc1) ^ crc2) >>> 0;
}
