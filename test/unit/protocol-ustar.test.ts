import { test } from 'node:test';
import assert from 'node:assert/strict';
import tarStream from 'tar-stream';
import { UstarParser } from '../../src/protocol/ustar.js';
import type { TarEvent, TarHeader } from '../../src/protocol/ustar.js';

/** A 512-byte header laid out the way PostgreSQL's tarCreateHeader() does it. */
function header(name: string, opts: { size?: number; type?: string; linkname?: string; prefix?: string; magic?: string; base256Size?: bigint } = {}): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  const octal = (v: number, len: number) => v.toString(8).padStart(len - 1, '0') + ' ';
  h.write(octal(0o600, 8), 100, 'latin1');
  h.write(octal(0, 8), 108, 'latin1');
  h.write(octal(0, 8), 116, 'latin1');
  if (opts.base256Size !== undefined) {
    h[124] = 0x80;
    let v = opts.base256Size;
    for (let i = 135; i > 124; i--, v >>= 8n) h[i] = Number(v & 0xffn);
  } else {
    h.write(octal(opts.size ?? 0, 12), 124, 'latin1');
  }
  h.write(octal(0, 12), 136, 'latin1');
  h.write(opts.type ?? '0', 156, 'latin1');
  if (opts.linkname) h.write(opts.linkname, 157, 100, 'utf8');
  h.write(opts.magic ?? 'ustar\x0000', 257, 'latin1');
  if (opts.prefix) h.write(opts.prefix, 345, 155, 'utf8');
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
  h.write(octal(sum, 7) + '\0', 148, 'latin1');
  return h;
}

const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);
const fileEntry = (name: string, content: Buffer) => Buffer.concat([header(name, { size: content.length }), content, pad(content.length)]);
const END = Buffer.alloc(1024);

type Entry = { header: TarHeader; content: Buffer };

/** Feeds `chunks` and folds the events into entries with their whole content. */
function entries(chunks: Buffer[], parser = new UstarParser()): Entry[] {
  const out: Entry[] = [];
  let current: { header: TarHeader; parts: Buffer[] } | null = null;
  const apply = (ev: TarEvent) => {
    if (ev.kind === 'entry') {
      assert.equal(current, null, 'an entry starts before the previous one ended');
      current = { header: ev.header, parts: [] };
    } else if (ev.kind === 'data') {
      assert.ok(current, 'data outside an entry');
      current.parts.push(Buffer.from(ev.data));
    } else {
      assert.ok(current, 'entryEnd outside an entry');
      out.push({ header: current.header, content: Buffer.concat(current.parts) });
      current = null;
    }
  };
  for (const c of chunks) for (const ev of parser.parse(c)) apply(ev);
  parser.end();
  return out;
}

function splitEvery(buf: Buffer, n: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += n) out.push(buf.subarray(i, i + n));
  return out;
}

// What PostgreSQL sends: directories and symlinks with a trailing slash, sizes in octal.
const big = Buffer.alloc(70_000, 'x');
const pgArchive = Buffer.concat([
  header('base/', { type: '5' }),
  header('base/1/', { type: '5' }),
  fileEntry('base/1/1259', big),
  fileEntry('PG_VERSION', Buffer.from('15\n')),
  fileEntry('empty', Buffer.alloc(0)),
  header('pg_tblspc/16384/', { type: '2', linkname: '/srv/ts' }),
  END,
]);
const pgExpected = [
  { name: 'base/', type: 'directory', size: 0, linkname: '', content: '' },
  { name: 'base/1/', type: 'directory', size: 0, linkname: '', content: '' },
  { name: 'base/1/1259', type: 'file', size: 70_000, linkname: '', content: big.toString() },
  { name: 'PG_VERSION', type: 'file', size: 3, linkname: '', content: '15\n' },
  { name: 'empty', type: 'file', size: 0, linkname: '', content: '' },
  { name: 'pg_tblspc/16384/', type: 'symlink', size: 0, linkname: '/srv/ts', content: '' },
];
const simple = (es: Entry[]) => es.map((e) => ({ name: e.header.name, type: e.header.type, size: e.header.size, linkname: e.header.linkname, content: e.content.toString() }));

test('ustar: a PostgreSQL archive in one chunk', () => {
  assert.deepEqual(simple(entries([pgArchive])), pgExpected);
});

for (const n of [1, 7, 511, 512, 513, 32768]) {
  test(`ustar: the same archive in chunks of ${n} bytes`, () => {
    assert.deepEqual(simple(entries(splitEvery(pgArchive, n))), pgExpected);
  });
}

test('ustar: split at every offset into two chunks', () => {
  const small = Buffer.concat([fileEntry('a', Buffer.from('hello')), fileEntry('b', Buffer.alloc(600, 'y')), END]);
  for (let i = 0; i <= small.length; i++) {
    const got = simple(entries([small.subarray(0, i), small.subarray(i)]));
    assert.deepEqual(got.map((e) => [e.name, e.content.length]), [['a', 5], ['b', 600]], `split at ${i}`);
  }
});

test('ustar: file data is returned as views into the input, not copies', () => {
  const archive = Buffer.concat([fileEntry('f', Buffer.alloc(1000, 'z')), END]);
  const events = new UstarParser().parse(archive);
  const data = events.find((e) => e.kind === 'data');
  assert.ok(data && data.kind === 'data');
  assert.equal(data.data.buffer, archive.buffer);
  assert.equal(data.data.byteOffset, archive.byteOffset + 512);
  assert.equal(data.data.length, 1000);
});

