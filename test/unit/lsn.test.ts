import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatLsn, lsnDiff, parseLsn, walFileName } from '../../src/postgres/lsn.js';
import { scramVerifier } from '../../src/postgres/scram.js';

test('LSNs parse, format and subtract exactly', () => {
  assert.equal(parseLsn('0/3000060'), 0x3000060n);
  assert.equal(parseLsn('16/B374D848'), (0x16n << 32n) | 0xb374d848n);
  assert.equal(formatLsn(parseLsn('16/B374D848')), '16/B374D848');
  assert.equal(lsnDiff(parseLsn('1/0'), parseLsn('0/FFFFFFFF')), 1n);
  assert.equal(lsnDiff(parseLsn('0/10'), parseLsn('0/20')), 0n);
  assert.throws(() => parseLsn('nonsense'));
});

test('WAL file names follow timeline, log and segment', () => {
  assert.equal(walFileName(1, parseLsn('0/3000060'), 16 * 1024 * 1024), '000000010000000000000003');
  assert.equal(walFileName(2, parseLsn('1/FF000000'), 16 * 1024 * 1024), '0000000200000001000000FF');
});

test('a SCRAM verifier has PostgreSQL\'s format and the RFC 7677 keys for a known salt', () => {
  const v = scramVerifier('pencil', 4096, Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'));
  assert.equal(v, 'SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=');
});

test('byte counts for sentences', async () => {
  const { formatBytes } = await import('../../src/util/format.js');
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(16 * 1048576), '16 MiB');
  assert.equal(formatBytes(2.45 * 1048576), '2.5 MiB');
  assert.equal(formatBytes(3 * 1073741824), '3 GiB');
  assert.equal(formatBytes(1.2 * 1073741824), '1.20 GiB');
});
