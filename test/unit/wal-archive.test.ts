import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Repository } from '../../src/backup/repository.js';
import { PosixStorage } from '../../src/backup/storage.js';
import type { Compression } from '../../src/backup/types.js';
import { archiveGaps, archivePosition, openSegment, readArchived, readRecord, removeWalLeftovers, storeSegment } from '../../src/backup/wal-archive.js';
import { PgmError } from '../../src/errors.js';

/** Repository-side WAL storage on a real (temporary) directory; no server. */

const SZ = 1024 * 1024; // small segments keep the test fast; names follow the size

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function repo(compression: Compression = 'none'): Repository {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-walarchive-'));
  dirs.push(dir);
  const r = new Repository(new PosixStorage(dir), compression, 'c');
  r.storage.mkdir('wal');
  return r;
}

const bytes = (seed: number, n = SZ) => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i += 4096) b.writeUInt32BE((seed * 7919 + i) >>> 0, i);
  return b;
};
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const walFiles = (r: Repository) => r.storage.list('wal');

for (const compression of ['none', 'gzip'] as const) {
  test(`${compression}: a stored segment is its file, then its record with the stored bytes' checksum`, async () => {
    const r = repo(compression);
    const data = bytes(1);
    const out = await storeSegment(r, '000000010000000000000003', [data.subarray(0, 1000), data.subarray(1000)]);
    assert.equal(out.created, true);
    const ext = compression === 'gzip' ? '.gz' : '';
    assert.deepEqual(walFiles(r), [`000000010000000000000003${ext}`, '000000010000000000000003.json']);
    const e = readRecord(r, '000000010000000000000003')!;
    assert.equal(e.stored, `000000010000000000000003${ext}`);
    assert.equal(e.size, SZ);
    assert.equal(e.sha256, sha(r.storage.read(`wal/${e.stored}`)));
    assert.ok(readArchived(r, e).equals(data));
    assert.deepEqual(r.walEntries().get(e.name), e);
  });

  test(`${compression}: restore_command fetches the archived segment byte for byte`, async () => {
    const r = repo(compression);
    const data = bytes(2);
    await storeSegment(r, '000000010000000000000004', data);
    const target = path.join(r.root, 'fetched');
    const cmd = r.restoreCommand().replaceAll('%f', '000000010000000000000004').replaceAll('%p', target);
    execFileSync('sh', ['-c', cmd]);
    assert.ok(fs.readFileSync(target).equals(data));
    assert.throws(() => execFileSync('sh', ['-c', r.restoreCommand().replaceAll('%f', '000000010000000000000005').replaceAll('%p', target)], { stdio: 'ignore' }));
  });
}

test('storing an archived file again: the same content is a no-op, different content is refused and nothing changes', async () => {
  const r = repo();
  const first = await storeSegment(r, '000000010000000000000003', bytes(1));
  const again = await storeSegment(r, '000000010000000000000003', bytes(1));
  assert.equal(again.created, false);
  assert.deepEqual(again.entry, first.entry);
  await assert.rejects(storeSegment(r, '000000010000000000000003', bytes(9)), (e: unknown) => e instanceof PgmError && e.code === 'repository.invalid' && /never overwritten/.test(e.message));
  assert.ok(readArchived(r, readRecord(r, '000000010000000000000003')!).equals(bytes(1)));
  // history files follow the same rule
  await storeSegment(r, '00000002.history', Buffer.from('1\t0/5800000\tx\n'));
  assert.equal((await storeSegment(r, '00000002.history', Buffer.from('1\t0/5800000\tx\n'))).created, false);
  await assert.rejects(storeSegment(r, '00000002.history', Buffer.from('1\t0/5900000\tx\n')), /different content/);
  await assert.rejects(storeSegment(r, 'backup_label', Buffer.from('x')), RangeError);
});

