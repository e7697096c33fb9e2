import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { BackupInfo } from '../../src/backup/types.js';
import { backupTimeline, duration, type TimelineInputs } from '../../src/web/timeline.js';
import { createdAt } from '../../src/web/view.js';

const MIN = 60_000;
const DAY = 86400_000;
const NOW = Date.parse('2026-03-01T12:00:00Z');

function b(id: string, type: BackupInfo['type'], startMs: number, parent: string | null = null): BackupInfo {
  return {
    id, type, parent, node: 'node2', start_time: new Date(startMs).toISOString(), stop_time: new Date(startMs + 2 * MIN).toISOString(),
    start_lsn: type === 'logical' ? null : '0/2000028', stop_lsn: type === 'logical' ? null : '0/2000100', timeline: 1,
    size_bytes: 100, stored_bytes: 90, compression: 'none', pg_version: '18.4', system_identifier: null,
  };
}

function inputs(over: Partial<TimelineInputs>): TimelineInputs {
  return { backups: [], walArchivedAt: [], walArchive: true, retentionMs: 21 * DAY, retention: '21d', now: new Date(NOW), createdAt: null, analysis: null, ...over };
}

test('nothing backed up: the whole window is unrestorable and nothing is drawn compressed', () => {
  const t = backupTimeline(inputs({}));
  assert.equal(t.marks.length, 0);
  assert.equal(t.gap, null);
  assert.deepEqual(t.spans.map((s) => [s.state, s.x0, s.x1]), [['unrestorable', 0, 1]]);
  assert.equal(t.fullyRestorable, false);
  assert.equal(t.restorable, null);
  assert.match(t.sentence, /^0 full, 0 incremental; nothing can be restored yet \(no physical backup yet\)$/);
});

