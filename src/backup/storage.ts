import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import zlib from 'node:zlib';
import { PgmError } from '../errors.js';
import { fsyncDir } from '../util/fsx.js';
import type { Compression } from './types.js';

/** What a completed stored file is. */
export interface StoredResult {
  /** Relative name as stored (with `.gz` when compressed). */
  readonly stored: string;
  readonly size: number;
  readonly storedSize: number;
  /** SHA-256 of the stored bytes. */
  readonly sha256: string;
}

export interface StoredWriter {
  write(chunk: Buffer): Promise<void>;
  /** Flushes, fsyncs and closes; returns what was stored. */
  end(): Promise<StoredResult>;
  abort(): Promise<void>;
}

/**
 * Where a repository keeps its bytes. Paths are relative to the repository
 * root. `put` and `writer` files become visible only when complete (written
 * under a temporary name, fsynced, renamed). Posix is the only backend today;
 * object storage would be a second implementation of this interface.
 */
export interface Storage {
  readonly root: string;
  exists(rel: string): boolean;
  list(rel: string): string[];
  read(rel: string): Buffer;
  put(rel: string, data: Buffer | string): void;
  /**
   * A streamed file, compressed as asked, checksummed as stored. By default it
   * is fsynced before `end()` resolves; with `deferSync` it is fsynced by the
   * next `syncDeferred()` — for the many files of a backup, whose completion
   * marker is written only after that call.
   */
  writer(rel: string, compression: Compression, opts?: { deferSync?: boolean }): Promise<StoredWriter>;
  /** fsyncs every file written with `deferSync` since the last call, and their directories. */
  syncDeferred(): Promise<void>;
  /** Decompressed content of a stored file. */
  reader(rel: string): NodeJS.ReadableStream;
  /** SHA-256 and size of the stored bytes. */
  checksum(rel: string): Promise<{ sha256: string; size: number }>;
  remove(rel: string): void;
  rename(from: string, to: string): void;
  mkdir(rel: string): void;
}

export class PosixStorage implements Storage {
  constructor(
    readonly root: string,
    private readonly owner: { uid?: number; gid?: number } = {},
  ) {}

  private abs(rel: string): string {
    return path.join(this.root, rel);
  }

  exists(rel: string): boolean {
    return fs.existsSync(this.abs(rel));
  }

  list(rel: string): string[] {
    try {
      return fs.readdirSync(this.abs(rel)).sort();
    } catch {
      return [];
    }
  }

  read(rel: string): Buffer {
    return fs.readFileSync(this.abs(rel));
  }

  mkdir(rel: string): void {
    const abs = this.abs(rel);
    const first = fs.mkdirSync(abs, { recursive: true, mode: 0o750 });
    if (first) for (let d = abs; d.length >= first.length; d = path.dirname(d)) this.chown(d);
  }

