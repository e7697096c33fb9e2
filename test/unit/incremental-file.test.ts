import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BLCKSZ,
  ExactReader,
  encodeIncrementalFile,
  incrementalHeaderLength,
  incrementalName,
  incrementalTarget,
  isIncrementalName,
  readIncremental,
} from '../../src/restore/incremental-file.js';
import type { IncrementalPage } from '../../src/restore/incremental-file.js';

const page = (tag: number): Buffer => {
  const p = Buffer.alloc(BLCKSZ, tag % 251);
  p.writeUInt32LE(tag, 0);
  return p;
};

async function* chunks(buf: Buffer, cuts: readonly number[]): AsyncGenerator<Buffer> {
  let at = 0;
  for (const cut of [...cuts, buf.length]) {
    yield buf.subarray(at, cut);
    at = cut;
  }
}

/** Parses `file` fed as the pieces between `cuts`; returns header and pages. */
async function parse(file: Buffer, cuts: readonly number[] = [], where = 'f') {
  const r = await readIncremental(chunks(file, cuts), where);
  const pages: IncrementalPage[] = [];
  for (let n = await r.pages.next(); !n.done; n = await r.pages.next()) pages.push({ block: n.value.block, data: Buffer.from(n.value.data) });
  return { header: r.header, pages };
}

const corrupt = (re: RegExp) => (err: { code: string; message: string; hint?: string }) => {
  assert.equal(err.code, 'backup.corrupt');
  assert.match(err.message, re);
  assert.ok(err.hint && err.hint.length > 10, 'has a hint');
  return true;
};

test('incremental names: detection, target and inverse', () => {
  assert.equal(isIncrementalName('base/5/INCREMENTAL.16384.1'), true);
  assert.equal(isIncrementalName('global/INCREMENTAL.1262'), true);
  assert.equal(isIncrementalName('INCREMENTAL.x'), true);
  assert.equal(isIncrementalName('base/5/16384'), false);
  assert.equal(isIncrementalName('base/5/INCREMENTAL.'), false);
  assert.equal(isIncrementalName('base/INCREMENTAL.5/16384'), false);
  assert.equal(incrementalTarget('base/5/INCREMENTAL.16384.1'), 'base/5/16384.1');
  assert.equal(incrementalTarget('base/5/INCREMENTAL.16384_fsm'), 'base/5/16384_fsm');
  assert.equal(incrementalTarget('INCREMENTAL.x'), 'x');
  assert.equal(incrementalName('base/5/16384.1'), 'base/5/INCREMENTAL.16384.1');
  assert.equal(incrementalName('x'), 'INCREMENTAL.x');
  assert.throws(() => incrementalTarget('base/5/16384'), RangeError);
});

test('encoding matches what PostgreSQL writes (magic, count, truncation length, blocks, padding)', () => {
  const one = encodeIncrementalFile({ truncationBlockLength: 14, pages: [{ block: 0, data: page(1) }] });
  assert.equal(one.subarray(0, 16).toString('hex'), '0d1faed3010000000e00000000000000');
  assert.equal(one.length, 16384);
  assert.ok(one.subarray(16, BLCKSZ).every((b) => b === 0), 'header padded with zeros');
  assert.deepEqual(one.subarray(BLCKSZ), page(1));
  const none = encodeIncrementalFile({ truncationBlockLength: 7, pages: [] });
  assert.equal(none.toString('hex'), '0d1faed30000000007000000', 'no padding without pages');
  assert.equal(incrementalHeaderLength(0), 12);
  assert.equal(incrementalHeaderLength(1), BLCKSZ);
  assert.equal(incrementalHeaderLength(2045), BLCKSZ, '12 + 4 * 2045 = 8192 exactly');
  assert.equal(incrementalHeaderLength(2046), 2 * BLCKSZ);
  assert.throws(() => encodeIncrementalFile({ truncationBlockLength: 1, pages: [{ block: 0, data: Buffer.alloc(10) }] }), RangeError);
});

test('header and pages parse identically for every split into two chunks, byte-by-byte, and with empty chunks', async () => {
  const pages = [{ block: 2, data: page(10) }, { block: 9, data: page(11) }];
  const file = encodeIncrementalFile({ truncationBlockLength: 12, pages });
  const expected = { header: { truncationBlockLength: 12, blocks: [2, 9] }, pages };
  for (let cut = 0; cut <= file.length; cut++) assert.deepEqual(await parse(file, [cut]), expected, `split at ${cut}`);
  assert.deepEqual(await parse(file, Array.from({ length: file.length - 1 }, (_, i) => i + 1)), expected, 'one byte at a time');
  assert.deepEqual(await parse(file, [0, 0, 5, 5, 12, 12, 8191, 8193, 8193]), expected, 'empty chunks in between');
  for (const cut of [0, 3, 4, 8, 11, 12]) {
    assert.deepEqual(await parse(encodeIncrementalFile({ truncationBlockLength: 3, pages: [] }), [cut]), { header: { truncationBlockLength: 3, blocks: [] }, pages: [] });
  }
});

