import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLsn } from '../../src/postgres/lsn.js';
import { checkContinuity, resumePoint } from '../../src/backup/wal-continuity.js';
import { historyName, segmentName, timelineSpans } from '../../src/backup/wal-names.js';
import { PgmError } from '../../src/errors.js';

const SZ = 16 * 1024 * 1024;
const seg = (tli: number, n: number) => segmentName(tli, BigInt(n), SZ);
const segs = (tli: number, from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => seg(tli, from + i));
const at = (lsn: string, timeline = 1) => ({ lsn: parseLsn(lsn), timeline });
const none = new Map<number, string>();

test('one timeline without gaps: nothing missing, first and last named', () => {
  const r = checkContinuity(segs(1, 3, 7), at('0/3000000'), SZ, none);
  assert.deepEqual(r, { missing: [], first: seg(1, 3), last: seg(1, 7), timeline: 1 });
});

test('every hole between the start and the newest segment is named, in WAL order', () => {
  const entries = [seg(1, 3), seg(1, 4), seg(1, 7), seg(1, 9)];
  assert.deepEqual(checkContinuity(entries, at('0/3000000'), SZ, none).missing, [seg(1, 5), seg(1, 6), seg(1, 8)]);
  // a start in the middle of a segment needs that segment
  assert.deepEqual(checkContinuity(entries, at('0/2FFFFFF'), SZ, none).missing, [seg(1, 2), seg(1, 5), seg(1, 6), seg(1, 8)]);
  assert.deepEqual(checkContinuity(entries, at('0/7000060'), SZ, none).missing, [seg(1, 8)]);
});

test('nothing archived from the start on: no range, no gap', () => {
  assert.deepEqual(checkContinuity([], at('0/3000000'), SZ, none), { missing: [], first: null, last: null, timeline: 1 });
  assert.deepEqual(checkContinuity(segs(1, 3, 5), at('0/9000000'), SZ, none), { missing: [], first: null, last: null, timeline: 1 });
});

test('continuity crosses the 4 GiB boundary of segment names', () => {
  const entries = segs(1, 0xfd, 0x101);
  assert.equal(entries[3], '000000010000000100000000');
  assert.deepEqual(checkContinuity(entries, at('0/FD000000'), SZ, none).missing, []);
  assert.deepEqual(checkContinuity(entries.filter((n) => n !== '000000010000000100000000'), at('0/FD000000'), SZ, none).missing, ['000000010000000100000000']);
});

test('other files in the archive (.partial, records, unknown) are ignored', () => {
  const entries = [...segs(1, 3, 5), `${seg(1, 6)}.partial`, 'junk', `${seg(1, 4)}.json`];
  assert.deepEqual(checkContinuity(entries, at('0/3000000'), SZ, none), { missing: [], first: seg(1, 3), last: seg(1, 5), timeline: 1 });
});

const H2 = new Map([[2, '1\t0/5800000\tno recovery target specified\n']]);

test('a switch inside a segment: that segment comes from the new timeline; the old one is kept as .partial only', () => {
  const entries = [...segs(1, 3, 4), `${seg(1, 5)}.partial`, historyName(2), ...segs(2, 5, 7)];
  assert.deepEqual(checkContinuity(entries, at('0/3000000'), SZ, H2), { missing: [], first: seg(1, 3), last: seg(2, 7), timeline: 2 });
  // the old timeline's copy of segment 5 does not stand in for the new one
  const oldOnly = [...segs(1, 3, 5), historyName(2), ...segs(2, 6, 7)];
  assert.deepEqual(checkContinuity(oldOnly, at('0/3000000'), SZ, H2).missing, [seg(2, 5)]);
});

test('a switch on a segment boundary: the old timeline ends with a whole segment', () => {
  const h = new Map([[2, '1\t0/6000000\tx\n']]);
  const entries = [...segs(1, 3, 5), historyName(2), ...segs(2, 6, 8)];
  assert.deepEqual(checkContinuity(entries, at('0/3000000'), SZ, h).missing, []);
  const wrong = [...segs(1, 3, 6), historyName(2), ...segs(2, 7, 8)];
  assert.deepEqual(checkContinuity(wrong, at('0/3000000'), SZ, h).missing, [seg(2, 6)]);
});