test('a young cluster: the window starts at its creation, the time before is compressed, marks are in order and apart', () => {
  const created = NOW - 30 * MIN;
  const full = b('F', 'full', NOW - 20 * MIN);
  const incr = b('I', 'incr', NOW - 10 * MIN, 'F');
  const t = backupTimeline(inputs({ backups: [incr, full], createdAt: new Date(created).toISOString(), walArchivedAt: [new Date(NOW - 16 * MIN).toISOString(), new Date(NOW - 15 * MIN).toISOString()] }));
  assert.equal(t.windowStart, new Date(created).toISOString());
  assert.equal(t.windowStartsAt, 'created');
  assert.equal(t.gap?.kind, 'prehistory');
  assert.match(t.gap!.label, /^20 d 23 h before the cluster existed$/);
  assert.deepEqual(t.marks.map((m) => [m.id, m.type]), [['F', 'full'], ['I', 'incr']]);
  const [f, i] = t.marks;
  assert.ok(t.gap!.x1 <= t.xWindowStart && t.xWindowStart < f.x && f.x < i.x && i.x < 1, JSON.stringify({ gap: t.gap, w: t.xWindowStart, f: f.x, i: i.x }));
  assert.ok(i.x - f.x > 0.2, 'ten minutes apart on a half-hour scale are far apart on the bar');
  // created -> full's end: no backup that old; full's end -> the newest archived WAL: restorable; WAL after it
  // is not archived yet, but the incremental's own end is restorable; then pending again
  assert.deepEqual(t.spans.map((s) => s.state), ['unrestorable', 'restorable', 'pending', 'restorable', 'pending']);
  assert.equal(t.restorable?.from, full.stop_time);
  assert.equal(t.restorable?.to, incr.stop_time);
  assert.equal(t.fullyRestorable, false, 'the half hour before the first backup cannot be restored');
  assert.match(t.sentence, /^1 full, 1 incremental; restorable from .*; not restorable: .* \(no backup is that old: the oldest, F, is consistent from /);
  assert.equal(t.wal?.from, full.start_time);
});

test('steady state: an anchor full before the window, WAL to a minute ago: the whole window is restorable, the tail is pending', () => {
  const anchor = b('F0', 'full', NOW - 22 * DAY);
  const backups = [anchor, b('I1', 'incr', NOW - 20 * DAY, 'F0'), b('F7', 'full', NOW - 15 * DAY), b('I8', 'incr', NOW - DAY, 'F7')];
  const t = backupTimeline(inputs({ backups, walArchivedAt: [new Date(NOW - MIN).toISOString()], createdAt: new Date(NOW - 100 * DAY).toISOString() }));
  assert.equal(t.gap, null);
  assert.equal(t.windowStartsAt, 'retention');
  assert.ok(t.marks[0].x < t.xWindowStart, 'the anchor lies before the window start');
  assert.deepEqual(t.spans.map((s) => s.state), ['restorable', 'pending']);
  assert.equal(t.fullyRestorable, true);
  assert.match(t.sentence, /: the whole 21d window$/);
});

test('an old cluster whose backups are all recent: the empty part of the window is compressed and unrestorable', () => {
  const t = backupTimeline(inputs({ backups: [b('F', 'full', NOW - 2 * 3600_000)], walArchivedAt: [new Date(NOW - MIN).toISOString()], createdAt: new Date(NOW - 400 * DAY).toISOString() }));
  assert.equal(t.gap?.kind, 'empty');
  assert.match(t.gap!.label, /without a backup$/);
  assert.equal(t.spans[0].state, 'unrestorable');
  assert.equal(t.spans[0].x0, 0);
  assert.equal(t.fullyRestorable, false);
});

test('without WAL archiving only the backups\' own moments can be restored', () => {
  const t = backupTimeline(inputs({ walArchive: false, backups: [b('F', 'full', NOW - 3 * DAY), b('G', 'full', NOW - DAY)], retentionMs: 2 * DAY, retention: '2d' }));
  // F ends before the window; without WAL nothing after its end is reachable until G's end
  assert.deepEqual(t.spans.map((s) => s.state), ['unrestorable', 'restorable', 'unrestorable']);
  assert.equal(t.spans[0].from, t.windowStart);
  assert.equal(t.spans[1].from, t.spans[1].to, 'a moment, not a stretch');
});

test('a recovery analysis replaces the derived ranges', () => {
  const full = b('F', 'full', NOW - 3 * DAY);
  const gapFrom = new Date(NOW - 2 * DAY).toISOString();
  const gapTo = new Date(NOW - DAY).toISOString();
  const analysis = {
    ranges: [
      { from: full.stop_time, to: gapFrom, state: 'restorable' as const, reason: 'ok' },
      { from: gapFrom, to: gapTo, state: 'unrestorable' as const, reason: 'WAL segment 000000010000000000000007 is missing' },
      { from: gapTo, to: new Date(NOW).toISOString(), state: 'restorable' as const, reason: 'ok' },
    ],
    walGaps: [{ from: gapFrom, to: gapTo, missing: ['000000010000000000000007'] }],
  };
  const t = backupTimeline(inputs({ backups: [full], analysis, retentionMs: 3 * DAY, retention: '3d' }));
  assert.equal(t.gapsAnalysed, true);
  assert.deepEqual(t.spans.map((s) => s.state), ['restorable', 'unrestorable', 'restorable']);
  assert.equal(t.fullyRestorable, false);
  assert.match(t.sentence, /WAL segment 000000010000000000000007 is missing/);
});

test('logical backups are not marks; positions stay within 0..1', () => {
  const t = backupTimeline(inputs({ backups: [b('L', 'logical', NOW - MIN), b('F', 'full', NOW - 40 * DAY)] }));
  assert.deepEqual(t.marks.map((m) => m.id), ['F']);
  for (const s of t.spans) assert.ok(s.x0 >= 0 && s.x1 <= 1 && s.x0 <= s.x1);
});

test('creation time from the system identifier; durations for humans', () => {
  // 7443016358391193642 >> 32 = 1732962289 = 2024-11-30T10:24:49Z
  assert.equal(createdAt('7443016358391193642'), '2024-11-30T10:24:49.000Z');
  assert.equal(createdAt(null), null);
  assert.equal(createdAt('garbage'), null);
  assert.equal(duration(45_000), '45 s');
  assert.equal(duration(3 * 3600_000 + 12 * MIN), '3 h 12 min');
  assert.equal(duration(20 * DAY + 23 * 3600_000), '20 d 23 h');
});
