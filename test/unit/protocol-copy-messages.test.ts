import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeBaseBackupMessage,
  decodeReplicationMessage,
  decodeStandbyStatus,
  encodeBaseBackupMessage,
  encodeKeepalive,
  encodeStandbyStatus,
  encodeXLogData,
  pgTimestampNow,
  pgTimestampToDate,
} from '../../src/protocol/copy-messages.js';
import { baseBackupCommand, quoteLiteral } from '../../src/protocol/basebackup.js';

const lsn = (hi: number, lo: number) => (BigInt(hi) << 32n) | BigInt(lo);

test('copy: XLogData decodes field by field', () => {
  const bytes = Buffer.from('77' + '0000000100000028' + '0000000100000100' + '0000000000000010' + 'cafe', 'hex');
  assert.deepEqual(decodeReplicationMessage(bytes), {
    kind: 'xlogdata',
    start: lsn(1, 0x28),
    end: lsn(1, 0x100),
    sendTime: 16n,
    data: Buffer.from([0xca, 0xfe]),
  });
  assert.equal(encodeXLogData({ start: lsn(1, 0x28), end: lsn(1, 0x100), sendTime: 16n, data: Buffer.from([0xca, 0xfe]) }).toString('hex'), bytes.toString('hex'));
});

test('copy: keepalive round trip and exact bytes', () => {
  const bytes = Buffer.from('6b' + '00000000ff000000' + 'fffffffffffffffe' + '01', 'hex');
  const m = decodeReplicationMessage(bytes);
  assert.deepEqual(m, { kind: 'keepalive', end: lsn(0, 0xff000000), sendTime: -2n, replyRequested: true });
  assert.equal(encodeKeepalive({ end: lsn(0, 0xff000000), sendTime: -2n, replyRequested: true }).toString('hex'), bytes.toString('hex'));
});

test('copy: standby status update exact bytes', () => {
  const s = { written: lsn(0, 0x3000060), flushed: lsn(0, 0x3000000), applied: 0n, clientTime: 1n, replyRequested: false };
  const bytes = encodeStandbyStatus(s);
  assert.equal(bytes.toString('hex'), '72' + '0000000003000060' + '0000000003000000' + '0000000000000000' + '0000000000000001' + '00');
  assert.deepEqual(decodeStandbyStatus(bytes), s);
});

test('copy: malformed replication messages are protocol errors', () => {
  assert.throws(() => decodeReplicationMessage(Buffer.from('w')), { code: 'protocol.error' });
  assert.throws(() => decodeReplicationMessage(Buffer.from('k12')), { code: 'protocol.error' });
  assert.throws(() => decodeReplicationMessage(Buffer.alloc(0)), { code: 'protocol.error' });
});

test('copy: base backup messages', () => {
  assert.deepEqual(decodeBaseBackupMessage(Buffer.from('nbase.tar\0\0')), { kind: 'archive', name: 'base.tar', tablespacePath: '' });
  assert.deepEqual(decodeBaseBackupMessage(Buffer.from('n16384.tar\0/srv/ts\0')), { kind: 'archive', name: '16384.tar', tablespacePath: '/srv/ts' });
  assert.deepEqual(decodeBaseBackupMessage(Buffer.from('dxyz')), { kind: 'data', data: Buffer.from('xyz') });
  assert.deepEqual(decodeBaseBackupMessage(Buffer.from('7000000000000004d2', 'hex')), { kind: 'progress', bytesDone: 1234n });
  assert.deepEqual(decodeBaseBackupMessage(Buffer.from('m')), { kind: 'manifest' });
  for (const m of [
    { kind: 'archive', name: '1.tar', tablespacePath: '/x' },
    { kind: 'data', data: Buffer.from([1]) },
    { kind: 'progress', bytesDone: 99n },
    { kind: 'manifest' },
  ] as const) {
    assert.deepEqual(decodeBaseBackupMessage(encodeBaseBackupMessage(m)), m);
  }
  assert.throws(() => decodeBaseBackupMessage(Buffer.from('nbase.tar')), { code: 'protocol.error' });
  assert.throws(() => decodeBaseBackupMessage(Buffer.from('q')), { code: 'protocol.error' });
});

test('copy: PostgreSQL timestamps count µs from 2000-01-01', () => {
  assert.equal(pgTimestampNow(Date.UTC(2000, 0, 1)), 0n);
  assert.equal(pgTimestampNow(Date.UTC(2000, 0, 1, 0, 0, 1)), 1_000_000n);
  assert.equal(pgTimestampToDate(1_000_000n).toISOString(), '2000-01-01T00:00:01.000Z');
});

test('basebackup: command text and label quoting', () => {
  assert.equal(quoteLiteral(`it's \\ fine`), `'it''s \\ fine'`);
  assert.equal(
    baseBackupCommand({ label: "a'b", checkpoint: 'spread', wal: false, maxRateKbps: 1024, incremental: true, manifestChecksums: 'CRC32C' }),
    "BASE_BACKUP ( LABEL 'a''b', PROGRESS true, CHECKPOINT 'spread', WAL false, WAIT false, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C', INCREMENTAL, MAX_RATE 1024 )",
  );
  assert.equal(
    baseBackupCommand({ label: 'x' }),
    "BASE_BACKUP ( LABEL 'x', PROGRESS true, CHECKPOINT 'fast', WAL true, WAIT false, MANIFEST 'yes', MANIFEST_CHECKSUMS 'SHA256' )",
  );
  assert.throws(() => baseBackupCommand({ label: 'x', maxRateKbps: 1 }), { code: 'protocol.error' });
  assert.throws(() => quoteLiteral('a\0b'), { code: 'protocol.error' });
});
