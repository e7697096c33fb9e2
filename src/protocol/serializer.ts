/**
 * Frontend (client → server) messages as Buffers. Pure functions, one per
 * message, named after what they send; the wire letter is in each comment.
 */

const PROTOCOL_3_0 = 196608; // 3 << 16 | 0

/**
 * Startup parameters. Keys are sent in insertion order; `undefined` values are
 * left out. `replication` is 'true' for a physical walsender and 'database'
 * for a logical one.
 */
export interface StartupParams {
  user: string;
  database?: string;
  replication?: 'true' | 'database';
  application_name?: string;
  [name: string]: string | undefined;
}

/** StartupMessage (no type byte): length, protocol 3.0, name/value pairs, terminator. */
export function startup(params: StartupParams): Buffer {
  const parts: Buffer[] = [int32(0), int32(PROTOCOL_3_0)];
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined) continue;
    parts.push(cstring(name), cstring(value));
  }
  parts.push(Buffer.from([0]));
  const out = Buffer.concat(parts);
  out.writeInt32BE(out.length, 0);
  return out;
}

/** PasswordMessage 'p' (cleartext password). */
export function password(text: string): Buffer {
  return message('p', cstring(text));
}

/** SASLInitialResponse 'p': mechanism name, then Int32 length and the client-first-message. */
export function saslInitialResponse(mechanism: string, data: string | Buffer): Buffer {
  const payload = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  return message('p', cstring(mechanism), int32(payload.length), payload);
}

/** SASLResponse 'p': the client-final-message, unframed. */
export function saslResponse(data: string | Buffer): Buffer {
  return message('p', typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
}

/** Query 'Q' (simple query protocol). */
export function query(sql: string): Buffer {
  return message('Q', cstring(sql));
}

/** CopyData 'd'. */
export function copyData(data: Buffer): Buffer {
  return message('d', data);
}

/** The 5-byte header of a CopyData 'd' carrying `length` payload bytes, for writing large payloads without a copy. */
export function copyDataHeader(length: number): Buffer {
  const out = Buffer.allocUnsafe(5);
  out[0] = 0x64;
  out.writeInt32BE(length + 4, 1);
  return out;
}

/** CopyDone 'c'. */
export function copyDone(): Buffer {
  return message('c');
}

/** CopyFail 'f': the server aborts the COPY with an error carrying this reason. */
export function copyFail(reason: string): Buffer {
  return message('f', cstring(reason));
}

/** Parse 'P': `paramTypes` is the raw Int16 count and Int32 type OIDs. */
export function parse(name: string, sql: string, paramTypes: Buffer): Buffer {
  return message('P', cstring(name), cstring(sql), paramTypes);
}

/** Bind 'B' from its parts: `rest` is everything after the statement name, as the client sent it. */
export function bind(portal: string, statement: string, rest: Buffer): Buffer {
  return message('B', cstring(portal), cstring(statement), rest);
}

/** Describe 'D' of a statement ('S') or portal ('P'). */
export function describe(target: 'S' | 'P', name: string): Buffer {
  return message('D', Buffer.from(target, 'latin1'), cstring(name));
}

/** Sync 'S'. */
export function sync(): Buffer {
  return message('S');
}

/** CancelRequest (untyped): length 16 (3.0 key) or more, code 80877102, process ID, secret key. */
export function cancelRequest(processId: number, secretKey: Buffer): Buffer {
  const out = Buffer.allocUnsafe(12 + secretKey.length);
  out.writeInt32BE(out.length, 0);
  out.writeInt32BE(80877102, 4);
  out.writeInt32BE(processId, 8);
  secretKey.copy(out, 12);
  return out;
}

/** Terminate 'X'. */
export function terminate(): Buffer {
  return message('X');
}

/** A typed message: the type letter, the Int32 length, the body parts. */
export function message(code: string, ...body: Buffer[]): Buffer {
  const length = body.reduce((n, b) => n + b.length, 4);
  const out = Buffer.allocUnsafe(1 + length);
  out[0] = code.charCodeAt(0);
  out.writeInt32BE(length, 1);
  let offset = 5;
  for (const b of body) offset += b.copy(out, offset);
  return out;
}

export function int32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(n, 0);
  return b;
}

/** A NUL-terminated UTF-8 string; an embedded NUL would silently truncate it on the server, so refuse. */
export function cstring(s: string): Buffer {
  if (s.includes('\0')) throw new TypeError(`protocol strings cannot contain NUL: ${JSON.stringify(s.slice(0, 40))}`);
  const b = Buffer.allocUnsafe(Buffer.byteLength(s) + 1);
  b.write(s, 0);
  b[b.length - 1] = 0;
  return b;
}