test('the history file of every timeline up to the newest is required', () => {
  const entries = [...segs(1, 3, 4), ...segs(2, 5, 7)];
  assert.deepEqual(checkContinuity(entries, at('0/3000000'), SZ, H2).missing, [historyName(2)]);
  // a newest timeline whose history content is unknown cannot be followed at all
  assert.deepEqual(checkContinuity(entries, at('0/3000000'), SZ, none), { missing: [historyName(2)], first: null, last: null, timeline: 2 });
  // 1 → 3 with 2 never on the path: recovery still probes 00000002.history
  const h3 = new Map([[3, '1\t0/5800000\tx\n']]);
  const e3 = [...segs(1, 3, 4), historyName(3), ...segs(3, 5, 6)];
  assert.deepEqual(checkContinuity(e3, at('0/3000000'), SZ, h3).missing, [historyName(2)]);
  assert.deepEqual(checkContinuity([...e3, historyName(2)], at('0/3000000'), SZ, h3).missing, []);
});

test('two switches inside one segment: the newest timeline holds it; the middle one has no segment', () => {
  const h = new Map([
    [2, '1\t0/5800000\tx\n'],
    [3, '1\t0/5800000\tx\n2\t0/5900000\tx\n'],
  ]);
  const entries = [...segs(1, 3, 4), historyName(2), historyName(3), ...segs(3, 5, 6)];
  assert.deepEqual(checkContinuity(entries, at('0/3000000'), SZ, h), { missing: [], first: seg(1, 3), last: seg(3, 6), timeline: 3 });
});

test('an abandoned branch (the old timeline past its switch) is not on the path', () => {
  const h = new Map([[2, '1\t0/8100000\tx\n']]);
  const entries = [...segs(1, 3, 10), historyName(2), ...segs(2, 8, 9), seg(2, 11)];
  const r = checkContinuity(entries, at('0/3000000'), SZ, h);
  assert.deepEqual(r.missing, [seg(2, 10)]);
  assert.equal(r.last, seg(2, 11));
  // newest timeline known only by its history: the branch's segments after the switch do not count
  const onlyHistory = [...segs(1, 3, 10), historyName(2)];
  assert.deepEqual(checkContinuity(onlyHistory, at('0/3000000'), SZ, h), { missing: [], first: seg(1, 3), last: seg(1, 7), timeline: 2 });
});

test('a start that is not on the newest history is refused: nothing can make it reach the newest timeline', () => {
  const h = new Map([[2, '1\t0/8100000\tx\n']]);
  const entries = [...segs(1, 3, 10), historyName(2), ...segs(2, 8, 9)];
  assert.throws(() => checkContinuity(entries, at('0/9000000'), SZ, h), (e: unknown) => e instanceof PgmError && e.code === 'backup.corrupt');
  // timeline 2 is a branch the newest timeline (3, from 1) does not descend from
  const h3 = new Map([...h, [3, '1\t0/8100000\tx\n']]);
  assert.throws(() => checkContinuity([...entries, historyName(3)], at('0/8200000', 2), SZ, h3), (e: unknown) => e instanceof PgmError && e.code === 'backup.corrupt');
  // a start on the new timeline at its beginning is fine
  assert.deepEqual(checkContinuity(entries, at('0/8100000', 2), SZ, h).missing, []);
  // exactly at the switch point on the old timeline too
  assert.deepEqual(checkContinuity(entries, at('0/8100000', 1), SZ, h).missing, []);
});

