import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseCompression, type CompressionKind } from '../../src/backup/codec.js';
import { Repository } from '../../src/backup/repository.js';
import { PosixStorage } from '../../src/backup/storage-posix.js';
import { archiveGaps, archivePosition, readArchived, readRecord, removeWalLeftovers, storeSegment } from '../../src/backup/wal-archive.js';
import { OpenSegmentWriter, dropOpen, openSegmentBytes, readOpen } from '../../src/backup/wal-open.js';
import { PgmError } from '../../src/errors.js';

/** Repository-side WAL storage on a real (temporary) directory; no server. */

const SZ = 1024 * 1024; // small segments keep the test fast; names follow the size

const dirs: string[] = [];
const repos: Repository[] = [];
after(async () => {
  for (const r of repos) await r.close();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function repo(compression: CompressionKind = 'none'): Repository {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-walarchive-'));
  dirs.push(dir);
  const r = new Repository(new PosixStorage(dir), parseCompression(compression), 'c');
  repos.push(r);
  return r;
}

const bytes = (seed: number, n = SZ) => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i += 4096) b.writeUInt32BE((seed * 7919 + i) >>> 0, i);
  return b;
};
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
async function collect(it: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const c of it) out.push(c);
  return out;
}
const walFiles = async (r: Repository) => (await r.storage.list('wal')).filter((f) => f !== 'open');

for (const compression of ['none', 'gzip', 'lz4', 'zstd'] as const) {
  test(`${compression}: a stored segment is its file, then its record with the stored bytes' checksum`, async () => {
    const r = repo(compression);
    const data = bytes(1);
    const out = await storeSegment(r, '000000010000000000000003', [data.subarray(0, 1000), data.subarray(1000)]);
    assert.equal(out.created, true);
    const ext = { none: '', gzip: '.gz', lz4: '.lz4', zstd: '.zst' }[compression];
    assert.deepEqual(await walFiles(r), [`000000010000000000000003${ext}`, '000000010000000000000003.json'].sort());
    const e = (await readRecord(r, '000000010000000000000003'))!;
    assert.equal(e.stored, `000000010000000000000003${ext}`);
    assert.equal(e.size, SZ);
    assert.equal(e.sha256, sha(await r.storage.read(`wal/${e.stored}`)));
    assert.ok((await readArchived(r, e)).equals(data));
    assert.deepEqual((await r.walEntries()).get(e.name), e);
  });
}

test('storing an archived file again: the same content is a no-op, different content is refused and nothing changes', async () => {
  const r = repo();
  const first = await storeSegment(r, '000000010000000000000003', bytes(1));
  const again = await storeSegment(r, '000000010000000000000003', bytes(1));
  assert.equal(again.created, false);
  assert.deepEqual(again.entry, first.entry);
  await assert.rejects(storeSegment(r, '000000010000000000000003', bytes(9)), (e: unknown) => e instanceof PgmError && e.code === 'repository.invalid' && /never overwritten/.test(e.message));
  assert.ok((await readArchived(r, (await readRecord(r, '000000010000000000000003'))!)).equals(bytes(1)));
  await storeSegment(r, '00000002.history', Buffer.from('1\t0/5800000\tx\n'));
  assert.equal((await storeSegment(r, '00000002.history', Buffer.from('1\t0/5800000\tx\n'))).created, false);
  await assert.rejects(storeSegment(r, '00000002.history', Buffer.from('1\t0/5900000\tx\n')), /different content/);
  await assert.rejects(storeSegment(r, 'backup_label', Buffer.from('x')), RangeError);
});

test('a file without its record does not count: it is replaced by the next store and swept as a leftover', async () => {
  const r = repo();
  await r.storage.put('wal/000000010000000000000003', bytes(7)); // a crash between the segment and its record
  assert.equal((await r.walEntries()).size, 0);
  assert.equal((await storeSegment(r, '000000010000000000000003', bytes(1))).created, true);
  assert.ok((await readArchived(r, (await readRecord(r, '000000010000000000000003'))!)).equals(bytes(1)));
  await r.storage.put('wal/000000010000000000000004.partial', bytes(3, 100));
  await r.storage.put('wal/000000010000000000000005.tmp-999999999', bytes(3, 100)); // a dead writer's temporary file
  await r.storage.put(`wal/000000010000000000000006.tmp-${process.pid}`, bytes(3, 100)); // ours: maybe being written
  assert.deepEqual((await removeWalLeftovers(r)).sort(), ['000000010000000000000004.partial', '000000010000000000000005.tmp-999999999']);
  assert.deepEqual(await walFiles(r), ['000000010000000000000003', '000000010000000000000003.json', `000000010000000000000006.tmp-${process.pid}`]);
});

