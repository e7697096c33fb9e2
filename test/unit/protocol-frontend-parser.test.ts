import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FrontendMessage } from '../../src/protocol/frontend-messages.js';
import {
  CANCEL_REQUEST,
  FrontendParser,
  FrontendProtocolError,
  GSSENC_REQUEST,
  LARGE_LIMIT,
  MAX_STARTUP_PACKET,
  SSL_REQUEST,
  decodeFrontend,
  decodeSaslInitial,
  readStartupPacket,
} from '../../src/protocol/frontend-parser.js';
import * as wire from '../../src/protocol/serializer.js';

/** A typed message built by hand: type byte, Int32 length (counting itself), body parts. */
function msg(code: string, ...parts: (Buffer | string | number[])[]): Buffer {
  const body = Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));
  const head = Buffer.alloc(5);
  head.write(code, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}
const i32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const i16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
};
/** An untyped startup-phase packet: Int32 length, Int32 code, body. */
function packet(code: number, ...parts: (Buffer | string)[]): Buffer {
  const body = Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p)));
  return Buffer.concat([i32(body.length + 8), i32(code), body]);
}

function protocolError(fn: () => unknown, pattern: RegExp, sqlstate = '08P01'): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FrontendProtocolError, `a FrontendProtocolError, got ${String(e)}`);
    assert.match(e.message, pattern);
    assert.equal(e.sqlstate, sqlstate);
    return true;
  });
}

// --- startup packets ----------------------------------------------------------

test('startup: the request codes are PostgreSQL\'s', () => {
  assert.equal(SSL_REQUEST, (1234 << 16) | 5679);
  assert.equal(CANCEL_REQUEST, (1234 << 16) | 5678);
  assert.equal(GSSENC_REQUEST, (1234 << 16) | 5680);
  assert.equal(MAX_STARTUP_PACKET, 10_000);
});

test('startup: SSLRequest and GSSENCRequest, and their length must be 8', () => {
  assert.deepEqual(readStartupPacket(packet(SSL_REQUEST)), { packet: { kind: 'sslRequest' }, length: 8 });
  assert.deepEqual(readStartupPacket(packet(GSSENC_REQUEST)), { packet: { kind: 'gssEncRequest' }, length: 8 });
  protocolError(() => readStartupPacket(packet(SSL_REQUEST, 'x')), /invalid length of SSL request \(9\)/);
  protocolError(() => readStartupPacket(packet(GSSENC_REQUEST, 'xy')), /invalid length of GSSENC request \(10\)/);
});

test('startup: the StartupMessage of protocol 3.0 keeps every parameter, in order', () => {
  const bytes = wire.startup({ user: 'alice', database: 'shop', application_name: 'web', client_encoding: 'UTF8', options: '-c search_path=a' });
  const r = readStartupPacket(bytes);
  assert.ok(r && r.packet.kind === 'startup');
  assert.equal(r.length, bytes.length);
  assert.equal(r.packet.major, 3);
  assert.equal(r.packet.minor, 0);
  assert.deepEqual([...r.packet.params], [
    ['user', 'alice'],
    ['database', 'shop'],
    ['application_name', 'web'],
    ['client_encoding', 'UTF8'],
    ['options', '-c search_path=a'],
  ]);
});

test('startup: protocol 3.2 is taken as 3.x with its minor version; 2.0 and others are unsupported', () => {
  const v32 = packet((3 << 16) | 2, 'user\0bob\0\0');
  const r = readStartupPacket(v32);
  assert.ok(r && r.packet.kind === 'startup');
  assert.equal(r.packet.minor, 2);
  assert.deepEqual(readStartupPacket(packet(2 << 16, 'x\0\0'))?.packet, { kind: 'unsupported', code: 2 << 16 });
  assert.deepEqual(readStartupPacket(packet((4 << 16) | 0, '\0'))?.packet, { kind: 'unsupported', code: 4 << 16 });
});

test('startup: multi-byte UTF-8 parameter values', () => {
  const r = readStartupPacket(wire.startup({ user: 'jürgen', application_name: '報告' }));
  assert.ok(r && r.packet.kind === 'startup');
  assert.equal(r.packet.params.get('user'), 'jürgen');
  assert.equal(r.packet.params.get('application_name'), '報告');
});

test('startup: a StartupMessage whose layout is broken is refused as PostgreSQL words it', () => {
  const v30 = 3 << 16;
  protocolError(() => readStartupPacket(packet(v30, 'user\0bob\0')), /expected terminator as last byte/); // no final NUL
  protocolError(() => readStartupPacket(packet(v30, 'user\0bob\0\0extra')), /expected terminator as last byte/);
  protocolError(() => readStartupPacket(packet(v30, 'user')), /expected terminator as last byte/);
  protocolError(() => readStartupPacket(packet(v30, 'user\0bob')), /no value for "user"/);
  protocolError(() => readStartupPacket(packet(v30)), /expected terminator as last byte/); // empty body
});

