import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkLabelChain, combinePlan, describePlan, parseBackupLabel, planReconstruction, rewriteBackupLabel } from '../../src/restore/combine.js';
import type { OlderVersion } from '../../src/restore/combine.js';

/**
 * Source numbers in plans: 0 = the newest incremental, k = the k-th older
 * backup (1 = the one just before the newest), 'zero' = zero-filled.
 */
const plan = (newest: { T: number; blocks?: number[] }, ...older: OlderVersion[]) => {
  const p = planReconstruction({ truncationBlockLength: newest.T, blocks: newest.blocks ?? [] }, older);
  assert.equal(p.sources.length, p.lengthBlocks);
  return describePlan(p);
};
const inc = (T: number, blocks: number[] = []): OlderVersion => ({ kind: 'incremental', truncationBlockLength: T, blocks });
const full = (sizeBlocks?: number): OlderVersion => ({ kind: 'full', sizeBlocks });

test('plan, one incremental: unchanged, changed blocks, extended, shrunk', () => {
  assert.equal(plan({ T: 5 }, full(5)), '0-4:1', 'nothing changed: all from the full');
  assert.equal(plan({ T: 5, blocks: [1, 3] }, full(5)), '0:1 1:0 2:1 3:0 4:1');
  assert.equal(plan({ T: 5, blocks: [0, 1, 2, 3, 4] }, full(5)), '0-4:0');
  assert.equal(plan({ T: 7, blocks: [5, 6] }, full(5)), '0-4:1 5-6:0', 'relation extended');
  assert.equal(plan({ T: 8, blocks: [7] }, full(5)), '0-4:1 5-6:zero 7:0', 'extended; blocks 5-6 never WAL-logged are zeros');
  assert.equal(plan({ T: 3 }, full(10)), '0-2:1', 'truncated: length is the truncation length');
  assert.equal(plan({ T: 3, blocks: [5] }, full(10)), '0-2:1 3-4:zero 5:0', 'block beyond the truncation length extends the file; the gap is zeros, not the full file');
  assert.equal(plan({ T: 4 }, full(2)), '0-1:1 2-3:zero', 'full file shorter than the truncation length');
  assert.equal(plan({ T: 4 }, full()), '0-3:1', 'full file of unknown size supplies everything below the limit');
  assert.equal(plan({ T: 0 }, full(3)), '', 'truncated to nothing');
});

test('plan, chains of 2 and 3 incrementals: newest wins, then walk newest to oldest', () => {
  assert.equal(plan({ T: 6, blocks: [2] }, inc(6, [1, 2, 5]), full(6)), '0:2 1:1 2:0 3-4:2 5:1');
  assert.equal(plan({ T: 4, blocks: [0] }, inc(4, [3]), inc(4, [1, 3]), full(4)), '0:0 1:2 2:3 3:1');
  assert.equal(plan({ T: 4 }, inc(4), inc(4), full(4)), '0-3:3', 'incrementals without blocks');
  assert.equal(plan({ T: 6, blocks: [5] }, inc(5, [4]), inc(4, [3]), full(3)), '0-2:3 3:2 4:1 5:0', 'extended a block per backup');
});

test('plan, truncation shrink then regrow: nothing at or beyond an intermediate truncation length comes from older backups', () => {
  // full: 10 blocks; I1: truncated to 4; newest: regrown to 8, blocks 4, 5, 7 written, 6 extended without WAL.
  assert.equal(plan({ T: 8, blocks: [4, 5, 7] }, inc(4), full(10)), '0-3:2 4-5:0 6:zero 7:0');
  // Same, the regrowth written in I1 itself past its truncation length.
  assert.equal(plan({ T: 6 }, inc(2, [3]), full(10)), '0-1:2 2:zero 3:1 4-5:zero');
  // Three incrementals: shrink to 2 in I1, regrow to 5 in I2, nothing in the newest.
  assert.equal(plan({ T: 5 }, inc(5, [2, 3]), inc(2), full(8)), '0-1:3 2-3:1 4:zero');
  // The smallest truncation length along the way bounds everything older than it.
  assert.equal(plan({ T: 9 }, inc(7, [6]), inc(3, [2]), inc(8, [5]), full(9)), '0-1:4 2:2 3-5:zero 6:1 7-8:zero');
  // An older incremental's blocks beyond the newest truncation length are ignored.
  assert.equal(plan({ T: 2 }, inc(6, [0, 3, 5]), full(6)), '0:1 1:2');
});

