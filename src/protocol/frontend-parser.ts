import { FrameError, Framer } from './framer.js';
import type { FrontendMessage, StartupPacket } from './frontend-messages.js';

/**
 * Client → server messages, parsed as a server (or a router) reads them:
 * first the untyped startup packets (`readStartupPacket`), then typed
 * messages (`FrontendParser`). Pure: no I/O, no policy. A malformed or
 * oversized message throws a FrontendProtocolError carrying the SQLSTATE a
 * server would answer with.
 */

export class FrontendProtocolError extends Error {
  constructor(
    message: string,
    readonly sqlstate = '08P01',
  ) {
    super(message);
  }
}

export const SSL_REQUEST = 80877103;
export const GSSENC_REQUEST = 80877104;
export const CANCEL_REQUEST = 80877102;
/** PostgreSQL refuses larger startup packets (MAX_STARTUP_PACKET_LENGTH). */
export const MAX_STARTUP_PACKET = 10_000;

/**
 * The startup packet at the start of `buf`, and its length; null when `buf`
 * does not hold all of it yet.
 */
export function readStartupPacket(buf: Buffer): { packet: StartupPacket; length: number } | null {
  if (buf.length < 4) return null;
  const length = buf.readUInt32BE(0);
  if (length < 8 || length > MAX_STARTUP_PACKET) throw new FrontendProtocolError(`invalid length of startup packet (${length})`);
  if (buf.length < length) return null;
  const code = buf.readUInt32BE(4);
  const body = buf.subarray(8, length);
  if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
    if (length !== 8) throw new FrontendProtocolError(`invalid length of ${code === SSL_REQUEST ? 'SSL' : 'GSSENC'} request (${length})`);
    return { packet: { kind: code === SSL_REQUEST ? 'sslRequest' : 'gssEncRequest' }, length };
  }
  if (code === CANCEL_REQUEST) {
    // 3.0 keys are 4 bytes; 3.2 allows up to 256.
    if (length < 16 || length > 8 + 4 + 256) throw new FrontendProtocolError(`invalid length of cancel request (${length})`);
    return { packet: { kind: 'cancelRequest', processId: body.readUInt32BE(0), secretKey: Buffer.from(body.subarray(4)) }, length };
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== 3) return { packet: { kind: 'unsupported', code }, length };
  const params = new Map<string, string>();
  let offset = 0;
  for (;;) {
    const end = body.indexOf(0, offset);
    if (end === -1) throw new FrontendProtocolError('invalid startup packet layout: expected terminator as last byte');
    if (end === offset) break; // the terminating empty name
    const name = body.toString('utf8', offset, end);
    const vend = body.indexOf(0, end + 1);
    if (vend === -1) throw new FrontendProtocolError(`invalid startup packet layout: no value for ${JSON.stringify(name)}`);
    params.set(name, body.toString('utf8', end + 1, vend));
    offset = vend + 1;
  }
  if (offset !== body.length - 1) throw new FrontendProtocolError('invalid startup packet layout: expected terminator as last byte');
  return { packet: { kind: 'startup', major, minor, params }, length };
}

/** Message types whose body is small in any sane client; the rest (queries, binds, COPY data) may be large. */
const SMALL = new Set([...'SHXcCDEp'].map((c) => c.charCodeAt(0)));
const SMALL_LIMIT = 10_000;
/** A router buffers a whole message before passing it on: bound what a client can make it hold. */
export const LARGE_LIMIT = 256 * 1024 * 1024;

export class FrontendParser {
  private readonly framer: Framer;

  constructor(largeLimit = LARGE_LIMIT) {
    this.framer = new Framer((code) => (SMALL.has(code) ? SMALL_LIMIT : largeLimit));
  }

  /** Every message completed by `chunk`, in order. */
  push(chunk: Buffer): FrontendMessage[] {
    let frames;
    try {
      frames = this.framer.push(chunk);
    } catch (err) {
      if (err instanceof FrameError) throw new FrontendProtocolError(`invalid message length ${err.length} for message type '${String.fromCharCode(err.code)}'`);
      throw err;
    }
    return frames.map((f) => decodeFrontend(f.code, f.bytes));
  }

