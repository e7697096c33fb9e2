import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planExpiry } from '../../src/backup/retention.js';
import type { BackupInfo } from '../../src/backup/types.js';
import { planRestore } from '../../src/restore/plan.js';
import { PgmError } from '../../src/errors.js';

const DAY = 86400_000;
const t0 = Date.parse('2026-01-01T01:00:00Z');
let lsn = 0x1000000;

/** A backup taken `day` days after t0, lasting ten minutes. */
function b(id: string, type: BackupInfo['type'], day: number, parent: string | null = null): BackupInfo {
  const start = new Date(t0 + day * DAY);
  const stop = new Date(start.getTime() + 600_000);
  lsn += 0x1000000;
  return {
    id, type, parent, node: 'node2', start_time: start.toISOString(), stop_time: stop.toISOString(),
    start_lsn: type === 'logical' ? null : `0/${lsn.toString(16).toUpperCase()}`, stop_lsn: type === 'logical' ? null : `0/${(lsn + 0x100).toString(16).toUpperCase()}`,
    timeline: type === 'logical' ? null : 1, size_bytes: 1, stored_bytes: 1, compression: 'none', pg_version: '18.4', system_identifier: '1', catalog_sha256: '', manifest_sha256: null, checksum: '',
  };
}

/** Weekly fulls on days 0, 7, 14, ..., daily incrementals in between, chained. */
function policy(weeks: number): BackupInfo[] {
  const out: BackupInfo[] = [];
  for (let d = 0; d < weeks * 7; d++) {
    const prev = out[out.length - 1];
    out.push(d % 7 === 0 ? b(`F${d}`, 'full', d) : b(`I${d}`, 'incr', d, prev.id));
  }
  return out;
}

test('a 21-day window keeps the full before the window start, its incrementals up to the anchor, and everything after', () => {
  const backups = policy(6); // days 0..41
  const now = new Date(t0 + 41 * DAY + 3600_000);
  const plan = planExpiry(backups, now, 21 * DAY);
  // the window starts on day 20 at 02:00; I20 (stopped 01:10 that day) is the newest backup before it: the anchor
  assert.equal(plan.windowStart, new Date(now.getTime() - 21 * DAY).toISOString());
  assert.ok(plan.keep.includes('I20'), 'the anchor is kept');
  for (const id of ['F14', 'I15', 'I16', 'I17', 'I18', 'I19']) assert.ok(plan.keep.includes(id), `${id} (ancestor of the anchor) is kept`);
  for (const id of ['F0', 'I1', 'I6', 'F7', 'I13']) assert.ok(plan.remove.includes(id), `${id} is removed`);
  for (const x of backups.filter((y) => Date.parse(y.stop_time) > Date.parse(plan.windowStart))) assert.ok(plan.keep.includes(x.id));
  assert.equal(plan.walKeepFrom, backups.find((x) => x.id === 'F14')!.start_lsn);
  assert.deepEqual([...plan.keep, ...plan.remove].sort(), backups.map((x) => x.id).sort());
});

test('every moment of the window stays restorable after expiry, and nothing older is', () => {
  const backups = policy(6);
  const now = new Date(t0 + 41 * DAY + 3600_000);
  const plan = planExpiry(backups, now, 21 * DAY);
  const kept = backups.filter((x) => plan.keep.includes(x.id));
  const archive = { endLsn: null, endTime: now.toISOString() };
  for (let h = 0; h <= 21 * 24; h += 5) {
    const t = new Date(Date.parse(plan.windowStart) + h * 3600_000);
    if (t > now) break;
    const r = planRestore(kept, archive, { kind: 'time', time: t });
    assert.equal(r.chain[0].type, 'full');
    assert.ok(Date.parse(r.chain[r.chain.length - 1].stop_time) <= t.getTime());
    for (const m of r.chain) assert.ok(plan.keep.includes(m.id));
  }
  const oldestKept = Math.min(...kept.map((x) => Date.parse(x.stop_time)));
  assert.throws(() => planRestore(kept, archive, { kind: 'time', time: new Date(oldestKept - 60_000) }), (e: unknown) => e instanceof PgmError && e.code === 'restore.out_of_range');
});

test('a repository younger than the window keeps everything', () => {
  const backups = policy(2);
  const plan = planExpiry(backups, new Date(t0 + 14 * DAY), 21 * DAY);
  assert.deepEqual(plan.remove, []);
  assert.equal(plan.walKeepFrom, backups[0].start_lsn);
});

test('logical backups are kept while inside the window only; cold backups anchor like fulls', () => {
  const backups = [b('C0', 'cold', 0), b('L1', 'logical', 1), b('F8', 'full', 8), b('L9', 'logical', 9), b('C20', 'cold', 20), b('L25', 'logical', 25)];
  const plan = planExpiry(backups, new Date(t0 + 30 * DAY), 21 * DAY); // window starts day 9
  assert.deepEqual([...plan.keep].sort(), ['C20', 'F8', 'L25', 'L9']);
  assert.ok(plan.remove.includes('C0') && plan.remove.includes('L1'));
});

test('restore planning: the chain for a time, an LSN, the latest; refusals name the reachable range', () => {
  const backups = policy(2);
  const archive = { endLsn: '1/0', endTime: new Date(t0 + 15 * DAY).toISOString() };
  const r = planRestore(backups, archive, { kind: 'time', time: new Date(t0 + 9 * DAY + 7200_000) });
  assert.deepEqual(r.chain.map((x) => x.id), ['F7', 'I8', 'I9']);
  const latest = planRestore(backups, archive, { kind: 'latest' });
  assert.deepEqual(latest.chain.map((x) => x.id), ['F7', 'I8', 'I9', 'I10', 'I11', 'I12', 'I13']);
  const byLsn = planRestore(backups, archive, { kind: 'lsn', lsn: backups[3].stop_lsn! });
  assert.deepEqual(byLsn.chain.map((x) => x.id), ['F0', 'I1', 'I2', 'I3']);
  assert.throws(
    () => planRestore(backups, archive, { kind: 'time', time: new Date(t0 - DAY) }),
    (e: unknown) => e instanceof PgmError && /outside what the repository can reach, which is from 2026-01-01T01:10:00.000Z/.test(e.message),
  );
  assert.throws(() => planRestore(backups, archive, { kind: 'time', time: new Date(t0 + 20 * DAY) }), /outside what the repository can reach/);
  assert.throws(() => planRestore([], archive, { kind: 'latest' }), /no physical backup/);
  const broken = backups.filter((x) => x.id !== 'I8');
  assert.throws(() => planRestore(broken, archive, { kind: 'time', time: new Date(t0 + 9 * DAY + 7200_000) }), /needs its parent I8/);
});
