/**
 * Splits a stream of typed protocol messages (a type byte, an Int32 length
 * that counts itself, the body) into whole messages without decoding them:
 * what a router needs to pass messages on in bulk while looking only at
 * their type. Messages may be split across chunks at any byte. Pure: no I/O.
 *
 * A frame's `bytes` is the whole message (type byte included): a view into
 * the input chunk when the message lies in one chunk, else a copy of its own.
 */
export interface Frame {
  /** The type byte, e.g. 0x5a for 'Z'. */
  readonly code: number;
  readonly bytes: Buffer;
}

export class FrameError extends Error {
  constructor(
    readonly code: number,
    readonly length: number,
  ) {
    super(`message of impossible length ${length} (type byte 0x${code.toString(16)})`);
  }
}

export const HEADER = 5;

export class Framer {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  /** `maxLength(code)`: the largest length field accepted for that type; larger throws FrameError. */
  constructor(private readonly maxLength: (code: number) => number) {}

  /** Every message completed by `chunk`, in order. */
  push(chunk: Buffer): Frame[] {
    const out: Frame[] = [];
    if (this.pendingBytes > 0) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.pendingBytes < HEADER) return out;
      const head = this.peekHeader();
      const total = 1 + this.checkedLength(head.code, head.length);
      if (this.pendingBytes < total) return out;
      const joined = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
      out.push({ code: joined[0], bytes: joined.subarray(0, total) });
      chunk = joined.subarray(total);
    }
    let offset = 0;
    while (chunk.length - offset >= HEADER) {
      const code = chunk[offset];
      const end = offset + 1 + this.checkedLength(code, chunk.readUInt32BE(offset + 1));
      if (end > chunk.length) break;
      out.push({ code, bytes: chunk.subarray(offset, end) });
      offset = end;
    }
    if (offset < chunk.length) {
      // Keep a copy: the caller may reuse the chunk's memory once push returns.
      const rest = Buffer.from(chunk.subarray(offset));
      this.pending = [rest];
      this.pendingBytes = rest.length;
      if (rest.length >= HEADER) this.checkedLength(rest[0], rest.readUInt32BE(1));
    }
    return out;
  }

  /** Bytes received that do not yet form a whole message. */
  get buffered(): number {
    return this.pendingBytes;
  }

  private peekHeader(): { code: number; length: number } {
    const head = Buffer.alloc(HEADER);
    let filled = 0;
    for (const p of this.pending) {
      filled += p.copy(head, filled, 0, Math.min(p.length, HEADER - filled));
      if (filled === HEADER) break;
    }
    return { code: head[0], length: head.readUInt32BE(1) };
  }

  private checkedLength(code: number, length: number): number {
    if (length < 4 || length > this.maxLength(code)) throw new FrameError(code, length);
    return length;
  }
}
