import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tarStream from 'tar-stream';
import { safeRelativePath, tarSink } from '../../src/protocol/tar-extract.js';
import { WrittenTree } from '../../src/protocol/written-tree.js';

type Entry = { name: string; type?: 'file' | 'directory' | 'symlink' | 'link'; content?: string; linkname?: string };

/** A ustar archive built with tar-stream's packer. */
async function tarOf(entries: Entry[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const e of entries) {
    await new Promise<void>((resolve, reject) =>
      pack.entry({ name: e.name, type: e.type ?? 'file', linkname: e.linkname, mode: 0o644 }, e.content ?? '', (err) => (err ? reject(err) : resolve())),
    );
  }
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

/** Feeds the archive in small chunks, as the COPY stream would. */
async function extract(root: string, archive: Buffer, linkTarget = (_n: string, o: string) => o): Promise<WrittenTree> {
  const tree = new WrittenTree({});
  await tree.prepareRoot(root);
  const sink = tarSink(root, tree, linkTarget);
  try {
    for (let i = 0; i < archive.length; i += 700) await sink.write(archive.subarray(i, i + 700));
    await sink.end();
  } catch (err) {
    sink.abort?.(err as Error);
    throw err;
  }
  return tree;
}

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-tar-'));
}

test('tar: files, directories and symlinks with PostgreSQL modes; pg_tblspc links rewritten', async () => {
  const dir = tmpdir();
  try {
    const archive = await tarOf([
      { name: 'base/', type: 'directory' },
      { name: 'base/1/', type: 'directory' },
      { name: 'base/1/1259', content: 'x'.repeat(20_000) },
      { name: 'PG_VERSION', content: '18\n' },
      { name: 'deep/missing/parent/file', content: 'ok' },
      { name: 'pg_tblspc/', type: 'directory' },
      { name: 'pg_tblspc/16384', type: 'symlink', linkname: '/old/place' },
      { name: 'other_link', type: 'symlink', linkname: 'PG_VERSION' },
    ]);
    const root = path.join(dir, 'data');
    const tree = await extract(root, archive, (name, original) => (name === 'pg_tblspc/16384' ? '/new/place' : original));
    assert.equal(fs.readFileSync(path.join(root, 'base/1/1259'), 'utf8').length, 20_000);
    assert.equal(fs.readFileSync(path.join(root, 'deep/missing/parent/file'), 'utf8'), 'ok');
    assert.equal(fs.statSync(path.join(root, 'PG_VERSION')).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.join(root, 'base/1')).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.join(root, 'deep/missing')).mode & 0o777, 0o700);
    assert.equal(fs.readlinkSync(path.join(root, 'pg_tblspc/16384')), '/new/place');
    assert.equal(fs.readlinkSync(path.join(root, 'other_link')), 'PG_VERSION');
    assert.equal(tree.bytes, 20_000 + 3 + 2);
    await tree.syncAll(4);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

for (const [what, entries, why] of [
  ['a ".." component', [{ name: '../escape', content: 'x' }], /contains "\.\."/],
  ['a nested ".."', [{ name: 'base/../../escape', content: 'x' }], /contains "\.\."/],
  ['an absolute name', [{ name: '/tmp/escape', content: 'x' }], /absolute/],
  ['a path through a symlink of the archive', [{ name: 'l', type: 'symlink', linkname: '/tmp' }, { name: 'l/escape', content: 'x' }], /below a symlink/],
  ['a hard link', [{ name: 'a', content: 'x' }, { name: 'b', type: 'link', linkname: 'a' }], /type "link"/],
] as [string, Entry[], RegExp][]) {
  test(`tar: refuses ${what} with clone.failed`, async () => {
    const dir = tmpdir();
    try {
      await assert.rejects(extract(path.join(dir, 'data'), await tarOf(entries)), { code: 'clone.failed', message: why });
      assert.equal(fs.existsSync(path.join(dir, 'escape')), false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('tar: long names (ustar prefix and pax) and a large file synced in the background', async () => {
  const dir = tmpdir();
  try {
    const big = 'b'.repeat(9 << 20); // above the size fsynced as soon as it is closed
    const prefixed = `${'d'.repeat(60)}/${'e'.repeat(60)}/file`;
    const pax = `base/${'p'.repeat(120)}`;
    const root = path.join(dir, 'data');
    const tree = await extract(root, await tarOf([{ name: prefixed, content: 'one' }, { name: pax, content: 'two' }, { name: 'big', content: big }]));
    await tree.syncAll(4);
    assert.equal(fs.readFileSync(path.join(root, prefixed), 'utf8'), 'one');
    assert.equal(fs.readFileSync(path.join(root, pax), 'utf8'), 'two');
    assert.equal(fs.statSync(path.join(root, 'big')).size, big.length);
    assert.equal(tree.bytes, 6 + big.length);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('tar: write() resolves with the bytes already in the file (nothing is buffered)', async () => {
  const dir = tmpdir();
  try {
    const archive = await tarOf([{ name: 'f', content: 'x'.repeat(5000) }]);
    const root = path.join(dir, 'data');
    const tree = new WrittenTree({});
    await tree.prepareRoot(root);
    const sink = tarSink(root, tree, (_n, o) => o);
    await sink.write(archive.subarray(0, 512 + 3000));
    assert.equal(fs.readFileSync(path.join(root, 'f'), 'utf8'), 'x'.repeat(3000));
    await sink.write(archive.subarray(512 + 3000));
    await sink.end();
    await tree.syncAll();
    assert.equal(fs.readFileSync(path.join(root, 'f'), 'utf8').length, 5000);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('tar: a truncated archive fails end() with clone.failed, and later calls fail the same', async () => {
  const dir = tmpdir();
  try {
    const archive = await tarOf([{ name: 'f', content: 'x'.repeat(5000) }]);
    const root = path.join(dir, 'data');
    const tree = new WrittenTree({});
    await tree.prepareRoot(root);
    const sink = tarSink(root, tree, (_n, o) => o);
    await sink.write(archive.subarray(0, 2000));
    await assert.rejects(sink.end(), { code: 'clone.failed', message: /middle of an entry/ });
    await assert.rejects(sink.write(archive.subarray(2000)), { code: 'clone.failed' });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('tar: safeRelativePath normalises harmless forms', () => {
  assert.equal(safeRelativePath('./base//1/'), 'base/1');
  assert.equal(safeRelativePath('./'), '');
  assert.throws(() => safeRelativePath('a/../../b'), { code: 'clone.failed' });
});

test('tree: a non-empty target is refused', async () => {
  const dir = tmpdir();
  try {
    fs.writeFileSync(path.join(dir, 'leftover'), '');
    await assert.rejects(new WrittenTree({}).prepareRoot(dir), { code: 'clone.failed', message: /leftover/ });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