test('a damaged archived segment is refused naming it', async () => {
  const r = repo('zstd');
  const out = await storeSegment(r, '000000010000000000000003', bytes(1));
  const file = path.join((r.storage as PosixStorage).root, 'wal', out.entry.stored);
  const b = fs.readFileSync(file);
  b[b.length >> 1] ^= 1;
  fs.writeFileSync(file, b);
  await assert.rejects(readArchived(r, out.entry), /000000010000000000000003 is damaged: .* does not match its checksum/);
});

for (const mode of ['growing', 'chunks'] as const) {
  test(`the segment in progress (${mode}): flushed, a record covering it; a new session replaces it only once it covers more`, async () => {
    const r = repo();
    if (mode === 'chunks') (r.storage as PosixStorage).appendFile = async () => null as never; // as S3 does: no file can grow
    const data = bytes(4);
    const seg = '000000010000000000000007';
    const w1 = await OpenSegmentWriter.create(r, seg, 1, SZ);
    assert.equal(w1.growing, mode === 'growing');
    w1.write(data.subarray(0, 1000));
    await w1.flush();
    w1.write(data.subarray(1000, 5000));
    w1.write(data.subarray(5000, 6000));
    assert.equal((await readOpen(r, seg))!.size, 1000, 'written but not flushed: not claimed durable');
    await w1.flush();
    const rec = (await readOpen(r, seg))!;
    assert.equal(rec.size, 6000);
    const all = Buffer.concat(await collect(openSegmentBytes(r, rec)));
    assert.equal(all.length, SZ, 'zero-padded to the segment size');
    assert.ok(all.subarray(0, 6000).equals(data.subarray(0, 6000)));
    assert.ok(all.subarray(6000).equals(Buffer.alloc(SZ - 6000)));
    await w1.close();
    await new Promise((res) => setTimeout(res, 5));
    const w2 = await OpenSegmentWriter.create(r, seg, 1, SZ);
    w2.write(data.subarray(0, 3000));
    await w2.flush();
    assert.equal((await readOpen(r, seg))!.size, 6000, 'the earlier, longer record stays');
    w2.write(data.subarray(3000, 9000));
    await w2.flush();
    const rec2 = (await readOpen(r, seg))!;
    assert.equal(rec2.size, 9000);
    assert.equal((await r.storage.list(`wal/open/${seg}`)).length, mode === 'chunks' ? 2 : 1, "the first session's files are gone");
    assert.ok(Buffer.concat(await collect(openSegmentBytes(r, rec2))).subarray(0, 9000).equals(data.subarray(0, 9000)));
    if (mode === 'growing') {
      // the growing file becomes the archived segment; a damaged durable prefix is refused
      const file = path.join((r.storage as PosixStorage).root, 'wal', 'open', seg, rec2.chunks[0].name);
      const b = fs.readFileSync(file);
      b[100] ^= 1;
      fs.writeFileSync(file, b);
      await assert.rejects(collect(openSegmentBytes(r, rec2)), /segment in progress 000000010000000000000007 is damaged/);
    }
    await w2.close();
    await dropOpen(r, seg);
    assert.equal(await readOpen(r, seg), null);
  });
}

test('the archive position is the newest timeline, then the highest segment; gaps are checked over the repository', async () => {
  const r = repo();
  for (const n of [3, 4, 5, 6, 7]) await storeSegment(r, `00000001000000000000000${n}`, bytes(n));
  await storeSegment(r, '00000002.history', Buffer.from('1\t0/580000\tx\n')); // inside segment 5 (1 MiB segments)
  for (const n of [5, 6]) await storeSegment(r, `00000002000000000000000${n}`, bytes(n + 10));
  await storeSegment(r, '000000010000000000000009.partial', bytes(1, 5000));
  const pos = archivePosition((await r.walEntries()).values())!;
  assert.deepEqual(pos, { segment: '000000020000000000000006', timeline: 2, lsn: 0x700000n, segmentSize: SZ });
  assert.deepEqual(await archiveGaps(r), { missing: [], first: '000000010000000000000003', last: '000000020000000000000006', timeline: 2 });
  await r.storage.remove('wal/000000010000000000000004.json');
  assert.deepEqual((await archiveGaps(r)).missing, ['000000010000000000000004']);
});