  get buffered(): number {
    return this.framer.buffered;
  }
}

/** Decodes one whole message (type byte first). */
export function decodeFrontend(code: number, bytes: Buffer): FrontendMessage {
  const r = new BodyReader(bytes, code);
  switch (String.fromCharCode(code)) {
    case 'Q': {
      const sql = r.cstring();
      r.end();
      return { kind: 'query', sql, bytes };
    }
    case 'P': {
      const name = r.cstring();
      const sql = r.cstring();
      const start = r.offset;
      const n = r.int16();
      for (let i = 0; i < n; i++) r.int32();
      r.end();
      return { kind: 'parse', name, sql, paramTypes: bytes.subarray(start, r.offset), bytes };
    }
    case 'B': {
      const portal = r.cstring();
      const statement = r.cstring();
      return { kind: 'bind', portal, statement, rest: bytes.subarray(r.offset), bytes };
    }
    case 'D':
    case 'C': {
      const t = String.fromCharCode(r.byte());
      if (t !== 'S' && t !== 'P') throw r.malformed(`invalid ${code === 0x44 ? 'DESCRIBE' : 'CLOSE'} message subtype ${JSON.stringify(t)}`);
      const name = r.cstring();
      r.end();
      return { kind: code === 0x44 ? 'describe' : 'close', target: t, name, bytes };
    }
    case 'E': {
      const portal = r.cstring();
      const maxRows = r.int32();
      r.end();
      return { kind: 'execute', portal, maxRows, bytes };
    }
    case 'S':
      return { kind: 'sync', bytes };
    case 'H':
      return { kind: 'flush', bytes };
    case 'F':
      return { kind: 'functionCall', bytes };
    case 'd':
      return { kind: 'copyData', bytes };
    case 'c':
      return { kind: 'copyDone', bytes };
    case 'f':
      return { kind: 'copyFail', bytes };
    case 'X':
      return { kind: 'terminate', bytes };
    case 'p':
      return { kind: 'password', body: bytes.subarray(5), bytes };
    default:
      return { kind: 'unknown', code: String.fromCharCode(code), bytes };
  }
}

/** A SASLInitialResponse body: the mechanism and the client-first-message (null: none sent). */
export function decodeSaslInitial(body: Buffer): { mechanism: string; data: Buffer | null } {
  const r = new BodyReader(Buffer.concat([Buffer.from('p\0\0\0\0'), body]), 0x70);
  const mechanism = r.cstring();
  const len = r.int32();
  if (len === -1) return { mechanism, data: null };
  const data = r.bytes(len);
  r.end();
  return { mechanism, data };
}

/** Bounds-checked reader over one message (type byte and length skipped). */
class BodyReader {
  offset = 5;
  constructor(
    private readonly buf: Buffer,
    private readonly code: number,
  ) {}

  byte(): number {
    this.need(1);
    return this.buf[this.offset++];
  }
  int16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.offset);
    this.offset += 2;
    return v;
  }
  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  bytes(n: number): Buffer {
    if (n < 0) throw this.malformed(`negative length ${n}`);
    this.need(n);
    const v = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }
  cstring(): string {
    const end = this.buf.indexOf(0, this.offset);
    if (end === -1) throw this.malformed('invalid string in message');
    const v = this.buf.toString('utf8', this.offset, end);
    this.offset = end + 1;
    return v;
  }
  end(): void {
    if (this.offset !== this.buf.length) throw this.malformed('invalid message format');
  }
  malformed(what: string): FrontendProtocolError {
    return new FrontendProtocolError(`${what} (message type '${String.fromCharCode(this.code)}')`);
  }
  private need(n: number): void {
    if (this.offset + n > this.buf.length) throw this.malformed('insufficient data left in message');
  }
}
