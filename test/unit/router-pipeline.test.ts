import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as out from '../../src/protocol/backend-serializer.js';
import { Framer, type Frame } from '../../src/protocol/framer.js';
import { cstring, int32, message } from '../../src/protocol/serializer.js';
import { ResponseTracker, type Fed } from '../../src/router/pipeline.js';

/** Server messages a router meets, built by hand. */
const i16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
};
const S = {
  parseComplete: () => message('1'),
  bindComplete: () => message('2'),
  closeComplete: () => message('3'),
  noData: () => message('n'),
  paramDesc: () => message('t', i16(1), int32(23)),
  rowDesc: () => message('T', i16(1), cstring('x'), int32(0), i16(0), int32(23), i16(4), int32(-1), i16(0)),
  dataRow: (v: string | null) => message('D', i16(1), v === null ? int32(-1) : Buffer.concat([int32(Buffer.byteLength(v)), Buffer.from(v)])),
  complete: (tag: string) => message('C', cstring(tag)),
  empty: () => message('I'),
  suspended: () => message('s'),
  ready: (s: 'I' | 'T' | 'E') => out.readyForQuery(s),
  error: (m: string) => out.pgError('ERROR', '42601', m),
  notice: () => out.noticeResponse({ S: 'NOTICE', M: 'hello' }),
  param: () => out.parameterStatus('TimeZone', 'UTC'),
  notify: () => message('A', int32(1), cstring('ch'), cstring('')),
  copyOut: () => message('H', Buffer.from([0]), i16(0)),
  copyData: (d: string) => message('d', Buffer.from(d)),
  copyDone: () => message('c'),
  copyIn: () => message('G', Buffer.from([0]), i16(0)),
  fnResult: () => message('V', int32(1), Buffer.from('1')),
};

function frames(...bufs: Buffer[]): Frame[] {
  return new Framer(() => 0x7fffffff).push(Buffer.concat(bufs));
}
/** What reached the client, as the list of message letters. */
function letters(fed: Fed): string {
  return [...new Framer(() => 0x7fffffff).push(Buffer.concat(fed.out))].map((f) => String.fromCharCode(f.code)).join('');
}

test('tracker: a simple query is answered up to its ReadyForQuery, which ends the unit', () => {
  const t = new ResponseTracker();
  t.push({ kind: 'query' });
  assert.equal(t.owed, 1);
  const a = t.feed(frames(S.rowDesc(), S.dataRow('1')));
  assert.equal(letters(a), 'TD');
  assert.equal(a.idle, null);
  assert.equal(t.owed, 1);
  const b = t.feed(frames(S.complete('SELECT 1'), S.ready('I')));
  assert.equal(letters(b), 'CZ');
  assert.equal(b.idle, 'I');
  assert.equal(t.owed, 0);
  assert.equal(t.status, 'I');
});

test('tracker: the transaction status of the last ReadyForQuery is kept', () => {
  const t = new ResponseTracker();
  t.push({ kind: 'query' });
  assert.equal(t.feed(frames(S.complete('BEGIN'), S.ready('T'))).idle, 'T');
  assert.equal(t.status, 'T');
  t.push({ kind: 'query' });
  assert.equal(t.feed(frames(S.error('boom'), S.ready('E'))).idle, 'E');
  assert.equal(t.status, 'E');
});

test('tracker: several queries in flight; idle only when the last is answered', () => {
  const t = new ResponseTracker();
  t.push({ kind: 'query' });
  t.push({ kind: 'query' });
  const a = t.feed(frames(S.complete('SET'), S.ready('I'), S.complete('SELECT 0')));
  assert.equal(a.idle, null, 'one still owed');
  assert.equal(letters(a), 'CZC');
  assert.equal(t.feed(frames(S.ready('I'))).idle, 'I');
});

test('tracker: the extended protocol — each step completes on its own message, Sync on ReadyForQuery', () => {
  const t = new ResponseTracker();
  for (const step of ['parse', 'bind', 'describe', 'execute'] as const) t.push({ kind: 'step', step, swallow: false });
  t.push({ kind: 'sync' });
  const fed = t.feed(frames(S.parseComplete(), S.bindComplete(), S.rowDesc(), S.dataRow('1'), S.complete('SELECT 1'), S.ready('I')));
  assert.equal(letters(fed), '12TDCZ');
  assert.equal(fed.idle, 'I');
  assert.equal(t.owed, 0);
});

