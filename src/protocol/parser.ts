import { PgmError } from '../errors.js';
import type { BackendMessage, FieldDescription, NoticeFields } from './messages.js';

/**
 * Incremental backend-message parser: feed it socket chunks in order, get back
 * every message completed by that chunk. Messages may be split across chunks at
 * any byte, and one chunk may hold many messages. Pure: no I/O, no policy.
 *
 * Byte payloads in the returned messages are views into the input chunks (no
 * copy); the parser never writes into them. Only a message split across
 * chunks that are not adjacent in memory is copied, into a buffer of its own.
 */
export class Parser {
  /** The start of an incomplete message: views into earlier chunks, in order. */
  private fragments: Buffer[] = [];
  private buffered = 0;
  /** Bytes needed before the next message can be decoded (header, then whole message). */
  private needed = HEADER;

  parse(chunk: Buffer): BackendMessage[] {
    if (chunk.length === 0) return [];
    const out: BackendMessage[] = [];
    let offset = 0;

    // A chunk that continues the held fragment in the same memory (socket
    // reads landing back to back in one buffer) joins it without a copy.
    if (this.fragments.length === 1 && adjacent(this.fragments[0], chunk)) {
      const first = this.fragments[0];
      chunk = Buffer.from(chunk.buffer, first.byteOffset, first.length + chunk.length);
      this.fragments = [];
      this.buffered = 0;
      this.needed = HEADER;
    }

    // Complete a message begun in earlier chunks. Only that message is
    // copied; the rest of the chunk is decoded in place.
    if (this.buffered > 0) {
      if (this.buffered + chunk.length < this.needed) {
        this.keep(chunk);
        return out;
      }
      if (this.needed === HEADER) {
        const head = this.join(chunk, HEADER);
        this.needed = 1 + checkLength(head, 0);
        if (this.buffered + chunk.length < this.needed) {
          this.keep(chunk);
          return out;
        }
      }
      offset = this.needed - this.buffered;
      const whole = this.join(chunk, this.needed);
      out.push(decode(String.fromCharCode(whole[0]), whole.subarray(HEADER)));
      this.fragments = [];
      this.buffered = 0;
      this.needed = HEADER;
    }

    while (chunk.length - offset >= HEADER) {
      const end = offset + 1 + checkLength(chunk, offset);
      if (end > chunk.length) break;
      out.push(decode(String.fromCharCode(chunk[offset]), chunk.subarray(offset + HEADER, end)));
      offset = end;
    }
    if (offset < chunk.length) {
      const rest = chunk.subarray(offset);
      this.keep(rest);
      if (rest.length >= HEADER) this.needed = 1 + checkLength(rest, 0);
    }
    return out;
  }

  /** Bytes received but not yet part of a whole message. */
  get pendingBytes(): number {
    return this.buffered;
  }

  private keep(part: Buffer): void {
    this.fragments.push(part);
    this.buffered += part.length;
  }

  /** The first `n` bytes of the fragments followed by `chunk`, copied into one buffer. */
  private join(chunk: Buffer, n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    for (const f of this.fragments) filled += f.copy(out, filled, 0, Math.min(f.length, n - filled));
    chunk.copy(out, filled, 0, n - filled);
    return out;
  }
}

function adjacent(a: Buffer, b: Buffer): boolean {
  return a.buffer === b.buffer && a.byteOffset + a.length === b.byteOffset;
}

/** The length field of the message at `offset`, checked for sanity. */
function checkLength(buf: Buffer, offset: number): number {
  const length = buf.readUInt32BE(offset + 1);
  if (length < 4 || length > MAX_MESSAGE) {
    throw new PgmError('protocol.error', `the server sent a message of impossible length ${length} (type byte 0x${buf[offset].toString(16)}).`, {
      hint: 'Check that the address points at a PostgreSQL server and not at another service.',
    });
  }
  return length;
}

const HEADER = 5;
/** Larger than any real message (a 1 GiB field plus overhead); catches non-PostgreSQL peers. */
const MAX_MESSAGE = 0x40000000 + 0x100000;