test('plan, file new in an intermediate backup (whole there): the walk ends at it', () => {
  assert.equal(plan({ T: 4, blocks: [1] }, full(4), undefined), '0:1 1:0 2-3:1', 'absent before it: irrelevant');
  assert.equal(plan({ T: 4, blocks: [1] }, inc(4, [2]), full(4), inc(9, [0])), '0:2 1:0 2:1 3:2', 'older versions after a whole one are ignored');
});

test('plan, broken chains are backup.corrupt', () => {
  const corrupt = (re: RegExp) => ({ code: 'backup.corrupt', message: re });
  assert.throws(() => plan({ T: 3 }, undefined, full(3)), corrupt(/older backup #1 has neither the file nor an INCREMENTAL version/));
  assert.throws(() => plan({ T: 3 }, inc(3), undefined), corrupt(/older backup #2/));
  assert.throws(() => plan({ T: 3 }, inc(3)), corrupt(/no older backup has the whole file/));
  assert.throws(() => plan({ T: 3 }), corrupt(/no older backup has the whole file/));
});

test('combinePlan: the newest backup decides the files; INCREMENTAL ones are reconstructed, dropped ones gone', () => {
  const full = { id: 'F', files: new Set(['backup_label', 'backup_manifest', 'PG_VERSION', 'base/5/100', 'base/5/200', 'base/5/300', 'global/1262']) };
  const i1 = { id: 'I1', files: new Set(['backup_label', 'backup_manifest', 'PG_VERSION', 'base/5/INCREMENTAL.100', 'base/5/INCREMENTAL.200', 'global/INCREMENTAL.1262', 'base/5/400']) };
  const i2 = {
    id: 'I2',
    files: new Set(['backup_manifest', 'backup_label', 'PG_VERSION', 'base/5/INCREMENTAL.100', 'base/5/200', 'global/INCREMENTAL.1262', 'base/5/INCREMENTAL.400', 'base/9/1', 'pg_wal/000000010000000000000005']),
  };
  assert.deepEqual(combinePlan([full, i1, i2]), {
    steps: [
      { kind: 'copy', rel: 'PG_VERSION' },
      { kind: 'label', rel: 'backup_label' },
      { kind: 'reconstruct', rel: 'base/5/100', from: 'base/5/INCREMENTAL.100' },
      { kind: 'copy', rel: 'base/5/200' },
      { kind: 'reconstruct', rel: 'base/5/400', from: 'base/5/INCREMENTAL.400' },
      { kind: 'copy', rel: 'base/9/1' },
      { kind: 'reconstruct', rel: 'global/1262', from: 'global/INCREMENTAL.1262' },
      { kind: 'copy', rel: 'pg_wal/000000010000000000000005' },
    ],
    omitted: ['backup_manifest'],
  });
  assert.ok(!combinePlan([full, i1, i2]).steps.some((s) => s.rel === 'base/5/300'), 'dropped before I1: absent');
  assert.deepEqual(combinePlan([full]).steps.filter((s) => s.kind !== 'copy'), [{ kind: 'label', rel: 'backup_label' }], 'a lone full backup is copied');
  assert.throws(() => combinePlan([full, { id: 'X', files: new Set(['base/5/1', 'base/5/INCREMENTAL.1']) }]), { code: 'backup.corrupt', message: /backup X has both base\/5\/1 and base\/5\/INCREMENTAL\.1/ });
  assert.throws(() => combinePlan([]), { code: 'restore.failed' });
});

const LABEL = (start: string, tli: number, from?: [string, number]) =>
  [
    `START WAL LOCATION: ${start} (file 000000010000000000000004)`,
    'CHECKPOINT LOCATION: 0/4000080',
    'BACKUP METHOD: streamed',
    'BACKUP FROM: primary',
    'START TIME: 2025-05-01 10:00:00 UTC',
    "LABEL: nightly: it's",
    `START TIMELINE: ${tli}`,
    ...(from ? [`INCREMENTAL FROM LSN: ${from[0]}`, `INCREMENTAL FROM TLI: ${from[1]}`] : []),
    '',
  ].join('\n');

test('rewriteBackupLabel drops exactly the two INCREMENTAL FROM lines', () => {
  assert.equal(rewriteBackupLabel(LABEL('0/6000028', 2, ['0/4000028', 1])), LABEL('0/6000028', 2));
  assert.equal(rewriteBackupLabel(LABEL('0/6000028', 1)), LABEL('0/6000028', 1));
});

test('parseBackupLabel reads start and INCREMENTAL FROM; rejects damaged labels', () => {
  assert.deepEqual(parseBackupLabel(LABEL('1/6000028', 2, ['0/4000028', 1]), 'I'), { startLsn: 0x106000028n, startTimeline: 2, incrementalFrom: { lsn: 0x4000028n, timeline: 1 } });
  assert.deepEqual(parseBackupLabel(LABEL('0/4000028', 1), 'F').incrementalFrom, null);
  const bad = (text: string, re: RegExp) => assert.throws(() => parseBackupLabel(text, 'backup Z'), { code: 'backup.corrupt', message: re });
  bad('LABEL: x\n', /backup_label of backup Z has no "START WAL LOCATION" line/);
  bad(LABEL('0/4000028', 1).replace('START TIMELINE: 1\n', ''), /no "START TIMELINE" line/);
  bad(LABEL('zz', 1), /"START WAL LOCATION: zz \(file/);
  bad(LABEL('0/4000028', 0), /"START TIMELINE: 0", which is not a timeline/);
  bad(LABEL('0/6000028', 1, ['0/4000028', 1]).replace(/INCREMENTAL FROM TLI.*\n/, ''), /only one of the INCREMENTAL FROM LSN and TLI lines/);
});

test('checkLabelChain: each incremental starts where its parent did; errors name both backups', () => {
  const F = { id: 'F', label: parseBackupLabel(LABEL('0/4000028', 1), 'F') };
  const I1 = { id: 'I1', label: parseBackupLabel(LABEL('0/6000028', 1, ['0/4000028', 1]), 'I1') };
  const I2 = { id: 'I2', label: parseBackupLabel(LABEL('0/8000028', 2, ['0/6000028', 1]), 'I2') };
  checkLabelChain([F]);
  checkLabelChain([F, I1, I2]);
  const broken = (re: RegExp, backup: string, parent?: string) => (err: { code: string; message: string; hint: string; data: Record<string, unknown> }) => {
    assert.equal(err.code, 'backup.corrupt');
    assert.match(err.message, re);
    assert.ok(err.hint);
    assert.equal(err.data.backup, backup);
    assert.equal(err.data.parent, parent);
    return true;
  };
  assert.throws(() => checkLabelChain([F, I2]), broken(/backup I2 is incremental from 0\/6000028 on timeline 1, but backup F before it started at 0\/4000028 on timeline 1/, 'I2', 'F'));
  const wrongTli = { id: 'I1b', label: { ...I1.label, incrementalFrom: { lsn: 0x4000028n, timeline: 2 } } };
  assert.throws(() => checkLabelChain([F, wrongTli]), broken(/on timeline 2, but backup F .* on timeline 1/, 'I1b', 'F'));
  assert.throws(() => checkLabelChain([I1, I2]), broken(/backup I1, the oldest of the chain, is incremental/, 'I1'));
  assert.throws(() => checkLabelChain([F, I1, { id: 'F2', label: F.label }]), broken(/backup F2 is a full backup but follows backup I1/, 'F2', 'I1'));
});