test('startup: CancelRequest with a 4-byte key (3.0) and a longer key (3.2); a wrong length is refused', () => {
  const c = wire.cancelRequest(4242, Buffer.from([1, 2, 3, 4]));
  assert.deepEqual(readStartupPacket(c), { packet: { kind: 'cancelRequest', processId: 4242, secretKey: Buffer.from([1, 2, 3, 4]) }, length: 16 });
  const long = wire.cancelRequest(7, Buffer.alloc(32, 9));
  assert.deepEqual(readStartupPacket(long)?.packet, { kind: 'cancelRequest', processId: 7, secretKey: Buffer.alloc(32, 9) });
  protocolError(() => readStartupPacket(packet(CANCEL_REQUEST, i32(1))), /invalid length of cancel request \(12\)/);
  protocolError(() => readStartupPacket(packet(CANCEL_REQUEST, i32(1), Buffer.alloc(257))), /invalid length of cancel request/);
  assert.ok(readStartupPacket(packet(CANCEL_REQUEST, i32(1), Buffer.alloc(256))), 'a 256-byte key is the 3.2 maximum');
});

test('startup: the key of a CancelRequest is a copy, not a view of the input', () => {
  const c = wire.cancelRequest(1, Buffer.from([5, 6, 7, 8]));
  const r = readStartupPacket(c)!;
  c.fill(0);
  assert.ok(r.packet.kind === 'cancelRequest');
  assert.deepEqual(r.packet.secretKey, Buffer.from([5, 6, 7, 8]));
});

test('startup: an incomplete packet is null at every byte before its end', () => {
  const bytes = wire.startup({ user: 'alice', database: 'shop' });
  for (let n = 0; n < bytes.length; n++) assert.equal(readStartupPacket(bytes.subarray(0, n)), null, `${n} bytes`);
  assert.ok(readStartupPacket(bytes));
});

test('startup: what follows the packet is left for the caller (length says where it ends)', () => {
  const bytes = Buffer.concat([packet(SSL_REQUEST), wire.startup({ user: 'u' })]);
  const r = readStartupPacket(bytes)!;
  assert.equal(r.length, 8);
  const next = readStartupPacket(bytes.subarray(r.length))!;
  assert.equal(next.packet.kind, 'startup');
});

test('startup: a length below 8 or above 10 000 is refused at once, before the rest arrives', () => {
  for (const length of [0, 4, 7, 10_001, 0x40000000, 0xffffffff]) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(length);
    protocolError(() => readStartupPacket(b), /invalid length of startup packet/);
  }
  // an HTTP request on the port: "GET " read as a length
  protocolError(() => readStartupPacket(Buffer.from('GET / HTTP/1.1\r\n')), /invalid length of startup packet \(1195725856\)/);
  assert.equal(readStartupPacket(Buffer.from([0, 0])), null, 'fewer than four bytes: wait');
});

// --- typed messages -------------------------------------------------------------