test('a file without its record does not count: it is replaced by the next store and swept as a leftover', async () => {
  const r = repo();
  r.storage.put('wal/000000010000000000000003', bytes(7)); // a crash between the segment and its record
  assert.equal(r.walEntries().size, 0);
  assert.equal((await storeSegment(r, '000000010000000000000003', bytes(1))).created, true);
  assert.ok(readArchived(r, readRecord(r, '000000010000000000000003')!).equals(bytes(1)));
  r.storage.put('wal/000000010000000000000004.partial', bytes(3, 100));
  r.storage.put('wal/000000010000000000000005.tmp-999999999', bytes(3, 100)); // a dead writer's temporary file
  r.storage.put(`wal/000000010000000000000006.tmp-${process.pid}`, bytes(3, 100)); // ours: maybe being written
  assert.deepEqual(removeWalLeftovers(r).sort(), ['000000010000000000000004.partial', '000000010000000000000005.tmp-999999999']);
  assert.deepEqual(walFiles(r), ['000000010000000000000003', '000000010000000000000003.json', `000000010000000000000006.tmp-${process.pid}`]);
});

test('a received segment streams to <name>.partial and becomes <name> only when complete', async () => {
  const r = repo('gzip');
  const data = bytes(4);
  const sink = await openSegment(r, '000000010000000000000007');
  await sink.write(data.subarray(0, SZ / 2));
  assert.ok(walFiles(r).every((f) => f.includes('.tmp-')), 'nothing visible while receiving');
  await sink.write(data.subarray(SZ / 2));
  assert.equal(sink.size, SZ);
  const out = await sink.finish('segment');
  assert.equal(out.entry.name, '000000010000000000000007');
  assert.deepEqual(walFiles(r), ['000000010000000000000007.gz', '000000010000000000000007.json']);
  assert.ok(readArchived(r, out.entry).equals(data));
  // received again (a re-streamed segment): the archived copy stays, no leftovers
  const again = await openSegment(r, '000000010000000000000007');
  await again.write(data);
  assert.equal((await again.finish('segment')).created, false);
  assert.deepEqual(walFiles(r), ['000000010000000000000007.gz', '000000010000000000000007.json']);
  // an aborted one leaves nothing
  const aborted = await openSegment(r, '000000010000000000000008');
  await aborted.write(data.subarray(0, 10));
  await aborted.abort();
  assert.deepEqual(walFiles(r), ['000000010000000000000007.gz', '000000010000000000000007.json']);
});

test('the end of a timeline is kept as <name>.partial, and that segment is never received again on that timeline', async () => {
  const r = repo();
  const sink = await openSegment(r, '000000010000000000000009');
  await sink.write(bytes(5, 5000));
  const out = await sink.finish('partial');
  assert.equal(out.entry.name, '000000010000000000000009.partial');
  assert.equal(out.entry.size, 5000);
  assert.deepEqual(walFiles(r), ['000000010000000000000009.partial', '000000010000000000000009.partial.json']);
  await assert.rejects(openSegment(r, '000000010000000000000009'), /the end of timeline 1/);
  assert.equal(archivePosition(r), null, 'a .partial is not an archived segment');
});

test('the archive position is the newest timeline, then the highest segment; gaps are checked over the repository', async () => {
  const r = repo();
  for (const n of [3, 4, 5, 6, 7]) await storeSegment(r, `00000001000000000000000${n}`, bytes(n));
  await storeSegment(r, '00000002.history', Buffer.from('1\t0/580000\tx\n')); // inside segment 5 (1 MiB segments)
  for (const n of [5, 6]) await storeSegment(r, `00000002000000000000000${n}`, bytes(n + 10));
  const pos = archivePosition(r)!;
  assert.deepEqual(pos, { segment: '000000020000000000000006', timeline: 2, lsn: 0x700000n, segmentSize: SZ });
  assert.deepEqual(archiveGaps(r), { missing: [], first: '000000010000000000000003', last: '000000020000000000000006', timeline: 2 });
  r.storage.remove('wal/000000010000000000000004.json');
  assert.deepEqual(archiveGaps(r).missing, ['000000010000000000000004']);
});