test('ustar: anything after the end-of-archive block is ignored', () => {
  const archive = Buffer.concat([fileEntry('a', Buffer.from('1')), END, Buffer.from('trailing garbage that is not a header')]);
  assert.deepEqual(simple(entries([archive])).map((e) => e.name), ['a']);
});

test('ustar: an archive may end at an entry boundary without the end-of-archive block', () => {
  assert.deepEqual(simple(entries([fileEntry('a', Buffer.from('1'))])).map((e) => e.name), ['a']);
});

test('ustar: the name prefix field of POSIX ustar', () => {
  const archive = Buffer.concat([header('file', { size: 0, prefix: 'some/long/directory' }), END]);
  assert.equal(entries([archive])[0].header.name, 'some/long/directory/file');
});

test('ustar: the prefix field is not read from GNU headers', () => {
  const archive = Buffer.concat([header('file', { size: 0, prefix: 'junk', magic: 'ustar  \0' }), END]);
  assert.equal(entries([archive])[0].header.name, 'file');
});

test('ustar: GNU long names and long link targets', () => {
  const longName = `base/${'n'.repeat(150)}`;
  const longLink = `/${'t'.repeat(200)}`;
  const meta = (type: string, text: string) => {
    const body = Buffer.from(text + '\0');
    return Buffer.concat([header('././@LongLink', { type, size: body.length }), body, pad(body.length)]);
  };
  const archive = Buffer.concat([meta('L', longName), fileEntry('base/truncated', Buffer.from('abc')), meta('K', longLink), header('short', { type: '2', linkname: 'x' }), END]);
  const got = simple(entries(splitEvery(archive, 100)));
  assert.deepEqual(got, [
    { name: longName, type: 'file', size: 3, linkname: '', content: 'abc' },
    { name: 'short', type: 'symlink', size: 0, linkname: longLink, content: '' },
  ]);
});

test('ustar: pax extended headers set path, linkpath and size', () => {
  const record = (key: string, value: string) => {
    const body = ` ${key}=${value}\n`;
    let len = body.length + 1;
    while (`${len}${body}`.length !== len) len++;
    return `${len}${body}`;
  };
  const pax = Buffer.from(record('path', `deep/${'p'.repeat(120)}`) + record('linkpath', 'target') + record('mtime', '1.5'));
  const paxSize = Buffer.from(record('size', '5'));
  const archive = Buffer.concat([
    header('PaxHeader', { type: 'x', size: pax.length }),
    pax,
    pad(pax.length),
    header('ignored', { type: '2', linkname: 'ignored' }),
    header('PaxHeader', { type: 'x', size: paxSize.length }),
    paxSize,
    pad(paxSize.length),
    header('sized', { size: 0 }), // the pax size wins
    Buffer.from('12345'),
    pad(5),
    END,
  ]);
  assert.deepEqual(simple(entries([archive])), [
    { name: `deep/${'p'.repeat(120)}`, type: 'symlink', size: 0, linkname: 'target', content: '' },
    { name: 'sized', type: 'file', size: 5, linkname: '', content: '12345' },
  ]);
});

test('ustar: sizes in GNU base-256', () => {
  const archive = Buffer.concat([header('f', { base256Size: 3n }), Buffer.from('abc'), pad(3), END]);
  assert.deepEqual(simple(entries([archive])), [{ name: 'f', type: 'file', size: 3, linkname: '', content: 'abc' }]);
});

test('ustar: entry types are named as tar-stream names them', () => {
  const archive = Buffer.concat([header('h', { type: '1', linkname: 'a' }), header('fifo', { type: '6' }), header('c', { type: '3' }), header('v', { type: 'V' }), END]);
  assert.deepEqual(entries([archive]).map((e) => e.header.type), ['link', 'fifo', 'character-device', 'unknown-V']);
});

test('ustar: a damaged header is refused with clone.failed', () => {
  const archive = Buffer.concat([fileEntry('a', Buffer.from('1')), END]);
  archive[10] ^= 0xff;
  assert.throws(() => new UstarParser().parse(archive), { code: 'clone.failed', message: /checksum/ });
});

for (const [what, cut] of [
  ['inside a header', 100],
  ['inside file data', 512 + 10],
  ['inside the padding', 512 + 700 + 10],
] as const) {
  test(`ustar: an archive that ends ${what} is refused by end()`, () => {
    const archive = fileEntry('a', Buffer.alloc(700, 1));
    const parser = new UstarParser();
    parser.parse(archive.subarray(0, cut));
    assert.throws(() => parser.end(), { code: 'clone.failed', message: /middle of an entry/ });
  });
}

test('ustar: what tar-stream packs reads back the same', async () => {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  const files: [string, string][] = [
    ['short', 'one'],
    [`${'d'.repeat(60)}/${'e'.repeat(60)}/name`, 'prefix-split'],
    [`x/${'long'.repeat(40)}`, 'pax'],
  ];
  for (const [name, content] of files) {
    await new Promise<void>((resolve, reject) => pack.entry({ name, mode: 0o644 }, content, (err) => (err ? reject(err) : resolve())));
  }
  pack.finalize();
  await collected;
  const got = entries(splitEvery(Buffer.concat(chunks), 333)).map((e) => [e.header.name, e.content.toString()]);
  assert.deepEqual(got, files);
});