test('tracker: Describe of a statement gets ParameterDescription then RowDescription or NoData', () => {
  for (const last of [S.rowDesc(), S.noData()]) {
    const t = new ResponseTracker();
    t.push({ kind: 'step', step: 'describe', swallow: false });
    t.push({ kind: 'sync' });
    const fed = t.feed(frames(S.paramDesc(), last, S.ready('I')));
    assert.equal(letters(fed), `t${String.fromCharCode(last[0])}Z`);
    assert.equal(fed.idle, 'I');
  }
});

test('tracker: Execute completes on CommandComplete, EmptyQueryResponse or PortalSuspended', () => {
  for (const [done, l] of [[S.complete('INSERT 0 1'), 'C'], [S.empty(), 'I'], [S.suspended(), 's']] as const) {
    const t = new ResponseTracker();
    t.push({ kind: 'step', step: 'execute', swallow: false });
    t.push({ kind: 'sync' });
    assert.equal(letters(t.feed(frames(done, S.ready('I')))), `${l}Z`);
    assert.equal(t.owed, 0);
  }
});

test('tracker: after an error the server skips to the Sync; the skipped steps\' failed callbacks run', () => {
  const t = new ResponseTracker();
  const failed: string[] = [];
  t.push({ kind: 'step', step: 'parse', swallow: false, failed: () => failed.push('parse') });
  t.push({ kind: 'step', step: 'bind', swallow: false, failed: () => failed.push('bind') });
  t.push({ kind: 'step', step: 'execute', swallow: false, failed: () => failed.push('execute') });
  t.push({ kind: 'sync' });
  const fed = t.feed(frames(S.error('syntax error'), S.ready('I')));
  assert.equal(letters(fed), 'EZ');
  assert.equal(fed.idle, 'I');
  assert.deepEqual(failed, ['parse', 'bind', 'execute']);
  assert.equal(t.owed, 0);
});

test('tracker: an error in the middle: steps before it completed, steps after it skipped', () => {
  const t = new ResponseTracker();
  const failed: string[] = [];
  t.push({ kind: 'step', step: 'parse', swallow: false, failed: () => failed.push('parse') });
  t.push({ kind: 'step', step: 'bind', swallow: false, failed: () => failed.push('bind') });
  t.push({ kind: 'step', step: 'execute', swallow: false, failed: () => failed.push('execute') });
  t.push({ kind: 'sync' });
  t.push({ kind: 'step', step: 'parse', swallow: false, failed: () => failed.push('parse2') });
  t.push({ kind: 'sync' });
  const fed = t.feed(frames(S.parseComplete(), S.bindComplete(), S.error('division by zero'), S.ready('I'), S.parseComplete(), S.ready('I')));
  assert.equal(letters(fed), '12EZ1Z');
  assert.deepEqual(failed, ['execute']);
  assert.equal(fed.idle, 'I');
});

test('tracker: an injected Parse (the statement re-created on this server) is swallowed; its error is still the client\'s', () => {
  const t = new ResponseTracker();
  t.push({ kind: 'step', step: 'parse', swallow: true });
  t.push({ kind: 'step', step: 'bind', swallow: false });
  t.push({ kind: 'step', step: 'execute', swallow: false });
  t.push({ kind: 'sync' });
  assert.equal(letters(t.feed(frames(S.parseComplete(), S.bindComplete(), S.complete('SELECT 1'), S.ready('I')))), '2CZ');
  let dropped = false;
  t.push({ kind: 'step', step: 'parse', swallow: true, failed: () => (dropped = true) });
  t.push({ kind: 'step', step: 'bind', swallow: false });
  t.push({ kind: 'sync' });
  assert.equal(letters(t.feed(frames(S.error('relation "gone" does not exist'), S.ready('I')))), 'EZ');
  assert.ok(dropped, 'the router forgets the statement it thought it had prepared');
});