/** Decodes one message body (the bytes after the type byte and length). */
export function decode(code: string, body: Buffer): BackendMessage {
  if (code === 'd') return { kind: 'copyData', data: body }; // the bulk of a COPY or replication stream: first, and no reader
  const r = new Reader(body, code);
  switch (code) {
    case 'R':
      return decodeAuthentication(r);
    case 'S':
      return { kind: 'parameterStatus', name: r.cstring(), value: r.cstring() };
    case 'K':
      return { kind: 'backendKeyData', processId: r.int32(), secretKey: r.rest() };
    case 'Z': {
      const status = String.fromCharCode(r.byte());
      if (status !== 'I' && status !== 'T' && status !== 'E') throw r.malformed(`transaction status ${JSON.stringify(status)}`);
      return { kind: 'readyForQuery', status };
    }
    case 'T': {
      const count = r.int16();
      const fields: FieldDescription[] = [];
      for (let i = 0; i < count; i++) {
        fields.push({
          name: r.cstring(),
          tableOid: r.uint32(),
          columnAttr: r.int16(),
          typeOid: r.uint32(),
          typeSize: r.int16(),
          typeModifier: r.int32(),
          format: r.int16(),
        });
      }
      return { kind: 'rowDescription', fields };
    }
    case 'D': {
      const count = r.int16();
      const values: (Buffer | null)[] = [];
      for (let i = 0; i < count; i++) {
        const len = r.int32();
        values.push(len === -1 ? null : r.bytes(len));
      }
      return { kind: 'dataRow', values };
    }
    case 'C':
      return { kind: 'commandComplete', tag: r.cstring() };
    case 'I':
      return { kind: 'emptyQueryResponse' };
    case 'E':
      return { kind: 'errorResponse', fields: decodeNoticeFields(r) };
    case 'N':
      return { kind: 'noticeResponse', fields: decodeNoticeFields(r) };
    case 'G':
    case 'H':
    case 'W': {
      const format = r.byte();
      const count = r.int16();
      const columnFormats: number[] = [];
      for (let i = 0; i < count; i++) columnFormats.push(r.int16());
      const kind = code === 'G' ? 'copyInResponse' : code === 'H' ? 'copyOutResponse' : 'copyBothResponse';
      return { kind, format, columnFormats };
    }
    case 'c':
      return { kind: 'copyDone' };
    case 'v': {
      const newestMinor = r.int32();
      const count = r.int32();
      const unrecognized: string[] = [];
      for (let i = 0; i < count; i++) unrecognized.push(r.cstring());
      return { kind: 'negotiateProtocolVersion', newestMinor, unrecognized };
    }
    default:
      return { kind: 'unknown', code, body };
  }
}

function decodeAuthentication(r: Reader): BackendMessage {
  const code = r.int32();
  switch (code) {
    case 0:
      return { kind: 'authenticationOk' };
    case 3:
      return { kind: 'authenticationCleartextPassword' };
    case 5:
      return { kind: 'authenticationMD5Password', salt: r.bytes(4) };
    case 10: {
      const mechanisms: string[] = [];
      for (let m = r.cstring(); m !== ''; m = r.cstring()) mechanisms.push(m);
      return { kind: 'authenticationSASL', mechanisms };
    }
    case 11:
      return { kind: 'authenticationSASLContinue', data: r.rest().toString('utf8') };
    case 12:
      return { kind: 'authenticationSASLFinal', data: r.rest().toString('utf8') };
    default:
      return { kind: 'authenticationOther', code };
  }
}

function decodeNoticeFields(r: Reader): NoticeFields {
  const fields: NoticeFields = {};
  for (let type = r.byte(); type !== 0; type = r.byte()) fields[String.fromCharCode(type)] = r.cstring();
  return fields;
}

/** Bounds-checked big-endian reader over one message body. */
class Reader {
  private offset = 0;
  constructor(
    private readonly body: Buffer,
    private readonly code: string,
  ) {}

  byte(): number {
    this.need(1);
    return this.body[this.offset++];
  }
  int16(): number {
    this.need(2);
    const v = this.body.readInt16BE(this.offset);
    this.offset += 2;
    return v;
  }
  int32(): number {
    this.need(4);
    const v = this.body.readInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  uint32(): number {
    this.need(4);
    const v = this.body.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  bytes(n: number): Buffer {
    if (n < 0) throw this.malformed(`negative length ${n}`);
    this.need(n);
    const v = this.body.subarray(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }
  cstring(): string {
    const end = this.body.indexOf(0, this.offset);
    if (end === -1) throw this.malformed('unterminated string');
    const v = this.body.toString('utf8', this.offset, end);
    this.offset = end + 1;
    return v;
  }
  rest(): Buffer {
    const v = this.body.subarray(this.offset);
    this.offset = this.body.length;
    return v;
  }
  malformed(what: string): PgmError {
    return new PgmError('protocol.error', `the server sent a malformed '${this.code}' message: ${what}.`, {
      hint: 'This is a protocol bug or a non-PostgreSQL peer; report it with the server version.',
    });
  }
  private need(n: number): void {
    if (this.offset + n > this.body.length) throw this.malformed('truncated body');
  }
}
