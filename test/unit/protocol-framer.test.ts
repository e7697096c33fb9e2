import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameError, Framer, HEADER, type Frame } from '../../src/protocol/framer.js';

/** A typed message built by hand: type byte, Int32 length (counting itself), body. */
function msg(code: string, body: Buffer | string = Buffer.alloc(0)): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body, 'latin1') : body;
  const head = Buffer.alloc(5);
  head.write(code, 0, 'latin1');
  head.writeUInt32BE(b.length + 4, 1);
  return Buffer.concat([head, b]);
}

const anyLength = () => 0x7fffffff;
const simplify = (frames: Frame[]) => frames.map((f) => [String.fromCharCode(f.code), f.bytes.toString('latin1')]);

const stream = [msg('Z', 'I'), msg('1'), msg('D', Buffer.alloc(300, 7)), msg('C', 'SELECT 1\0'), msg('E', 'SERROR\0\0')];
const all = Buffer.concat(stream);
const expected = simplify(stream.map((b) => ({ code: b[0], bytes: b })));

test('framer: the header is a type byte and an Int32 length', () => {
  assert.equal(HEADER, 5);
});

test('framer: whole messages in one chunk come out in order, as views of the chunk', () => {
  const f = new Framer(anyLength);
  const frames = f.push(all);
  assert.deepEqual(simplify(frames), expected);
  for (const fr of frames) assert.equal(fr.bytes.buffer, all.buffer, 'no copy for a message that lies in one chunk');
  assert.equal(f.buffered, 0);
});

test('framer: the same stream fed one byte at a time gives the same messages', () => {
  const f = new Framer(anyLength);
  const out: Frame[] = [];
  for (let i = 0; i < all.length; i++) {
    out.push(...f.push(all.subarray(i, i + 1)));
    assert.ok(f.buffered < all.length);
  }
  assert.deepEqual(simplify(out), expected);
  assert.equal(f.buffered, 0);
});

test('framer: split at every possible byte into two chunks', () => {
  for (let cut = 0; cut <= all.length; cut++) {
    const f = new Framer(anyLength);
    const out = [...f.push(all.subarray(0, cut)), ...f.push(all.subarray(cut))];
    assert.deepEqual(simplify(out), expected, `cut at ${cut}`);
    assert.equal(f.buffered, 0);
  }
});

test('framer: split into three chunks at every pair of points inside the header and body of one message', () => {
  const m = msg('Q', 'SELECT 1\0');
  for (let a = 0; a <= m.length; a++) {
    for (let b = a; b <= m.length; b++) {
      const f = new Framer(anyLength);
      const out = [...f.push(m.subarray(0, a)), ...f.push(m.subarray(a, b)), ...f.push(m.subarray(b))];
      assert.deepEqual(simplify(out), [['Q', m.toString('latin1')]], `cuts at ${a}, ${b}`);
    }
  }
});

test('framer: a split message is copied, so the caller may reuse the chunk', () => {
  const f = new Framer(anyLength);
  const m = msg('d', 'payload');
  const first = Buffer.from(m.subarray(0, 7));
  assert.deepEqual(f.push(first), []);
  assert.equal(f.buffered, 7);
  first.fill(0); // the socket's memory is reused
  const out = f.push(Buffer.from(m.subarray(7)));
  assert.deepEqual(simplify(out), [['d', m.toString('latin1')]]);
});

test('framer: a partial tail after whole messages stays buffered until completed', () => {
  const f = new Framer(anyLength);
  const tail = msg('C', 'INSERT 0 1\0');
  const out = f.push(Buffer.concat([msg('1'), msg('2'), tail.subarray(0, 3)]));
  assert.deepEqual(simplify(out), [['1', msg('1').toString('latin1')], ['2', msg('2').toString('latin1')]]);
  assert.equal(f.buffered, 3);
  assert.deepEqual(simplify(f.push(tail.subarray(3))), [['C', tail.toString('latin1')]]);
});

test('framer: an empty chunk is harmless at any point', () => {
  const f = new Framer(anyLength);
  assert.deepEqual(f.push(Buffer.alloc(0)), []);
  const m = msg('Z', 'T');
  f.push(m.subarray(0, 2));
  assert.deepEqual(f.push(Buffer.alloc(0)), []);
  assert.equal(f.buffered, 2);
  assert.equal(f.push(m.subarray(2)).length, 1);
});

test('framer: a length below 4 is impossible and throws FrameError with the type and length', () => {
  for (const length of [0, 1, 2, 3]) {
    const bad = Buffer.from([0x51, 0, 0, 0, length]);
    const err = (() => {
      try {
        new Framer(anyLength).push(bad);
        return null;
      } catch (e) {
        return e;
      }
    })();
    assert.ok(err instanceof FrameError, `length ${length}`);
    assert.equal(err.code, 0x51);
    assert.equal(err.length, length);
    assert.match(err.message, /impossible length/);
  }
});

test('framer: a length above the limit of its type throws as soon as the header is complete, before the body arrives', () => {
  const limit = (code: number) => (code === 0x51 ? 100 : 0x7fffffff);
  const header = Buffer.alloc(5);
  header.write('Q', 0, 'latin1');
  header.writeUInt32BE(0x40000000, 1); // 1 GiB
  // whole header in one chunk
  assert.throws(() => new Framer(limit).push(header), FrameError);
  // header split: throws when its last byte arrives, never waits for a gigabyte
  const f = new Framer(limit);
  assert.deepEqual(f.push(header.subarray(0, 3)), []);
  assert.throws(() => f.push(header.subarray(3)), (e: unknown) => e instanceof FrameError && e.length === 0x40000000);
  // the header arriving as the tail of a chunk of whole messages
  assert.throws(() => new Framer(limit).push(Buffer.concat([msg('S'), header])), FrameError);
  // other types keep their own limit
  assert.equal(new Framer(limit).push(msg('d', Buffer.alloc(200))).length, 1);
  assert.equal(new Framer(limit).push(msg('Q', Buffer.alloc(96))).length, 1, 'length 100 exactly is allowed');
  assert.throws(() => new Framer(limit).push(msg('Q', Buffer.alloc(97))), FrameError);
});

test('framer: a length field with the top bit set is read unsigned, hence too large, not negative', () => {
  const bad = Buffer.from([0x44, 0xff, 0xff, 0xff, 0xff]);
  assert.throws(() => new Framer(() => 0x7fffffff).push(bad), (e: unknown) => e instanceof FrameError && e.length === 0xffffffff);
});
