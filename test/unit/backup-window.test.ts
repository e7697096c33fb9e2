import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c } from '@node-rs/crc32';
import { crc32cCombine } from '../../src/backup/codec.js';
import { encodeFileList, encodeMarker, parseFileList, parseMarker } from '../../src/backup/catalog.js';
import type { BackupInfo } from '../../src/backup/types.js';
import { recoveryWindow, type WindowInput } from '../../src/backup/window.js';
import { PgmError } from '../../src/errors.js';

const SEG = 16 * 1024 * 1024;
const seg = (n: number) => `00000001000000000000${n.toString(16).toUpperCase().padStart(4, '0')}`;
const at = (min: number) => new Date(Date.UTC(2026, 0, 1, 0, min)).toISOString();
const lsn = (segno: number, off = 0x28) => `0/${(segno * SEG + off).toString(16).toUpperCase()}`;

function backup(id: string, segno: number, stopMin: number, type: 'full' | 'incr' = 'full', parent: string | null = null) {
  return { id, type, parent, stop_time: at(stopMin), start_lsn: lsn(segno), stop_lsn: lsn(segno, 0x200), timeline: 1 };
}
function input(over: Partial<WindowInput> & { segs?: [number, number][] }): WindowInput {
  return {
    now: at(100),
    windowMs: 90 * 60_000,
    backups: [],
    damaged: [],
    wal: { archiving: true, segments: (over.segs ?? []).map(([n, m]) => ({ name: seg(n), size: SEG, archived_at: at(m) })), histories: new Map(), open: null },
    gaps: [],
    failures: [],
    ...over,
  };
}

test('window: a backup older than the window start and continuous WAL to now: every moment restorable', () => {
  const r = recoveryWindow(input({ backups: [backup('A', 2, 5)], segs: [[2, 6], [3, 40], [4, 99]] }));
  assert.equal(r.restorable, true, r.sentence);
  assert.deepEqual(r.ranges.map((x) => x.restorable), [true]);
  assert.match(r.sentence, /every moment since 2026-01-01T00:10:00Z can be restored/);
});

test('window: a WAL gap is not restorable from the last archived WAL before it until the next full backup', () => {
  const gaps = [{ from_lsn: lsn(4, 0), to_lsn: lsn(8, 0), timeline: 1, detected_at: at(60), node: 'node1', reason: 'node1 removed WAL before it was archived' }];
  const r = recoveryWindow(input({ backups: [backup('A', 2, 5), backup('B', 8, 70)], segs: [[2, 6], [3, 30], [8, 71], [9, 99]], gaps }));
  assert.equal(r.restorable, false);
  const bad = r.ranges.filter((x) => !x.restorable);
  assert.equal(bad.length, 1);
  assert.equal(bad[0].from, at(30));
  assert.equal(bad[0].to, at(70));
  assert.match(bad[0].reason, /WAL gap after 0\/4000000: node1 removed WAL before it was archived; healed by backup B/);
});

test('window: a gap with no backup after it leaves the tail not restorable, naming a failed healing backup', () => {
  const gaps = [{ from_lsn: lsn(4, 0), to_lsn: lsn(8, 0), timeline: 1, detected_at: at(60), node: 'node1', reason: 'slot lost' }];
  const failures = [{ at: at(61), type: 'full', reason: 'S3 did not answer' }];
  const r = recoveryWindow(input({ backups: [backup('A', 2, 5)], segs: [[2, 6], [3, 30], [8, 71]], gaps, failures }));
  const bad = r.ranges.filter((x) => !x.restorable);
  assert.deepEqual([bad[0].from, bad[0].to], [at(30), at(100)]);
  assert.match(bad[0].reason, /WAL gap: slot lost; a new full backup heals it; the full backup at 2026-01-01T01:01:00Z failed: S3 did not answer/);
});