test('a header with thousands of block numbers spans several pages and still parses', async () => {
  const blocks = Array.from({ length: 3000 }, (_, i) => i * 2);
  const file = encodeIncrementalFile({ truncationBlockLength: 6000, pages: blocks.map((b) => ({ block: b, data: page(b) })) });
  assert.equal(file.length, 2 * BLCKSZ + 3000 * BLCKSZ);
  const r = await readIncremental(chunks(file, [100, 8190, 8200, 16385]), 'big');
  assert.deepEqual(r.header.blocks, blocks);
  let n = 0;
  for (let p = await r.pages.next(); !p.done; p = await r.pages.next()) {
    assert.equal(p.value.block, blocks[n]);
    assert.equal(p.value.data.readUInt32LE(0), blocks[n]);
    n++;
  }
  assert.equal(n, 3000);
});

test('damaged files are backup.corrupt with a hint naming the file', async () => {
  const good = encodeIncrementalFile({ truncationBlockLength: 5, pages: [{ block: 1, data: page(1) }, { block: 3, data: page(3) }] });

  const badMagic = Buffer.from(good);
  badMagic.writeUInt32LE(0x12345678, 0);
  await assert.rejects(parse(badMagic, [], 'base/5/INCREMENTAL.1 of backup B'), corrupt(/base\/5\/INCREMENTAL\.1 of backup B has magic number 0x12345678, not 0xd3ae1f0d/));
  const bigEndian = Buffer.from(good);
  bigEndian.writeUInt32BE(0xd3ae1f0d, 0);
  await assert.rejects(parse(bigEndian), (err: { hint: string }) => /big-endian/.test(err.hint));

  const descending = Buffer.from(good);
  descending.writeUInt32LE(0, 16);
  await assert.rejects(parse(descending), corrupt(/lists block 0 after block 1; block numbers must be ascending/));
  const duplicate = Buffer.from(good);
  duplicate.writeUInt32LE(1, 16);
  await assert.rejects(parse(duplicate), corrupt(/lists block 1 after block 1/));

  const huge = Buffer.from(good);
  huge.writeUInt32LE(0xffffffff, 4);
  await assert.rejects(parse(huge), corrupt(/more than a segment can hold/));

  const cases: [number, RegExp][] = [
    [0, /0 bytes, less than the 12-byte header/],
    [11, /11 bytes, less than the 12-byte header/],
    [12, /lists 2 blocks but ends after 0/],
    [17, /lists 2 blocks but ends after 1/],
    [20, /ends inside the header padding/],
    [BLCKSZ - 1, /ends inside the header padding/],
    [BLCKSZ, /ends in page 1 of 2 \(block 1\)/],
    [2 * BLCKSZ - 1, /ends in page 1 of 2/],
    [2 * BLCKSZ, /ends in page 2 of 2 \(block 3\)/],
    [3 * BLCKSZ - 1, /ends in page 2 of 2/],
  ];
  for (const [length, re] of cases) await assert.rejects(parse(good.subarray(0, length), [Math.floor(length / 2)]), corrupt(re), `cut to ${length} bytes`);
  await assert.rejects(parse(Buffer.concat([good, Buffer.from([0])])), corrupt(/has bytes after its last page/));
  assert.equal((await parse(good)).pages.length, 2);
});

test('close() stops reading the source; unread pages are never pulled', async () => {
  const file = encodeIncrementalFile({ truncationBlockLength: 40, pages: Array.from({ length: 40 }, (_, i) => ({ block: i, data: page(i) })) });
  let pulled = 0;
  let finished = false;
  async function* source() {
    try {
      for (let at = 0; at < file.length; at += 4096) {
        pulled += 4096;
        yield file.subarray(at, at + 4096);
      }
    } finally {
      finished = true;
    }
  }
  const r = await readIncremental(source(), 'f');
  assert.equal((await r.pages.next()).value?.block, 0);
  await r.close();
  assert.ok(finished, 'source released');
  assert.ok(pulled <= 3 * BLCKSZ, `pulled ${pulled} bytes`);
});

test('ExactReader: exact reads across chunks, short read at the end, skip without buffering', async () => {
  const data = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
  const r = new ExactReader(chunks(data, [3, 3, 10, 50, 51]));
  assert.deepEqual([...(await r.read(5))], [0, 1, 2, 3, 4]);
  assert.equal(await r.skip(40), 40);
  assert.deepEqual([...(await r.read(2))], [45, 46]);
  assert.equal(await r.atEnd(), false);
  assert.equal(await r.skip(50), 50);
  assert.deepEqual([...(await r.read(10))], [97, 98, 99]);
  assert.equal(await r.atEnd(), true);
  assert.equal(await r.skip(5), 0);
  assert.equal((await r.read(1)).length, 0);
  await r.close();
});