test('tracker: the router\'s own answers are emitted in their place in the stream', () => {
  const t = new ResponseTracker();
  t.push({ kind: 'synth', bytes: out.parseComplete() }); // statement already on this server
  t.push({ kind: 'step', step: 'bind', swallow: false });
  t.push({ kind: 'synth', bytes: out.closeComplete() }); // a Close the router answers itself
  t.push({ kind: 'step', step: 'execute', swallow: false });
  t.push({ kind: 'sync' });
  assert.equal(Buffer.concat(t.flushSynth()).toString('hex'), out.parseComplete().toString('hex'), 'the head synth goes out at once');
  const fed = t.feed(frames(S.bindComplete(), S.complete('SELECT 1'), S.ready('I')));
  assert.equal(letters(fed), '23CZ');
  assert.equal(fed.bytes, Buffer.concat(fed.out).length);
  assert.equal(t.flushSynth().length, 0);
});

test('tracker: a trailing synth (SET pgmaestro.route answered by the router) follows the server\'s last answer', () => {
  const t = new ResponseTracker();
  t.push({ kind: 'query' });
  t.push({ kind: 'synth', bytes: Buffer.concat([out.commandComplete('SET'), out.readyForQuery('T')]) });
  const fed = t.feed(frames(S.complete('SELECT 1'), S.ready('T')));
  assert.equal(letters(fed), 'CZCZ');
  assert.equal(t.owed, 0);
});

test('tracker: an internal query is answered to the router only, with its first value', () => {
  const t = new ResponseTracker();
  let got: string | null | undefined;
  t.push({ kind: 'internal', done: (v) => (got = v) });
  const fed = t.feed(frames(S.rowDesc(), S.dataRow('0/3000060'), S.complete('SELECT 1'), S.ready('I')));
  assert.equal(fed.out.length, 0);
  assert.equal(fed.bytes, 0);
  assert.equal(got, '0/3000060');
  assert.equal(fed.idle, 'I');
  let none: string | null | undefined;
  t.push({ kind: 'internal', done: (v) => (none = v) });
  t.feed(frames(S.dataRow(null), S.complete('SELECT 1'), S.ready('I')));
  assert.equal(none, null);
});

test('tracker: an internal query failing is swallowed too, and gives null', () => {
  const t = new ResponseTracker();
  let got: string | null | undefined = 'unset';
  t.push({ kind: 'internal', done: (v) => (got = v) });
  const fed = t.feed(frames(S.error('boom'), S.ready('I')));
  assert.equal(fed.out.length, 0);
  assert.equal(got, null);
});

test('tracker: an internal query after the client\'s: the client gets its answer, the router the rest', () => {
  const t = new ResponseTracker();
  let lsn: string | null = null;
  t.push({ kind: 'query' });
  t.push({ kind: 'internal', done: (v) => (lsn = v) });
  const first = t.feed(frames(S.complete('INSERT 0 1'), S.ready('I')));
  assert.equal(letters(first), 'CZ');
  assert.equal(first.idle, null, 'the router still waits for its own answer');
  const second = t.feed(frames(S.rowDesc(), S.dataRow('0/1'), S.complete('SELECT 1'), S.ready('I')));
  assert.equal(second.out.length, 0);
  assert.equal(second.idle, 'I');
  assert.equal(lsn, '0/1');
});

test('tracker: notices, parameter changes and notifications pass through at any time', () => {
  const t = new ResponseTracker();
  t.push({ kind: 'step', step: 'parse', swallow: true });
  t.push({ kind: 'sync' });
  const fed = t.feed(frames(S.notice(), S.param(), S.notify(), S.parseComplete(), S.notice(), S.ready('I')));
  assert.equal(letters(fed), 'NSANZ');
  // and when nothing is owed (a notification between units, a FATAL before the server closes)
  const idle = t.feed(frames(S.notify(), out.pgError('FATAL', '57P01', 'terminating connection')));
  assert.equal(letters(idle), 'AE');
  assert.equal(idle.idle, null);
});