test('exhaustively, over random histories: the gaps are exactly the removed path segments, whatever the noise', () => {
  let seed = 42;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let round = 0; round < 500; round++) {
    // a history of 1–4 timelines, switching at random points (several may share a segment)
    const timelines = 1 + rnd(4);
    let lsn = BigInt(2 + rnd(4)) * BigInt(SZ);
    const lines: string[] = [];
    for (let t = 1; t < timelines; t++) {
      lsn += BigInt(rnd(3 * SZ));
      lines.push(`${t}\t${(lsn >> 32n).toString(16)}/${(lsn & 0xffffffffn).toString(16)}\tx`);
    }
    const histories = new Map<number, string>();
    for (let t = 2; t <= timelines; t++) histories.set(t, lines.slice(0, t - 1).join('\n') + '\n');
    const spans = timelineSpans(timelines, histories.get(timelines) ?? null);
    const startSeg = rnd(3);
    const lastSeg = Number(lsn / BigInt(SZ)) + 1 + rnd(4);
    const path = Array.from({ length: lastSeg - startSeg + 1 }, (_, i) => {
      const n = BigInt(startSeg + i);
      const tli = [...spans].reverse().find((s) => s.begin / BigInt(SZ) <= n)!.timeline;
      return segmentName(tli, n, SZ);
    });
    const removed = path.slice(0, -1).filter(() => rnd(5) === 0);
    const kept = path.filter((n) => !removed.includes(n));
    // noise: the old timelines' own copies past their ends, partials, and every history file
    const noise = spans.slice(0, -1).flatMap((s) => [segmentName(s.timeline, s.end! / BigInt(SZ) + 1n, SZ), `${segmentName(s.timeline, s.end! / BigInt(SZ), SZ)}.partial`]);
    const entries = [...kept, ...noise, ...[...histories.keys()].map(historyName)];
    const r = checkContinuity(entries, { lsn: BigInt(startSeg) * BigInt(SZ), timeline: spans.find((s) => s.begin / BigInt(SZ) <= BigInt(startSeg) && (s.end === null || s.end >= BigInt(startSeg) * BigInt(SZ)))!.timeline }, SZ, histories);
    assert.deepEqual(r.missing, removed, `round ${round}: ${lines.join(' | ')}`);
    assert.equal(r.last, path[path.length - 1]);
    assert.equal(r.timeline, timelines);
  }
});

test('resume: after the newest archived segment on the server history, else at the slot', () => {
  const one = timelineSpans(1, null);
  assert.deepEqual(resumePoint([], SZ, one, parseLsn('0/2000028')), {
    lsn: 0x2000000n,
    timeline: 1,
    reason: "at the slot's restart point 0/2000028 (the archive has no segment on this history yet)",
  });
  const r = resumePoint(segs(1, 3, 5), SZ, one, parseLsn('0/4000000'));
  assert.deepEqual({ lsn: r?.lsn, timeline: r?.timeline }, { lsn: 0x6000000n, timeline: 1 });
  assert.match(r!.reason, /after 000000010000000000000005/);
  assert.equal(resumePoint([], SZ, one, null), null);
});

test('resume across a switch: on the old timeline until its end, then on the new one from the switch segment', () => {
  const two = timelineSpans(2, '1\t0/7800000\tx\n');
  assert.deepEqual(pick(resumePoint(segs(1, 3, 5), SZ, two, null)), { lsn: 0x6000000n, timeline: 1 });
  assert.deepEqual(pick(resumePoint(segs(1, 3, 6), SZ, two, null)), { lsn: 0x7000000n, timeline: 2 });
  // the old timeline's copy of the switch segment, and its branch beyond, are not on the history
  assert.deepEqual(pick(resumePoint(segs(1, 3, 9), SZ, two, null)), { lsn: 0x7000000n, timeline: 2 });
  assert.deepEqual(pick(resumePoint([...segs(1, 3, 6), ...segs(2, 7, 8)], SZ, two, null)), { lsn: 0x9000000n, timeline: 2 });
});

test('resume from the slot when the server lost the WAL the archive needs: a gap is said, never hidden', () => {
  const one = timelineSpans(1, null);
  const r = resumePoint(segs(1, 3, 5), SZ, one, parseLsn('0/9000100'), true);
  assert.deepEqual(pick(r), { lsn: 0x9000000n, timeline: 1 });
  assert.match(r!.reason, /no longer on the server: a gap/);
  // a slot not ahead of the archive changes nothing
  assert.deepEqual(pick(resumePoint(segs(1, 3, 5), SZ, one, parseLsn('0/5000000'), true)), { lsn: 0x6000000n, timeline: 1 });
});

function pick(r: { lsn: bigint; timeline: number } | null) {
  return r && { lsn: r.lsn, timeline: r.timeline };
}
