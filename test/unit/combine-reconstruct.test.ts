import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkChainLabels, combineInto, reconstructFile } from '../../src/restore/combine.js';
import type { ChainMember } from '../../src/restore/chain.js';
import { BLCKSZ, encodeIncrementalFile, incrementalName } from '../../src/restore/incremental-file.js';

/** Deterministic PRNG (mulberry32) so a failing scenario can be replayed by its seed. */
function rng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) % n) as number;
  };
}

let tags = 0;
const newPage = (): Buffer => {
  const p = Buffer.alloc(BLCKSZ, ++tags % 251);
  p.writeUInt32LE(tags, 0);
  return p;
};

interface MemMember extends ChainMember {
  /** Bytes pulled from each file so far. */
  readonly pulled: Map<string, number>;
}

/** A ChainMember over in-memory files, handing out arbitrary chunk sizes. */
function member(id: string, files: Record<string, Buffer>, random = rng(id.length * 7919 + 1)): MemMember {
  const pulled = new Map<string, number>();
  return {
    id,
    files: new Set(Object.keys(files)),
    pulled,
    async *open(rel) {
      const data = files[rel];
      if (data === undefined) throw new Error(`${id} has no ${rel}`);
      for (let at = 0; at < data.length; ) {
        const n = 1 + random(random(4) === 0 ? 30 : 20000);
        pulled.set(rel, (pulled.get(rel) ?? 0) + Math.min(n, data.length - at));
        yield data.subarray(at, at + n);
        at += n;
      }
    },
  };
}

async function rebuild(chain: ChainMember[], rel: string): Promise<Buffer> {
  const out: Buffer[] = [];
  const n = await reconstructFile(chain, rel, { write: async (c) => void out.push(Buffer.from(c)) });
  const result = Buffer.concat(out);
  assert.equal(n, result.length);
  return result;
}

/**
 * One relation segment through a chain of backups, as the server would back
 * it up: pages written (WAL-logged, so in the summary), extended without WAL
 * (zeros, not in the summary), truncated (summary keeps the lowest limit and
 * forgets blocks beyond it), dropped and recreated. A backup sends the file
 * whole when it is new since the parent, was truncated to nothing, or at
 * random (the server's "mostly changed" rule); else INCREMENTAL with the
 * changed blocks and truncation length = size. Unlogged extension never
 * follows a truncation in the same interval: then not even PostgreSQL can
 * tell stale blocks from zeros.
 */
function scenario(seed: number) {
  const r = rng(seed);
  let pages: Buffer[] | null = Array.from({ length: r(6) }, newPage);
  let modified = new Set<number>();
  let limit = Infinity;
  let isNew = true;
  let truncatedEarlier = false;
  let regrewAfterTruncation = false;
  const backups: ({ kind: 'whole' | 'incremental'; data: Buffer } | null)[] = [];
  const count = 2 + r(4);
  for (let k = 0; k < count; k++) {
    if (k > 0) {
      let truncatedNow = false;
      for (let ops = r(5); ops > 0; ops--) {
        const op = r(20);
        if (pages === null) {
          if (op < 10) [pages, isNew, limit] = [Array.from({ length: 1 + r(4) }, newPage), true, 0];
        } else if (op < 7 && pages.length > 0) {
          const b = r(pages.length);
          pages[b] = newPage();
          modified.add(b);
        } else if (op < 10) {
          for (let n = 1 + r(3); n > 0; n--) modified.add(pages.push(newPage()) - 1);
        } else if (op < 14 && !truncatedNow) {
          if (truncatedEarlier) regrewAfterTruncation = true;
          for (let n = 1 + r(3); n > 0; n--) pages.push(Buffer.alloc(BLCKSZ));
        } else if (op < 18) {
          const to = r(pages.length + 1);
          pages.length = to;
          limit = Math.min(limit, to);
          modified = new Set([...modified].filter((b) => b < to));
          truncatedNow = true;
        } else if (op === 19) {
          [pages, limit] = [null, 0];
        }
      }
      truncatedEarlier ||= truncatedNow;
    }
    if (pages === null) backups.push(null);
    else if (isNew || limit === 0 || pages.length === 0 || r(8) === 0) backups.push({ kind: 'whole', data: Buffer.concat(pages) });
    else {
      const blocks = [...modified].sort((a, b) => a - b);
      const data = encodeIncrementalFile({ truncationBlockLength: pages.length, pages: blocks.map((b) => ({ block: b, data: pages![b] })) });
      backups.push({ kind: 'incremental', data });
    }
    [modified, limit, isNew] = [new Set(), Infinity, false];
  }
  return { backups, expected: pages === null ? null : Buffer.concat(pages), regrewAfterTruncation };
}