test('tracker: COPY out and COPY in flow through a simple query', () => {
  const t = new ResponseTracker();
  t.push({ kind: 'query' });
  assert.equal(letters(t.feed(frames(S.copyOut(), S.copyData('1\n'), S.copyData('2\n'), S.copyDone(), S.complete('COPY 2'), S.ready('I')))), 'HddcCZ');
  t.push({ kind: 'query' });
  assert.equal(letters(t.feed(frames(S.copyIn()))), 'G');
  assert.equal(t.owed, 1, 'the query is owed until the server finishes the COPY');
  const end = t.feed(frames(S.complete('COPY 3'), S.ready('I')));
  assert.equal(letters(end), 'CZ');
  assert.equal(end.idle, 'I');
});

test('tracker: a fast-path function call is answered up to its ReadyForQuery', () => {
  const t = new ResponseTracker();
  t.push({ kind: 'query' });
  const fed = t.feed(frames(S.fnResult(), S.ready('I')));
  assert.equal(letters(fed), 'VZ');
  assert.equal(fed.idle, 'I');
});

test('tracker: messages split across feeds at every byte give the same stream', () => {
  const stream = Buffer.concat([S.parseComplete(), S.bindComplete(), S.rowDesc(), S.dataRow('x'), S.complete('SELECT 1'), S.ready('I')]);
  for (let cut = 0; cut <= stream.length; cut++) {
    const t = new ResponseTracker();
    for (const step of ['parse', 'bind', 'describe', 'execute'] as const) t.push({ kind: 'step', step, swallow: false });
    t.push({ kind: 'sync' });
    const f = new Framer(() => 0x7fffffff);
    const a = t.feed(f.push(stream.subarray(0, cut)));
    const b = t.feed(f.push(stream.subarray(cut)));
    assert.equal(Buffer.concat([...a.out, ...b.out]).toString('hex'), stream.toString('hex'), `cut at ${cut}`);
    assert.equal(b.idle ?? a.idle, 'I');
  }
});

test('tracker: adjacent forwarded messages of one chunk are joined into one buffer (one write)', () => {
  const t = new ResponseTracker();
  t.push({ kind: 'query' });
  const fed = t.feed(frames(S.rowDesc(), S.dataRow('1'), S.dataRow('2'), S.complete('SELECT 2'), S.ready('I')));
  assert.equal(fed.out.length, 1);
});

test('tracker: abandon runs every failed and done owed, then forgets everything', () => {
  const t = new ResponseTracker();
  const seen: string[] = [];
  t.push({ kind: 'step', step: 'parse', swallow: false, failed: () => seen.push('parse') });
  t.push({ kind: 'internal', done: (v) => seen.push(`internal ${v}`) });
  t.push({ kind: 'sync' });
  t.abandon();
  assert.deepEqual(seen, ['parse', 'internal null']);
  assert.equal(t.owed, 0);
});

test('tracker: a long pipelined session keeps its queue bounded', () => {
  const t = new ResponseTracker();
  for (let i = 0; i < 10_000; i++) {
    t.push({ kind: 'step', step: 'bind', swallow: false });
    t.push({ kind: 'step', step: 'execute', swallow: false });
    t.push({ kind: 'sync' });
    if (i % 3 === 0) t.feed(frames(S.bindComplete(), S.complete('SELECT 1'), S.ready('I'), S.bindComplete()));
  }
  assert.ok(t.owed > 0);
  assert.ok((t as unknown as { queue: unknown[] }).queue.length < 30_000);
});

test('tracker: readiesOwed counts the ReadyForQuery still owed, the router\'s own included', () => {
  const t = new ResponseTracker();
  t.push({ kind: 'step', step: 'parse', swallow: false });
  t.push({ kind: 'sync' });
  t.push({ kind: 'internal', done: () => undefined });
  t.push({ kind: 'query' });
  assert.equal(t.readiesOwed, 3);
  t.feed(frames(S.error('x'), S.ready('I')));
  assert.equal(t.readiesOwed, 2, 'an error skips steps, never a Sync');
  t.feed(frames(S.complete('SELECT 1'), S.ready('T')));
  assert.equal(t.readiesOwed, 1);
  assert.equal(t.status, 'T', "the router's own query's status counts");
  t.abandon();
  assert.equal(t.readiesOwed, 0);
});