const cases: [string, Buffer, (b: Buffer) => FrontendMessage][] = [
  ['Query Q', msg('Q', 'SELECT 1\0'), (b) => ({ kind: 'query', sql: 'SELECT 1', bytes: b })],
  ['Query Q with UTF-8', msg('Q', "SELECT 'é'\0"), (b) => ({ kind: 'query', sql: "SELECT 'é'", bytes: b })],
  ['Query Q, empty', msg('Q', '\0'), (b) => ({ kind: 'query', sql: '', bytes: b })],
  [
    'Parse P with parameter types',
    msg('P', 's1\0', 'SELECT $1, $2\0', i16(2), i32(23), i32(25)),
    (b) => ({ kind: 'parse', name: 's1', sql: 'SELECT $1, $2', paramTypes: Buffer.concat([i16(2), i32(23), i32(25)]), bytes: b }),
  ],
  ['Parse P, unnamed, no types', msg('P', '\0', 'SELECT 1\0', i16(0)), (b) => ({ kind: 'parse', name: '', sql: 'SELECT 1', paramTypes: i16(0), bytes: b })],
  [
    'Bind B',
    msg('B', 'p1\0', 's1\0', i16(1), i16(0), i16(1), i32(2), '42', i16(1), i16(1)),
    (b) => ({ kind: 'bind', portal: 'p1', statement: 's1', rest: Buffer.concat([i16(1), i16(0), i16(1), i32(2), Buffer.from('42'), i16(1), i16(1)]), bytes: b }),
  ],
  ['Bind B, unnamed, with a NULL', msg('B', '\0', '\0', i16(0), i16(1), i32(-1), i16(0)), (b) => ({ kind: 'bind', portal: '', statement: '', rest: Buffer.concat([i16(0), i16(1), i32(-1), i16(0)]), bytes: b })],
  ['Describe D statement', msg('D', 'S', 's1\0'), (b) => ({ kind: 'describe', target: 'S', name: 's1', bytes: b })],
  ['Describe D portal', msg('D', 'P', '\0'), (b) => ({ kind: 'describe', target: 'P', name: '', bytes: b })],
  ['Close C statement', msg('C', 'S', 's1\0'), (b) => ({ kind: 'close', target: 'S', name: 's1', bytes: b })],
  ['Close C portal', msg('C', 'P', 'p1\0'), (b) => ({ kind: 'close', target: 'P', name: 'p1', bytes: b })],
  ['Execute E', msg('E', 'p1\0', i32(100)), (b) => ({ kind: 'execute', portal: 'p1', maxRows: 100, bytes: b })],
  ['Execute E, all rows', msg('E', '\0', i32(0)), (b) => ({ kind: 'execute', portal: '', maxRows: 0, bytes: b })],
  ['Sync S', msg('S'), (b) => ({ kind: 'sync', bytes: b })],
  ['Flush H', msg('H'), (b) => ({ kind: 'flush', bytes: b })],
  ['FunctionCall F', msg('F', i32(1598), i16(0), i16(0), i16(0)), (b) => ({ kind: 'functionCall', bytes: b })],
  ['CopyData d', msg('d', '1\tone\n'), (b) => ({ kind: 'copyData', bytes: b })],
  ['CopyDone c', msg('c'), (b) => ({ kind: 'copyDone', bytes: b })],
  ['CopyFail f', msg('f', 'aborted\0'), (b) => ({ kind: 'copyFail', bytes: b })],
  ['Terminate X', msg('X'), (b) => ({ kind: 'terminate', bytes: b })],
  ['PasswordMessage p', msg('p', 'secret\0'), (b) => ({ kind: 'password', body: Buffer.from('secret\0'), bytes: b })],
  ['unknown letter', msg('z', [1, 2, 3]), (b) => ({ kind: 'unknown', code: 'z', bytes: b })],
];

for (const [name, bytes, expected] of cases) {
  test(`frontend: ${name}`, () => {
    assert.deepEqual(new FrontendParser().push(bytes), [expected(bytes)]);
    assert.deepEqual(decodeFrontend(bytes[0], bytes), expected(bytes));
  });
}

test('frontend: the serializer\'s messages parse back to what was sent', () => {
  const types = Buffer.concat([i16(1), i32(23)]);
  const rest = Buffer.concat([i16(0), i16(1), i32(1), Buffer.from('7'), i16(0)]);
  const got = new FrontendParser().push(Buffer.concat([wire.parse('n', 'SELECT $1', types), wire.bind('', 'n', rest), wire.describe('P', ''), wire.sync(), wire.query('SELECT 2'), wire.terminate()]));
  assert.deepEqual(
    got.map((m) => m.kind),
    ['parse', 'bind', 'describe', 'sync', 'query', 'terminate'],
  );
  const [p, b] = got;
  assert.ok(p.kind === 'parse' && b.kind === 'bind');
  assert.deepEqual(p.paramTypes, types);
  assert.deepEqual(b.rest, rest);
});

const all = Buffer.concat(cases.map((c) => c[1]));
const expectedAll = cases.map(([, b, e]) => e(b));
/** Compares ignoring whether `bytes` is a view or a copy. */
const plain = (ms: FrontendMessage[]) => JSON.parse(JSON.stringify(ms)) as unknown;

test('frontend: every message in one chunk', () => {
  assert.deepEqual(plain(new FrontendParser().push(all)), plain(expectedAll));
});

test('frontend: one byte at a time', () => {
  const p = new FrontendParser();
  const out: FrontendMessage[] = [];
  for (let i = 0; i < all.length; i++) out.push(...p.push(all.subarray(i, i + 1)));
  assert.deepEqual(plain(out), plain(expectedAll));
  assert.equal(p.buffered, 0);
});

test('frontend: split at every byte into two chunks', () => {
  for (let cut = 0; cut <= all.length; cut++) {
    const p = new FrontendParser();
    const out = [...p.push(all.subarray(0, cut)), ...p.push(all.subarray(cut))];
    assert.deepEqual(plain(out), plain(expectedAll), `cut at ${cut}`);
  }
});