test('window: no backup old enough (the anchor expired), a damaged incremental, the segment in progress counts', () => {
  const open = { segment: seg(5), size: 1000, segment_size: SEG, flushed_at: at(99) };
  const r = recoveryWindow({ ...input({ backups: [backup('A', 2, 30), backup('I', 4, 50, 'incr', 'A')], segs: [[2, 31], [3, 40], [4, 51]], damaged: ['A'] }), wal: { ...input({}).wal, segments: [2, 3, 4].map((n) => ({ name: seg(n), size: SEG, archived_at: at(n * 10) })), open } });
  assert.equal(r.restorable, false);
  assert.match(r.ranges[0].reason, /no intact backup/);
  const ok = recoveryWindow({ ...input({ backups: [backup('A', 2, 5)] }), wal: { ...input({}).wal, segments: [2, 3, 4].map((n) => ({ name: seg(n), size: SEG, archived_at: at(n * 10) })), open } });
  assert.equal(ok.restorable, true, `the open segment carries the window to ${at(99)}: ${ok.sentence}`);
});

test('catalog: the marker and files.json are checked against their checksums and parsed strictly', () => {
  const list = encodeFileList({ version: 3, entries: [{ kind: 'file', path: 'data/global/1260_vm', size: 8192, stored: 'packs/0', offset: 0, stored_size: 8192, crc32c: '01020304', blocks: '01020304' }] });
  const { info, bytes } = encodeMarker({ ...backup('20260101T000000F', 2, 5), node: 'n', start_time: at(1), size_bytes: 1, stored_bytes: 1, compression: 'none', pg_version: '18', system_identifier: '1', catalog_sha256: list.sha256, manifest_sha256: null } as Omit<BackupInfo, 'checksum'>);
  assert.deepEqual(parseMarker(info.id, Buffer.from(bytes)), info);
  const flipped = (s: string, from: string, to: string) => Buffer.from(s.replace(from, to));
  assert.throws(() => parseMarker(info.id, flipped(bytes, '"size_bytes": 1', '"size_bytes": 3')), /backup.json does not match its own checksum/);
  assert.deepEqual(parseFileList(info, Buffer.from(list.bytes)).entries.length, 1);
  assert.throws(() => parseFileList(info, flipped(list.bytes, '"kind":"file"', '"kind":"fild"')), (e: unknown) => e instanceof PgmError && /files.json does not match the checksum recorded in backup.json/.test(e.message));
  const odd = encodeFileList({ version: 3, entries: [{ kind: 'fild', path: 'x' }] } as never);
  assert.throws(() => parseFileList({ ...info, catalog_sha256: odd.sha256 }, Buffer.from(odd.bytes)), /files.json has an entry pgmaestro does not know/);
  const short = encodeFileList({ version: 3, entries: [{ kind: 'file', path: 'data/x', size: 2 << 20, stored: 'data/x', stored_size: 2 << 20, crc32c: '01020304', blocks: '01020304' }] });
  assert.throws(() => parseFileList({ ...info, catalog_sha256: short.sha256 }, Buffer.from(short.bytes)), /block checksums do not cover the stored size/);
  // a repository written by the first format: refused with what to do
  const old = Buffer.from(JSON.stringify({ id: '20250101T000000F', type: 'full', parent: null, node: 'n', start_time: at(1), stop_time: at(2), start_lsn: '0/2000028', stop_lsn: '0/2000100', timeline: 1, size_bytes: 1, stored_bytes: 1, compression: 'none', pg_version: '17', system_identifier: '1' }));
  assert.throws(() => parseMarker('20250101T000000F', old), (e: unknown) => e instanceof PgmError && e.code === 'backup.unsupported' && /written by an earlier pgmaestro \(repository format 1/.test(e.message) && /take a new full backup/.test(e.hint ?? ''));
});

test('crc32c of two parts combines into the crc32c of the whole', () => {
  const a = Buffer.from('the quick brown fox '.repeat(1000));
  const b = Buffer.from('jumps over the lazy dog'.repeat(777));
  assert.equal(crc32cCombine(crc32c(a), crc32c(b), b.length), crc32c(Buffer.concat([a, b])));
});