  put(rel: string, data: Buffer | string): void {
    const abs = this.abs(rel);
    this.mkdir(path.dirname(rel));
    const tmp = `${abs}.tmp-${process.pid}`;
    try {
      const fd = fs.openSync(tmp, 'w', 0o640);
      try {
        fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      this.chown(tmp);
      fs.renameSync(tmp, abs);
      fsyncDir(path.dirname(abs));
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw storageError(err, abs);
    }
  }

  private deferred: string[] = [];

  async syncDeferred(): Promise<void> {
    const files = this.deferred.splice(0);
    const dirs = [...new Set(files.map((f) => path.dirname(f)))];
    const syncOne = async (p: string) => {
      const fh = await fsp.open(p, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
    };
    for (const group of [files, dirs]) {
      let next = 0;
      await Promise.all(Array.from({ length: Math.min(16, group.length) }, async () => {
        while (next < group.length) await syncOne(group[next++]);
      }));
    }
  }

  /** Directories known to exist, so a backup of thousands of files does not mkdir for each. */
  private made = new Set<string>();

  async writer(rel: string, compression: Compression, opts: { deferSync?: boolean } = {}): Promise<StoredWriter> {
    const deferred = this.deferred;
    const stored = compression === 'gzip' ? `${rel}.gz` : rel;
    const abs = this.abs(stored);
    const dir = path.dirname(stored);
    if (!this.made.has(dir)) {
      this.mkdir(dir);
      this.made.add(dir);
    }
    const tmp = `${abs}.tmp-${process.pid}`;
    // Synchronous writes of one chunk at a time: each is a short kernel copy,
    // much cheaper than a thread-pool round trip per 32 kB chunk.
    let fd: number;
    try {
      fd = fs.openSync(tmp, 'w', 0o640);
    } catch (err) {
      throw storageError(err, abs);
    }
    const hash = crypto.createHash('sha256');
    let size = 0;
    let storedSize = 0;
    const gzip = compression === 'gzip' ? zlib.createGzip({ level: 3 }) : null;
    const out: Buffer[] = [];
    gzip?.on('data', (b: Buffer) => out.push(b));
    const flushOut = (chunks: Buffer[]) => {
      for (const c of chunks) {
        hash.update(c);
        storedSize += c.length;
        for (let off = 0; off < c.length; ) off += fs.writeSync(fd, c, off, c.length - off);
      }
    };
    const owner = this.owner;
    return {
      async write(chunk) {
        size += chunk.length;
        try {
          if (!gzip) return flushOut([chunk]);
          await new Promise<void>((resolve, reject) => gzip.write(chunk, (e) => (e ? reject(e) : resolve())));
          flushOut(out.splice(0));
        } catch (err) {
          throw storageError(err, abs);
        }
      },
      async end() {
        try {
          if (gzip) {
            const ended = new Promise<void>((resolve, reject) => {
              gzip.once('end', resolve);
              gzip.once('error', reject);
            });
            gzip.end();
            await ended;
            flushOut(out.splice(0));
          }
          if (!opts.deferSync) fs.fsyncSync(fd);
          if (owner.uid !== undefined && owner.gid !== undefined) fs.fchownSync(fd, owner.uid, owner.gid);
          fs.closeSync(fd);
          fs.renameSync(tmp, abs);
          if (opts.deferSync) deferred.push(abs);
        } catch (err) {
          fs.rmSync(tmp, { force: true });
          throw storageError(err, abs);
        }
        return { stored: stored, size, storedSize, sha256: hash.digest('hex') };
      },
      async abort() {
        try {
          fs.closeSync(fd);
        } catch {
          // already closed
        }
        fs.rmSync(tmp, { force: true });
      },
    };
  }

  reader(rel: string): NodeJS.ReadableStream {
    const src = fs.createReadStream(this.abs(rel), { highWaterMark: 1 << 20 });
    return rel.endsWith('.gz') ? src.pipe(zlib.createGunzip()) : src;
  }

  async checksum(rel: string): Promise<{ sha256: string; size: number }> {
    const hash = crypto.createHash('sha256');
    let size = 0;
    for await (const chunk of fs.createReadStream(this.abs(rel), { highWaterMark: 1 << 20 })) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    return { sha256: hash.digest('hex'), size };
  }

  remove(rel: string): void {
    fs.rmSync(this.abs(rel), { recursive: true, force: true });
  }

  rename(from: string, to: string): void {
    fs.renameSync(this.abs(from), this.abs(to));
    fsyncDir(path.dirname(this.abs(to)));
  }

  private chown(abs: string): void {
    if (this.owner.uid !== undefined && this.owner.gid !== undefined) fs.chownSync(abs, this.owner.uid, this.owner.gid);
  }
}

/** Why a file-system call failed, in words a DBA acts on. */
export function fsReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOSPC' ? 'the disk is full' : code === 'EROFS' ? 'the file system is read-only' : code === 'EACCES' || code === 'EPERM' ? 'permission is denied' : (err as Error).message;
}

function storageError(err: unknown, abs: string): PgmError {
  const why = fsReason(err);
  return new PgmError('repository.write_failed', `cannot write ${abs} in the backup repository: ${why}.`, {
    hint: 'free space or fix the repository (backup.repository) and run the command again; nothing incomplete is kept.',
    cause: err,
  });
}
