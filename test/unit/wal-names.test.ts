import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLsn, walFileName } from '../../src/postgres/lsn.js';
import {
  floorToSegment,
  historyName,
  historyTimeline,
  isHistoryName,
  isPartialName,
  isSegmentName,
  isWalFileName,
  parseHistory,
  parseSegmentName,
  parseSizeSetting,
  segmentName,
  timelineOfSegment,
  timelineSpans,
} from '../../src/backup/wal-names.js';

const MiB = 1024 * 1024;

test('segment names split the segment number at 4 GiB of WAL, for every segment size', () => {
  assert.equal(segmentName(1, 3n, 16 * MiB), '000000010000000000000003');
  assert.equal(segmentName(1, 0xffn, 16 * MiB), '0000000100000000000000FF');
  assert.equal(segmentName(1, 0x100n, 16 * MiB), '000000010000000100000000');
  assert.equal(segmentName(2, 0x1000n, 1 * MiB), '000000020000000100000000');
  assert.equal(segmentName(0xa, 5n, 1024 * MiB), '0000000A0000000100000001');
  for (const size of [1 * MiB, 16 * MiB, 64 * MiB, 1024 * MiB]) {
    for (const segno of [0n, 1n, 0xfen, 0xffn, 0x100n, 0x12345n]) {
      const name = segmentName(7, segno, size);
      assert.deepEqual(parseSegmentName(name, size), { timeline: 7, segno });
      assert.equal(name, walFileName(7, segno * BigInt(size), size), 'agrees with postgres/lsn walFileName');
    }
  }
});

test('a segment name the segment size cannot produce is not a segment of that size', () => {
  assert.equal(parseSegmentName('000000010000000000000100', 16 * MiB), null); // 16 MiB: at most 0xFF per log id
  assert.deepEqual(parseSegmentName('000000010000000000000100', 1 * MiB), { timeline: 1, segno: 0x100n });
  assert.equal(parseSegmentName('00000001000000000000000g', 16 * MiB), null);
  assert.throws(() => segmentName(1, 1n, 3 * MiB), RangeError);
});

test('the archive knows segments, .partial segments and history files, nothing else', () => {
  assert.ok(isSegmentName('000000010000000000000003'));
  assert.ok(!isSegmentName('000000010000000000000003.partial'));
  assert.ok(isPartialName('000000010000000000000003.partial'));
  assert.ok(isHistoryName('00000002.history'));
  assert.ok(!isHistoryName('00000000.history'));
  assert.equal(historyName(2), '00000002.history');
  assert.equal(historyName(26), '0000001A.history');
  assert.equal(historyTimeline('0000001A.history'), 26);
  assert.equal(historyTimeline('000000010000000000000003'), null);
  for (const bad of ['000000010000000000000003.json', '000000010000000000000003.gz', 'backup_label', '00000001.history.tmp-12', '00000000000000000000003']) {
    assert.ok(!isWalFileName(bad), bad);
  }
});

test('history files parse, with comments and blank lines, in ascending order only', () => {
  const h = '1\t0/3000060\tno recovery target specified\n\n# a comment\n2\t1/A0000000\tbefore 2024-01-01 00:00:00+00\n';
  assert.deepEqual(parseHistory(h), [
    { timeline: 1, end: 0x3000060n },
    { timeline: 2, end: 0x1a0000000n },
  ]);
  assert.deepEqual(parseHistory(''), []);
  assert.deepEqual(parseHistory('1\t0/5000000'), [{ timeline: 1, end: 0x5000000n }]);
  assert.throws(() => parseHistory('one\t0/5000000\n'));
  assert.throws(() => parseHistory('2\t0/5000000\n1\t0/6000000\n'));
});

test('timeline spans chain the ancestors; the file of a segment is the newest timeline begun in or before it', () => {
  assert.deepEqual(timelineSpans(1, null), [{ timeline: 1, begin: 0n, end: null }]);
  const spans = timelineSpans(3, '1\t0/5800000\treason\n2\t0/7000000\treason\n');
  assert.deepEqual(spans, [
    { timeline: 1, begin: 0n, end: 0x5800000n },
    { timeline: 2, begin: 0x5800000n, end: 0x7000000n },
    { timeline: 3, begin: 0x7000000n, end: null },
  ]);
  const tli = (n: bigint) => timelineOfSegment(spans, n, 16 * MiB);
  assert.deepEqual([0n, 4n, 5n, 6n, 7n, 8n].map(tli), [1, 1, 2, 2, 3, 3]); // switch inside 5 → 2's file; on the 7 boundary → 3's
  const same = timelineSpans(3, '1\t0/5800000\n2\t0/5900000\n'); // two switches inside one segment
  assert.equal(timelineOfSegment(same, 5n, 16 * MiB), 3);
  assert.equal(timelineOfSegment(same, 4n, 16 * MiB), 1);
  assert.throws(() => timelineSpans(2, '2\t0/5000000\n'), /ancestor/);
});

test('sizes as SHOW prints them', () => {
  assert.equal(parseSizeSetting('16MB'), 16 * MiB);
  assert.equal(parseSizeSetting('1GB'), 1024 * MiB);
  assert.equal(parseSizeSetting('8192'), 8192);
  assert.equal(parseSizeSetting('64kB'), 65536);
  assert.throws(() => parseSizeSetting('16 furlongs'));
  assert.equal(floorToSegment(parseLsn('0/5800060'), 16 * MiB), 0x5000000n);
  assert.equal(floorToSegment(parseLsn('0/6000000'), 16 * MiB), 0x6000000n);
});