test('reconstruction matches the relation byte for byte over 400 random histories of 2-5 backups', async () => {
  let reconstructed = 0;
  let regrown = 0;
  for (let seed = 1; seed <= 400; seed++) {
    const s = scenario(seed);
    if (s.backups.at(-1)?.kind !== 'incremental' || s.expected === null) continue;
    const chain = s.backups.map((b, k) =>
      member(`B${k}`, b === null ? {} : { [b.kind === 'incremental' ? incrementalName('base/5/16384') : 'base/5/16384']: b.data }, rng(seed * 31 + k)),
    );
    const got = await rebuild(chain, 'base/5/INCREMENTAL.16384');
    assert.equal(got.length, s.expected.length, `seed ${seed}: length`);
    for (let b = 0; b * BLCKSZ < got.length; b++) {
      const at = b * BLCKSZ;
      assert.ok(got.subarray(at, at + BLCKSZ).equals(s.expected.subarray(at, at + BLCKSZ)), `seed ${seed}: block ${b} differs (tag ${got.readUInt32LE(at)} instead of ${s.expected.readUInt32LE(at)})`);
    }
    reconstructed++;
    if (s.regrewAfterTruncation) regrown++;
  }
  assert.ok(reconstructed > 150, `${reconstructed} histories ended incremental`);
  assert.ok(regrown > 20, `${regrown} histories regrew without WAL after an earlier truncation`);
});

test('reconstruction reads of the whole file only the windows it needs (as far as needed front to back, or just those blocks), and never opens an unneeded one', async () => {
  const fullPages = Array.from({ length: 300 }, newPage); // three 1 MiB windows
  const newestPage = newPage();
  const F = member('F', { 'base/1/7': Buffer.concat(fullPages) });
  const I = member('I', { 'base/1/INCREMENTAL.7': encodeIncrementalFile({ truncationBlockLength: 3, pages: [{ block: 1, data: newestPage }] }) });
  assert.deepEqual(await rebuild([F, I], 'base/1/INCREMENTAL.7'), Buffer.concat([fullPages[0], newestPage, fullPages[2]]));
  assert.ok(F.pulled.get('base/1/7')! < (1 << 20) + 20000, `the whole file is read only as far as its first window (${F.pulled.get('base/1/7')} bytes)`);
  // with random access: only the windows that supply a page
  const asked: number[] = [];
  const whole = Buffer.concat(fullPages);
  const R: ChainMember = { ...member('R', { 'base/1/7': whole }), blockReader: () => async (from, to) => (asked.push(from), whole.subarray(from << 20, to << 20)) };
  const I3 = member('I3', { 'base/1/INCREMENTAL.7': encodeIncrementalFile({ truncationBlockLength: 300, pages: [{ block: 5, data: newestPage }, ...Array.from({ length: 128 }, (_, i) => ({ block: 128 + i, data: fullPages[128 + i] }))] }) });
  const got = await rebuild([R, I3], 'base/1/INCREMENTAL.7');
  assert.deepEqual(got, Buffer.concat([...fullPages.slice(0, 5), newestPage, ...fullPages.slice(6)]));
  assert.deepEqual(asked, [0, 2], 'window 1 comes wholly from the incremental: never read from the full file');

  const F2 = member('F2', { 'base/1/7': Buffer.concat(fullPages) });
  const all = member('all', { 'base/1/INCREMENTAL.7': encodeIncrementalFile({ truncationBlockLength: 2, pages: [0, 1].map((block) => ({ block, data: fullPages[block] })) }) });
  assert.deepEqual(await rebuild([F2, all], 'base/1/INCREMENTAL.7'), Buffer.concat(fullPages.slice(0, 2)));
  assert.equal(F2.pulled.size, 0, 'the full file was never opened');

  const short = member('S', { 'base/1/7': Buffer.concat([fullPages[0], Buffer.alloc(100)]) });
  const grow = member('G', { 'base/1/INCREMENTAL.7': encodeIncrementalFile({ truncationBlockLength: 3, pages: [] }) });
  assert.deepEqual(await rebuild([short, grow], 'base/1/INCREMENTAL.7'), Buffer.concat([fullPages[0], Buffer.alloc(2 * BLCKSZ)]), 'past the end of the whole file (and a partial page) is zeros');
});