test('frontend: a message whose body does not match its type is refused with the type named', () => {
  protocolError(() => new FrontendParser().push(msg('Q', 'SELECT 1')), /invalid string in message \(message type 'Q'\)/);
  protocolError(() => new FrontendParser().push(msg('Q', 'SELECT 1\0junk')), /invalid message format \(message type 'Q'\)/);
  protocolError(() => new FrontendParser().push(msg('D', 'X', 'a\0')), /invalid DESCRIBE message subtype "X"/);
  protocolError(() => new FrontendParser().push(msg('C', 'Q', 'a\0')), /invalid CLOSE message subtype "Q"/);
  protocolError(() => new FrontendParser().push(msg('D')), /insufficient data left in message \(message type 'D'\)/);
  protocolError(() => new FrontendParser().push(msg('E', 'p\0', [0, 0])), /insufficient data left in message \(message type 'E'\)/);
  protocolError(() => new FrontendParser().push(msg('P', 's\0', 'SELECT 1\0', i16(2), i32(23))), /insufficient data left/);
  protocolError(() => new FrontendParser().push(msg('P', 's\0', 'SELECT 1\0', i16(0), [1])), /invalid message format \(message type 'P'\)/);
  protocolError(() => new FrontendParser().push(msg('B', 'portal-without-terminator')), /invalid string in message \(message type 'B'\)/);
});

test('frontend: control messages are small: a length over 10 000 is refused at the header', () => {
  for (const code of 'SHXcCDEp') {
    const head = Buffer.alloc(5);
    head.write(code, 0, 'latin1');
    head.writeUInt32BE(10_001, 1);
    protocolError(() => new FrontendParser().push(head), new RegExp(`invalid message length 10001 for message type '${code}'`));
    head.writeUInt32BE(10_000, 1);
    assert.deepEqual(new FrontendParser().push(head), [], `${code}: 10 000 waits for its body`);
  }
});

test('frontend: data messages may be large, up to the limit; 1 GiB is refused without buffering it', () => {
  assert.equal(LARGE_LIMIT, 256 * 1024 * 1024);
  const p = new FrontendParser(1000);
  const big = msg('d', Buffer.alloc(996));
  assert.equal(p.push(big).length, 1, 'exactly the limit');
  const head = Buffer.alloc(5);
  head.write('Q', 0, 'latin1');
  head.writeUInt32BE(0x40000000, 1);
  protocolError(() => new FrontendParser().push(head), /invalid message length 1073741824 for message type 'Q'/);
  protocolError(() => new FrontendParser(1000).push(msg('B', Buffer.alloc(997))), /invalid message length 1001/);
});

test('frontend: a length below 4 is refused', () => {
  protocolError(() => new FrontendParser().push(Buffer.from([0x51, 0, 0, 0, 3])), /invalid message length 3 for message type 'Q'/);
});

test('frontend: a 20 MiB query split in 64 KiB chunks arrives whole', () => {
  const sql = `SELECT '${'x'.repeat(20 * 1024 * 1024)}'`;
  const bytes = wire.query(sql);
  const p = new FrontendParser();
  const out: FrontendMessage[] = [];
  for (let i = 0; i < bytes.length; i += 65536) out.push(...p.push(bytes.subarray(i, i + 65536)));
  assert.equal(out.length, 1);
  assert.ok(out[0].kind === 'query' && out[0].sql === sql);
});

// --- SASL ------------------------------------------------------------------------

test('sasl: SASLInitialResponse gives the mechanism and the client-first-message', () => {
  const m = wire.saslInitialResponse('SCRAM-SHA-256', 'n,,n=,r=abc');
  const [p] = new FrontendParser().push(m);
  assert.ok(p.kind === 'password');
  assert.deepEqual(decodeSaslInitial(p.body), { mechanism: 'SCRAM-SHA-256', data: Buffer.from('n,,n=,r=abc') });
});

test('sasl: a SASLInitialResponse with length -1 carries no data', () => {
  assert.deepEqual(decodeSaslInitial(Buffer.concat([Buffer.from('SCRAM-SHA-256\0'), i32(-1)])), { mechanism: 'SCRAM-SHA-256', data: null });
});

test('sasl: a broken SASLInitialResponse is refused', () => {
  protocolError(() => decodeSaslInitial(Buffer.from('SCRAM-SHA-256')), /invalid string/);
  protocolError(() => decodeSaslInitial(Buffer.concat([Buffer.from('SCRAM-SHA-256\0'), i32(10), Buffer.from('short')])), /insufficient data/);
  protocolError(() => decodeSaslInitial(Buffer.concat([Buffer.from('SCRAM-SHA-256\0'), i32(2), Buffer.from('abc')])), /invalid message format/);
  protocolError(() => decodeSaslInitial(Buffer.concat([Buffer.from('SCRAM-SHA-256\0'), i32(-2)])), /negative length -2/);
  protocolError(() => decodeSaslInitial(Buffer.from('SCRAM-SHA-256\0\0')), /insufficient data/);
});
