import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Parser } from '../../src/protocol/parser.js';
import type { BackendMessage } from '../../src/protocol/messages.js';

/** A backend message built by hand: type byte, Int32 length, body. */
function msg(code: string, ...parts: (Buffer | string | number[])[]): Buffer {
  const body = Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));
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

const cases: [string, Buffer, BackendMessage][] = [
  ['AuthenticationOk', msg('R', i32(0)), { kind: 'authenticationOk' }],
  ['AuthenticationCleartextPassword', msg('R', i32(3)), { kind: 'authenticationCleartextPassword' }],
  ['AuthenticationMD5Password', msg('R', i32(5), [1, 2, 3, 4]), { kind: 'authenticationMD5Password', salt: Buffer.from([1, 2, 3, 4]) }],
  ['AuthenticationSASL', msg('R', i32(10), 'SCRAM-SHA-256\0SCRAM-SHA-256-PLUS\0\0'), { kind: 'authenticationSASL', mechanisms: ['SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS'] }],
  ['AuthenticationSASLContinue', msg('R', i32(11), 'r=abc,s=c2FsdA==,i=4096'), { kind: 'authenticationSASLContinue', data: 'r=abc,s=c2FsdA==,i=4096' }],
  ['AuthenticationSASLFinal', msg('R', i32(12), 'v=c2ln'), { kind: 'authenticationSASLFinal', data: 'v=c2ln' }],
  ['AuthenticationGSS', msg('R', i32(7)), { kind: 'authenticationOther', code: 7 }],
  ['ParameterStatus', msg('S', 'server_version\x0018.1\0'), { kind: 'parameterStatus', name: 'server_version', value: '18.1' }],
  ['BackendKeyData', msg('K', i32(4242), [0xde, 0xad, 0xbe, 0xef]), { kind: 'backendKeyData', processId: 4242, secretKey: Buffer.from([0xde, 0xad, 0xbe, 0xef]) }],
  ['ReadyForQuery', msg('Z', 'I'), { kind: 'readyForQuery', status: 'I' }],
  [
    'RowDescription',
    msg('T', i16(2), 'systemid\0', i32(0), i16(0), i32(25), i16(-1), i32(-1), i16(0), 'timeline\0', i32(0), i16(0), i32(23), i16(4), i32(-1), i16(0)),
    {
      kind: 'rowDescription',
      fields: [
        { name: 'systemid', tableOid: 0, columnAttr: 0, typeOid: 25, typeSize: -1, typeModifier: -1, format: 0 },
        { name: 'timeline', tableOid: 0, columnAttr: 0, typeOid: 23, typeSize: 4, typeModifier: -1, format: 0 },
      ],
    },
  ],
  ['DataRow', msg('D', i16(3), i32(3), 'abc', i32(-1), i32(0)), { kind: 'dataRow', values: [Buffer.from('abc'), null, Buffer.alloc(0)] }],
  ['CommandComplete', msg('C', 'SELECT 1\0'), { kind: 'commandComplete', tag: 'SELECT 1' }],
  ['EmptyQueryResponse', msg('I'), { kind: 'emptyQueryResponse' }],
  [
    'ErrorResponse',
    msg('E', 'SERROR\0VERROR\0C42601\0Msyntax error\0\0'),
    { kind: 'errorResponse', fields: { S: 'ERROR', V: 'ERROR', C: '42601', M: 'syntax error' } },
  ],
  ['NoticeResponse', msg('N', 'SNOTICE\0Mhello\0\0'), { kind: 'noticeResponse', fields: { S: 'NOTICE', M: 'hello' } }],
  ['CopyInResponse', msg('G', [0], i16(0)), { kind: 'copyInResponse', format: 0, columnFormats: [] }],
  ['CopyOutResponse', msg('H', [0], i16(1), i16(0)), { kind: 'copyOutResponse', format: 0, columnFormats: [0] }],
  ['CopyBothResponse', msg('W', [1], i16(0)), { kind: 'copyBothResponse', format: 1, columnFormats: [] }],
  ['CopyData', msg('d', [0x77, 1, 2, 3]), { kind: 'copyData', data: Buffer.from([0x77, 1, 2, 3]) }],
  ['CopyDone', msg('c'), { kind: 'copyDone' }],
  ['NegotiateProtocolVersion', msg('v', i32(0), i32(1), '_pq_.x\0'), { kind: 'negotiateProtocolVersion', newestMinor: 0, unrecognized: ['_pq_.x'] }],
  ['unknown letter', msg('A', [1, 2]), { kind: 'unknown', code: 'A', body: Buffer.from([1, 2]) }],
];

for (const [name, bytes, expected] of cases) {
  test(`parser: ${name}`, () => {
    assert.deepEqual(new Parser().parse(bytes), [expected]);
  });
}