test('reconstructFile: broken chains are backup.corrupt naming the backups', async () => {
  const inc = encodeIncrementalFile({ truncationBlockLength: 1, pages: [] });
  const F = member('F', { 'base/1/7': newPage() });
  const gap = member('GAP', {});
  const I = member('I', { 'base/1/INCREMENTAL.7': inc });
  await assert.rejects(rebuild([F, gap, I], 'base/1/INCREMENTAL.7'), { code: 'backup.corrupt', message: /backup GAP has no version of base\/1\/7, which backup I stores as incremental/ });
  await assert.rejects(rebuild([member('OLD', { 'base/1/INCREMENTAL.7': inc }), I], 'base/1/INCREMENTAL.7'), { code: 'backup.corrupt', message: /no backup has base\/1\/7 whole; the oldest, OLD/ });
  const damaged = member('D', { 'base/1/INCREMENTAL.7': inc.subarray(0, 8) });
  await assert.rejects(rebuild([F, damaged], 'base/1/INCREMENTAL.7'), { code: 'backup.corrupt', message: /base\/1\/INCREMENTAL\.7 of backup D is truncated/ });
  await assert.rejects(rebuild([F, I], 'base/1/7'), { code: 'restore.failed' });
});

const label = (start: string, from?: string) =>
  `START WAL LOCATION: ${start} (file 000000010000000000000004)\nCHECKPOINT LOCATION: ${start}\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2025-05-01 10:00:00 UTC\nLABEL: t\nSTART TIMELINE: 1\n${from ? `INCREMENTAL FROM LSN: ${from}\nINCREMENTAL FROM TLI: 1\n` : ''}`;

test('combineInto writes the newest backup with reconstructed files, a full label, no manifest, 0600/0700', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-combine-unit-'));
  t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const [a, b, c, d] = [newPage(), newPage(), newPage(), newPage()];
  const F = member('F', { backup_label: Buffer.from(label('0/4000028')), backup_manifest: Buffer.from('{}'), PG_VERSION: Buffer.from('18\n'), 'base/5/1': Buffer.concat([a, b]), 'base/5/2': a, 'global/9': c });
  const I1 = member('I1', {
    backup_label: Buffer.from(label('0/6000028', '0/4000028')),
    backup_manifest: Buffer.from('{}'),
    PG_VERSION: Buffer.from('18\n'),
    'base/5/INCREMENTAL.1': encodeIncrementalFile({ truncationBlockLength: 3, pages: [{ block: 2, data: c }] }),
    'global/INCREMENTAL.9': encodeIncrementalFile({ truncationBlockLength: 1, pages: [] }),
  });
  const I2 = member('I2', {
    backup_label: Buffer.from(label('0/8000028', '0/6000028')),
    backup_manifest: Buffer.from('{"incremental": true}'),
    PG_VERSION: Buffer.from('18\n'),
    'base/5/INCREMENTAL.1': encodeIncrementalFile({ truncationBlockLength: 3, pages: [{ block: 0, data: d }] }),
    'global/INCREMENTAL.9': encodeIncrementalFile({ truncationBlockLength: 1, pages: [] }),
    'pg_wal/000000010000000000000008': Buffer.from('wal'),
  });
  const target = path.join(tmp, 'restored');
  const result = await combineInto([F, I1, I2], target);
  assert.deepEqual(result, { files: 5, copied: 2, reconstructed: 2, bytes: 3 + 3 + label('0/8000028').length + 4 * BLCKSZ });
  const read = (rel: string) => fs.readFileSync(path.join(target, rel));
  assert.deepEqual(read('base/5/1'), Buffer.concat([d, b, c]));
  assert.deepEqual(read('global/9'), c);
  assert.equal(read('backup_label').toString(), label('0/8000028'));
  assert.equal(read('pg_wal/000000010000000000000008').toString(), 'wal');
  assert.ok(!fs.existsSync(path.join(target, 'base/5/2')), 'dropped before I1');
  assert.ok(!fs.existsSync(path.join(target, 'backup_manifest')));
  assert.equal(fs.statSync(path.join(target, 'base/5/1')).mode & 0o777, 0o600);
  assert.equal(fs.statSync(path.join(target, 'base/5')).mode & 0o777, 0o700);
  assert.equal(fs.statSync(target).mode & 0o777, 0o700);

  await assert.rejects(combineInto([F, I1, I2], target), { code: 'restore.failed', message: /is not empty/ });
  await assert.rejects(combineInto([F, I2], path.join(tmp, 'other')), { code: 'backup.corrupt', message: /backup I2 is incremental from 0\/6000028 .* backup F before it started at 0\/4000028/ });
  await assert.rejects(checkChainLabels([F, member('NOLABEL', {})]), { code: 'backup.corrupt', message: /Backup NOLABEL has no backup_label/ });
});
