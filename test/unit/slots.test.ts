import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBound, slotLevel, slotSentences, type SlotObservation } from '../../src/ha/slots.js';

const MB = 1048576;
const slot = (over: Partial<SlotObservation>): SlotObservation => ({ name: 'pgm_node2', kind: 'replica', node: 'node2', active: false, retainedBytes: 0, walStatus: 'reserved', safeWalSize: 64 * MB, ...over });

test('levels: half the bound, unreserved, lost; no bound means only PostgreSQL can worry', () => {
  assert.equal(slotLevel(slot({ retainedBytes: 10 * MB }), 64 * MB), 'ok');
  assert.equal(slotLevel(slot({ retainedBytes: 33 * MB }), 64 * MB), 'half');
  assert.equal(slotLevel(slot({ retainedBytes: 33 * MB }), null), 'ok');
  assert.equal(slotLevel(slot({ retainedBytes: 70 * MB, walStatus: 'unreserved' }), 64 * MB), 'unreserved');
  assert.equal(slotLevel(slot({ retainedBytes: null, walStatus: 'lost' }), 64 * MB), 'lost');
  assert.equal(slotLevel(slot({ retainedBytes: null, walStatus: null }), 64 * MB), 'ok');
});

test('one sentence per change of level, none while it stays; the archiver and replicas are named as such', () => {
  let prev = new Map();
  const steps: [SlotObservation[], RegExp[]][] = [
    [[slot({ retainedBytes: 1 * MB })], []],
    [[slot({ retainedBytes: 40 * MB })], [/^warning: replica node2's slot pgm_node2 holds 40 MiB of WAL on node1, past half of the bound of 64 MiB; nothing streams from it$/]],
    [[slot({ retainedBytes: 50 * MB })], []],
    [[slot({ retainedBytes: 70 * MB, walStatus: 'unreserved', safeWalSize: -1 })], [/past the bound of 64 MiB: its WAL is no longer reserved and goes at the next checkpoint \(0 B left\)$/]],
    [[slot({ retainedBytes: null, walStatus: 'lost' }), slot({ name: 'pgm_archiver', kind: 'archiver', node: null, walStatus: 'lost', retainedBytes: null })], [/^replica node2's slot pgm_node2 was lost: node1 removed WAL it still needed .* node2 cannot stream again until it is rebuilt$/, /^the WAL archiver's slot pgm_archiver was lost: .*gap/]],
    [[slot({ retainedBytes: 0, active: true })], [/^replica node2's slot pgm_node2 is back within its bound/]],
  ];
  for (const [slots, want] of steps) {
    const r = slotSentences(prev, slots, 64 * MB, 'node1');
    assert.equal(r.sentences.length, want.length, r.sentences.join(' | '));
    want.forEach((w, i) => assert.match(r.sentences[i], w));
    prev = r.levels;
  }
});

test('the bound as pg_settings gives it', () => {
  assert.equal(parseBound('2048', 'MB'), 2048 * MB);
  assert.equal(parseBound('64', 'MB'), 64 * MB);
  assert.equal(parseBound('-1', 'MB'), null);
});