const all = Buffer.concat(cases.map((c) => c[1]));
const expectedAll = cases.map((c) => c[2]);

test('parser: many messages in one chunk', () => {
  assert.deepEqual(new Parser().parse(all), expectedAll);
});

test('parser: one byte at a time', () => {
  const p = new Parser();
  const out: BackendMessage[] = [];
  for (let i = 0; i < all.length; i++) out.push(...p.parse(all.subarray(i, i + 1)));
  assert.deepEqual(out, expectedAll);
  assert.equal(p.pendingBytes, 0);
});

test('parser: every split point of a multi-message buffer', () => {
  for (let i = 0; i <= all.length; i++) {
    const p = new Parser();
    const out = [...p.parse(all.subarray(0, i)), ...p.parse(all.subarray(i))];
    assert.deepEqual(out, expectedAll, `split at ${i}`);
  }
});

test('parser: every pair of split points of a short buffer', () => {
  const short = Buffer.concat([cases[9][1], cases[12][1], cases[19][1], cases[20][1]]);
  const want = [cases[9][2], cases[12][2], cases[19][2], cases[20][2]];
  for (let i = 0; i <= short.length; i++) {
    for (let j = i; j <= short.length; j++) {
      const p = new Parser();
      const out = [...p.parse(short.subarray(0, i)), ...p.parse(short.subarray(i, j)), ...p.parse(short.subarray(j))];
      assert.deepEqual(out, want, `split at ${i}, ${j}`);
    }
  }
});

test('parser: a large CopyData arriving in many chunks is reassembled once', () => {
  const payload = Buffer.alloc(300_000, 7);
  const bytes = msg('d', payload);
  const p = new Parser();
  const out: BackendMessage[] = [];
  for (let i = 0; i < bytes.length; i += 1000) out.push(...p.parse(bytes.subarray(i, i + 1000)));
  assert.equal(out.length, 1);
  assert.deepEqual(out[0], { kind: 'copyData', data: payload });
});

test('parser: an impossible length is a protocol error', () => {
  assert.throws(() => new Parser().parse(Buffer.from('HTTP/1.1 400 Bad Request\r\n')), { code: 'protocol.error' });
  assert.throws(() => new Parser().parse(Buffer.from([0x5a, 0, 0, 0, 3])), { code: 'protocol.error' });
});

test('parser: a truncated body is a protocol error', () => {
  assert.throws(() => new Parser().parse(msg('D', i16(1), i32(10), 'abc')), { code: 'protocol.error', message: /malformed 'D'/ });
  assert.throws(() => new Parser().parse(msg('S', 'no terminator')), { code: 'protocol.error' });
  assert.throws(() => new Parser().parse(msg('Z', 'X')), { code: 'protocol.error' });
});

test('parser: every split point, with each chunk in memory of its own (the copying path)', () => {
  for (let i = 0; i <= all.length; i++) {
    const p = new Parser();
    const out = [...p.parse(Buffer.from(all.subarray(0, i))), ...p.parse(Buffer.from(all.subarray(i)))];
    assert.deepEqual(out, expectedAll, `split at ${i}`);
    assert.equal(p.pendingBytes, 0);
  }
});

test('parser: one byte at a time, each in memory of its own', () => {
  const p = new Parser();
  const out: BackendMessage[] = [];
  for (let i = 0; i < all.length; i++) out.push(...p.parse(Buffer.from(all.subarray(i, i + 1))));
  assert.deepEqual(out, expectedAll);
});

test('parser: a message split between chunks adjacent in memory is a view, not a copy', () => {
  const payload = Buffer.alloc(40_000, 9);
  const bytes = Buffer.concat([msg('d', payload), msg('c')]);
  const p = new Parser();
  const out = [...p.parse(bytes.subarray(0, 100)), ...p.parse(bytes.subarray(100, 30_000)), ...p.parse(bytes.subarray(30_000))];
  assert.deepEqual(out, [{ kind: 'copyData', data: payload }, { kind: 'copyDone' }]);
  const data = (out[0] as { data: Buffer }).data;
  assert.equal(data.buffer, bytes.buffer, 'the payload views the input');
  assert.equal(data.byteOffset, bytes.byteOffset + 5);
});

test('parser: a message split between chunks in separate memory is copied once, exactly', () => {
  const payload = Buffer.alloc(40_000, 9);
  const bytes = msg('d', payload);
  const p = new Parser();
  const out = [...p.parse(Buffer.from(bytes.subarray(0, 3))), ...p.parse(Buffer.from(bytes.subarray(3, 20_000))), ...p.parse(Buffer.from(bytes.subarray(20_000)))];
  assert.deepEqual(out, [{ kind: 'copyData', data: payload }]);
  assert.equal((out[0] as { data: Buffer }).data.length, payload.length);
});
