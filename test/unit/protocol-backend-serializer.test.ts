import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as out from '../../src/protocol/backend-serializer.js';
import { Parser } from '../../src/protocol/parser.js';

/** Hex of a buffer, grouped for readable failures. */
const hex = (b: Buffer) => b.toString('hex');
const bytes = (...parts: (string | number[])[]) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));

test('backend serializer: AuthenticationOk R 0', () => {
  assert.equal(hex(out.authenticationOk()), hex(bytes('R', [0, 0, 0, 8, 0, 0, 0, 0])));
});

test('backend serializer: AuthenticationSASL R 10 lists the mechanisms, then an empty one', () => {
  assert.equal(hex(out.authenticationSasl(['SCRAM-SHA-256'])), hex(bytes('R', [0, 0, 0, 23, 0, 0, 0, 10], 'SCRAM-SHA-256', [0, 0])));
  assert.equal(hex(out.authenticationSasl(['A', 'B'])), hex(bytes('R', [0, 0, 0, 13, 0, 0, 0, 10], 'A', [0], 'B', [0, 0])));
});

test('backend serializer: AuthenticationSASLContinue R 11 and SASLFinal R 12 carry the data unterminated', () => {
  assert.equal(hex(out.authenticationSaslContinue('r=x,s=c2FsdA==,i=4096')), hex(bytes('R', [0, 0, 0, 29, 0, 0, 0, 11], 'r=x,s=c2FsdA==,i=4096')));
  assert.equal(hex(out.authenticationSaslFinal('v=abc=')), hex(bytes('R', [0, 0, 0, 14, 0, 0, 0, 12], 'v=abc=')));
});

test('backend serializer: ParameterStatus S', () => {
  assert.equal(hex(out.parameterStatus('TimeZone', 'UTC')), hex(bytes('S', [0, 0, 0, 17], 'TimeZone', [0], 'UTC', [0])));
});

test('backend serializer: BackendKeyData K with a 4-byte and a 32-byte key', () => {
  assert.equal(hex(out.backendKeyData(0x01020304, Buffer.from([9, 8, 7, 6]))), hex(bytes('K', [0, 0, 0, 12, 1, 2, 3, 4, 9, 8, 7, 6])));
  assert.equal(out.backendKeyData(1, Buffer.alloc(32)).length, 1 + 4 + 4 + 32);
});

test('backend serializer: ReadyForQuery Z with each status', () => {
  for (const s of ['I', 'T', 'E'] as const) assert.equal(hex(out.readyForQuery(s)), hex(bytes('Z', [0, 0, 0, 5], s)));
});

test('backend serializer: CommandComplete C, ParseComplete 1, CloseComplete 3', () => {
  assert.equal(hex(out.commandComplete('BEGIN')), hex(bytes('C', [0, 0, 0, 10], 'BEGIN', [0])));
  assert.equal(hex(out.parseComplete()), hex(bytes('1', [0, 0, 0, 4])));
  assert.equal(hex(out.closeComplete()), hex(bytes('3', [0, 0, 0, 4])));
});

test('backend serializer: ErrorResponse E and NoticeResponse N, fields in the order given, then a terminator', () => {
  assert.equal(hex(out.errorResponse({ S: 'ERROR', C: '42601', M: 'bad' })), hex(bytes('E', [0, 0, 0, 24], 'S', 'ERROR', [0], 'C', '42601', [0], 'M', 'bad', [0, 0])));
  assert.equal(hex(out.noticeResponse({ S: 'NOTICE', M: 'hi' })), hex(bytes('N', [0, 0, 0, 17], 'S', 'NOTICE', [0], 'M', 'hi', [0, 0])));
});

test('backend serializer: a NUL inside a field is dropped, never ends the field early', () => {
  const b = out.errorResponse({ M: 'a\0b' });
  assert.equal(hex(b), hex(bytes('E', [0, 0, 0, 9], 'M', 'ab', [0, 0])));
});

test('backend serializer: pgError words an error as PostgreSQL does (S, V, C, M, then H)', () => {
  assert.deepEqual(new Parser().parse(out.pgError('FATAL', '28P01', 'password authentication failed for user "x"')), [
    { kind: 'errorResponse', fields: { S: 'FATAL', V: 'FATAL', C: '28P01', M: 'password authentication failed for user "x"' } },
  ]);
  assert.deepEqual(new Parser().parse(out.pgError('ERROR', '57P03', 'not now', 'retry')), [
    { kind: 'errorResponse', fields: { S: 'ERROR', V: 'ERROR', C: '57P03', M: 'not now', H: 'retry' } },
  ]);
});

test('backend serializer: the whole startup answer a router gives parses back, split at every byte', () => {
  const stream = Buffer.concat([
    out.authenticationSasl(['SCRAM-SHA-256']),
    out.authenticationSaslContinue('r=n,s=c2FsdA==,i=4096'),
    out.authenticationSaslFinal('v=c2ln'),
    out.authenticationOk(),
    out.parameterStatus('server_version', '18.1'),
    out.parameterStatus('client_encoding', 'UTF8'),
    out.backendKeyData(77, Buffer.from([1, 2, 3, 4])),
    out.readyForQuery('I'),
  ]);
  const expected = [
    { kind: 'authenticationSASL', mechanisms: ['SCRAM-SHA-256'] },
    { kind: 'authenticationSASLContinue', data: 'r=n,s=c2FsdA==,i=4096' },
    { kind: 'authenticationSASLFinal', data: 'v=c2ln' },
    { kind: 'authenticationOk' },
    { kind: 'parameterStatus', name: 'server_version', value: '18.1' },
    { kind: 'parameterStatus', name: 'client_encoding', value: 'UTF8' },
    { kind: 'backendKeyData', processId: 77, secretKey: Buffer.from([1, 2, 3, 4]) },
    { kind: 'readyForQuery', status: 'I' },
  ];
  for (let cut = 0; cut <= stream.length; cut++) {
    const p = new Parser();
    assert.deepEqual([...p.parse(stream.subarray(0, cut)), ...p.parse(stream.subarray(cut))], expected, `cut at ${cut}`);
  }
});
