import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { BackupFiles } from '../../src/backup/backup-files.js';
import { BLOCK, parseCompression, type CompressionKind } from '../../src/backup/codec.js';
import { CodecPool } from '../../src/backup/codec-pool.js';
import { PosixStorage } from '../../src/backup/storage-posix.js';
import { BlockSums, PackCache, crcHex, readCheckedBlocks, verifiedReader } from '../../src/backup/stored-file.js';
import type { FileEntry } from '../../src/backup/types.js';

/** A backup's files written and read back through a real directory; no server. */

const dirs: string[] = [];
const pool = new CodecPool(2);
after(async () => {
  await pool.close();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function scratch(): PosixStorage {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-backupfiles-'));
  dirs.push(d);
  return new PosixStorage(d);
}

/** Bytes that compress somewhat (as relation pages do), different per seed. */
function content(seed: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i += 64) b.writeUInt32LE((seed * 2654435761 + (i >> 12)) >>> 0, i);
  return b;
}

async function readAll(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

test('block checksums: per 1 MiB, combined into the whole CRC-32C without a second pass', () => {
  const data = content(1, 3 * BLOCK + 12345);
  const sums = new BlockSums();
  for (let at = 0; at < data.length; at += 70001) sums.update(data.subarray(at, at + 70001));
  assert.equal(sums.hex().length, 4 * 8);
  assert.equal(sums.hex().slice(8, 16), crcHex(crc32c(data.subarray(BLOCK, 2 * BLOCK))));
  assert.equal(crcHex(sums.whole()), crcHex(crc32c(data)));
});

for (const kind of ['none', 'lz4', 'zstd', 'gzip'] as CompressionKind[]) {
  test(`${kind}: small files packed, large ones on their own; every file reads back, checked; a flipped byte is refused before it is used`, async () => {
    const storage = scratch();
    const files = new BackupFiles(storage, () => pool, parseCompression(kind), 'backups/B');
    const originals = new Map<string, Buffer>([
      ['data/empty', Buffer.alloc(0)],
      ['data/base/5/1259', content(2, 8192 * 3)],
      ['data/base/5/INCREMENTAL.16384', content(3, 12)],
      ['data/base/5/16384', content(4, 2 * BLOCK + 8192 * 5)],
      ['data/pg_wal/000000010000000000000002', content(5, BLOCK)],
    ]);
    const entries: FileEntry[] = [];
    for (const [logical, data] of originals) {
      const w = await files.open(logical, data.length, (e) => entries.push(e));
      for (let at = 0; at < data.length; at += 32768) await w.write(data.subarray(at, at + 32768));
      await w.end();
    }
    await files.finish();
    const byPath = new Map(entries.map((e) => [e.path, e]));
    assert.equal(byPath.size, originals.size);
    const suffix = { none: '', lz4: '.lz4', zstd: '.zst', gzip: '.gz' }[kind];
    assert.equal(byPath.get('data/base/5/1259')!.stored, `packs/0${suffix}`);
    assert.equal(byPath.get('data/base/5/INCREMENTAL.16384')!.stored, `packs/0${suffix}`);
    assert.equal(byPath.get('data/base/5/16384')!.stored, `data/base/5/16384${suffix}`);
    assert.equal(byPath.get('data/base/5/16384')!.offset, undefined);
    const packs = new PackCache();
    for (const [logical, data] of originals) {
      const e = byPath.get(logical)!;
      assert.equal(e.crc32c, crcHex(crc32c(data)), `${logical}: the CRC-32C PostgreSQL's manifest would give`);
      assert.equal(e.blocks.length, 8 * Math.ceil(e.stored_size / BLOCK));
      const back = await readAll(verifiedReader(storage, `backups/B/${e.stored}`, e, 'backup B', packs));
      assert.ok(back.equals(data), `${logical} reads back`);
    }
    const big = byPath.get('data/base/5/16384')!;
    if (kind === 'none') {
      const middle = await readCheckedBlocks(storage, `backups/B/${big.stored}`, big, 1, 2, 'backup B');
      assert.ok(middle.equals(originals.get('data/base/5/16384')!.subarray(BLOCK, 2 * BLOCK)), 'one block read on its own');
    }
    // one flipped byte in the large file's second stored block: the first block is handed out, the second never
    const file = path.join(storage.root, 'backups/B', big.stored);
    const bytes = fs.readFileSync(file);
    bytes[Math.min(bytes.length - 1, BLOCK + 100)] ^= 1;
    fs.writeFileSync(file, bytes);
    let handed = 0;
    await assert.rejects(
      (async () => {
        for await (const c of verifiedReader(storage, `backups/B/${big.stored}`, big, 'backup B')) handed += c.length;
      })(),
      /backup B is damaged: data\/base\/5\/16384\S* does not match its checksum/,
    );
    assert.ok(handed <= (kind === 'none' ? BLOCK : 2 * BLOCK), `only checked blocks were handed out (${handed} bytes)`);
    if (kind === 'none') await assert.rejects(readCheckedBlocks(storage, `backups/B/${big.stored}`, big, 1, 2, 'backup B'), /does not match its checksum/);
  });
}
