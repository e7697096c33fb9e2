import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as wire from '../../src/protocol/serializer.js';

const hex = (b: Buffer) => b.toString('hex');
const bytes = (...parts: (string | number[])[]) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));

test('serializer: startup message, protocol 3.0, parameters in order, undefined left out', () => {
  const got = wire.startup({ user: 'postgres', database: undefined, replication: 'true', application_name: 'pgm' });
  const body = 'user\0postgres\0replication\0true\0application_name\0pgm\0\0';
  const want = bytes([0, 0, 0, 8 + body.length], [0, 3, 0, 0], body);
  assert.equal(hex(got), hex(want));
});

test('serializer: startup with database and replication=database', () => {
  const got = wire.startup({ user: 'u', database: 'db', replication: 'database' });
  assert.equal(hex(got), hex(bytes([0, 0, 0, 49], [0, 3, 0, 0], 'user\0u\0database\0db\0replication\0database\0\0')));
});

test('serializer: Query Q', () => {
  assert.equal(hex(wire.query('IDENTIFY_SYSTEM')), hex(bytes('Q', [0, 0, 0, 20], 'IDENTIFY_SYSTEM\0')));
});

test('serializer: PasswordMessage p', () => {
  assert.equal(hex(wire.password('pw')), hex(bytes('p', [0, 0, 0, 7], 'pw\0')));
});

test('serializer: SASLInitialResponse p', () => {
  const got = wire.saslInitialResponse('SCRAM-SHA-256', 'n,,n=,r=abc');
  assert.equal(hex(got), hex(bytes('p', [0, 0, 0, 33], 'SCRAM-SHA-256\0', [0, 0, 0, 11], 'n,,n=,r=abc')));
});

test('serializer: SASLResponse p', () => {
  assert.equal(hex(wire.saslResponse('c=biws')), hex(bytes('p', [0, 0, 0, 10], 'c=biws')));
});

test('serializer: CopyData d, and its header alone', () => {
  assert.equal(hex(wire.copyData(Buffer.from([1, 2, 3]))), hex(bytes('d', [0, 0, 0, 7], [1, 2, 3])));
  assert.equal(hex(wire.copyDataHeader(3)), hex(bytes('d', [0, 0, 0, 7])));
});

test('serializer: CopyDone c, CopyFail f, Terminate X', () => {
  assert.equal(hex(wire.copyDone()), hex(bytes('c', [0, 0, 0, 4])));
  assert.equal(hex(wire.copyFail('no')), hex(bytes('f', [0, 0, 0, 7], 'no\0')));
  assert.equal(hex(wire.terminate()), hex(bytes('X', [0, 0, 0, 4])));
});

test('serializer: multi-byte UTF-8 counts bytes, not characters', () => {
  assert.equal(hex(wire.query('é')), hex(bytes('Q', [0, 0, 0, 7], [0xc3, 0xa9, 0])));
});

test('serializer: refuses NUL inside strings', () => {
  assert.throws(() => wire.query('a\0b'), TypeError);
});
