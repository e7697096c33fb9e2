import fs from 'node:fs';
import path from 'node:path';

/**
 * The segment being received, on the daemon's local disk (state/wal-spool/):
 * WAL is appended as it arrives, read back for each flush of the segment in
 * progress and, once complete, streamed into the repository. Memory stays
 * bounded whatever `wal_segment_size` is. A spool file is only a buffer:
 * what counts is what the repository holds, so a leftover is simply replaced.
 */
export class SpoolSegment {
  private written = 0;

  private constructor(
    readonly name: string,
    private readonly file: string,
    private readonly fd: number,
  ) {}

  static create(dir: string, name: string): SpoolSegment {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = path.join(dir, name);
    return new SpoolSegment(name, file, fs.openSync(file, 'w+', 0o600));
  }

  get size(): number {
    return this.written;
  }

  write(chunk: Buffer): void {
    for (let off = 0; off < chunk.length; ) off += fs.writeSync(this.fd, chunk, off, chunk.length - off, this.written + off);
    this.written += chunk.length;
  }

  /** Bytes [from, to) of what was written. */
  read(from: number, to: number): Buffer {
    const out = Buffer.allocUnsafe(to - from);
    for (let off = 0; off < out.length; ) {
      const n = fs.readSync(this.fd, out, off, out.length - off, from + off);
      if (n === 0) throw new Error(`spool file ${this.file} is shorter than ${to} bytes`);
      off += n;
    }
    return out;
  }

  /** Everything written, in chunks of 1 MiB. */
  *chunks(): Generator<Buffer> {
    for (let at = 0; at < this.written; at += 1 << 20) yield this.read(at, Math.min(this.written, at + (1 << 20)));
  }

  remove(): void {
    try {
      fs.closeSync(this.fd);
    } catch {
      // closed already
    }
    fs.rmSync(this.file, { force: true });
  }
}
