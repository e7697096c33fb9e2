import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkManualFailover, checkSwitchoverTarget, electCandidate } from '../../src/ha/election.js';
import { DEFAULT_HA_POLICY } from '../../src/ha/observations.js';
import type { HaPolicy, NodeObservation } from '../../src/ha/observations.js';
import { parseLsn } from '../../src/postgres/lsn.js';
import { gone, primary, replica } from '../helpers/ha-observations.js';

const MB = 1024 * 1024;
const P: HaPolicy = DEFAULT_HA_POLICY;
const sync = (quorum: number): HaPolicy => ({ ...P, synchronous: { quorum } });

const deadPrimary = gone(primary());

test('the most advanced received position wins, whatever the order of the observations', () => {
  const nodes = [deadPrimary, replica('node3', '0/3000000'), replica('node2', '0/3000060'), replica('node4', '0/2FFFFF0')];
  for (const order of [nodes, [...nodes].reverse()]) {
    const e = electCandidate(order, P, 'node1');
    assert.equal(e.winner?.name, 'node2');
    assert.equal(e.reason, 'node2 most advanced at 0/3000060');
    assert.deepEqual(e.rejected, []);
  }
});

test('ties on position go to the higher priority, then to the first name', () => {
  const byPriority = electCandidate([deadPrimary, replica('node2', '0/3000060'), replica('node3', '0/3000060', { priority: 200 })], P, 'node1');
  assert.equal(byPriority.winner?.name, 'node3');
  assert.equal(byPriority.reason, 'node3 most advanced at 0/3000060 (priority 200 over node2)');

  const byName = electCandidate([deadPrimary, replica('node3', '0/3000060'), replica('node2', '0/3000060')], P, 'node1');
  assert.equal(byName.winner?.name, 'node2');
  assert.equal(byName.reason, 'node2 most advanced at 0/3000060 (tied with node3 in position and priority, first by name)');

  // priority never beats position
  const ahead = electCandidate([deadPrimary, replica('node2', '0/3000060'), replica('node3', '0/3000050', { priority: 900 })], P, 'node1');
  assert.equal(ahead.winner?.name, 'node2');
});

test('every kind of ineligible replica is rejected with its reason, in name order', () => {
  const nodes = [
    deadPrimary,
    replica('node2', '0/3000060', { fenced: true }),
    replica('node3', '0/3000060', { nofailover: true }),
    gone(replica('node4', '0/3000060')),
    replica('node5', '0/3000060', { sqlOk: false, probeMs: null, postmasterAlive: false }),
    replica('node6', '0/3000060', { sqlOk: false, probeMs: 7000 }),
    replica('node7', '0/3000060', { inRecovery: false }),
    replica('node8', '0/3000060', { inRecovery: null }),
    replica('node9', '0/3000060', { receiveLsn: null }),
  ];
  const e = electCandidate(nodes, P, 'node1');
  assert.equal(e.winner, null);
  assert.deepEqual(
    e.rejected.map((r) => [r.node, r.reason, r.why]),
    [
      ['node2', 'fenced', 'is fenced'],
      ['node3', 'nofailover', 'is tagged nofailover'],
      ['node4', 'down', 'is unreachable'],
      ['node5', 'down', 'is down (postmaster not running)'],
      ['node6', 'down', 'is not answering'],
      ['node7', 'not_replica', 'is not in recovery'],
      ['node8', 'not_replica', 'has an unknown recovery state'],
      ['node9', 'no_position', 'has received no WAL'],
    ],
  );
  assert.match(e.reason, /^no candidate: node2 is fenced, node3 is tagged nofailover, node4 is unreachable, /);
  assert.equal(electCandidate([deadPrimary], P, 'node1').reason, 'no candidate: there is no replica');
});

test('a nofailover replica ahead of everyone still sets the reference, and the winner is "most advanced eligible"', () => {
  const e = electCandidate([deadPrimary, replica('node2', '0/3000000'), replica('node3', '0/3000060', { nofailover: true })], P, 'node1');
  assert.equal(e.winner?.name, 'node2');
  assert.equal(e.reason, 'node2 most advanced eligible at 0/3000000');
  assert.equal(e.reference, parseLsn('0/3000060'));
});

test('lag is measured from the highest known position: the old primary\'s last WAL position, else the best replica', () => {
  const cases: { name: string; last: string | null; r2: string; r3: string; max?: number; winner: string | null; why?: string }[] = [
    { name: 'primary position known, both close', last: '0/3100000', r2: '0/3000000', r3: '0/30F0000', winner: 'node3' },
    { name: 'node2 lags 2 MB behind the old primary', last: '0/3200000', r2: '0/3000000', r3: '0/31F0000', winner: 'node3', why: 'lags 2.0 MB behind 0/3200000 (maximum 1.0 MB)' },
    { name: 'both lag behind the old primary', last: '0/3300000', r2: '0/3000000', r3: '0/3100000', winner: null, why: 'lags 3.0 MB behind 0/3300000 (maximum 1.0 MB)' },
    { name: 'exactly the maximum is allowed', last: '0/3100000', r2: '0/3000000', r3: '0/3000000', winner: 'node2' },
    { name: 'primary unknown: measured from the best replica', last: null, r2: '0/1000000', r3: '0/3000000', winner: 'node3', why: 'lags 32.0 MB behind 0/3000000 (maximum 1.0 MB)' },
    { name: 'a larger maximum accepts the laggard', last: '0/3300000', r2: '0/3000000', r3: '0/3000000', max: 4 * MB, winner: 'node2' },
  ];
  for (const c of cases) {
    const policy = { ...P, maximumLagOnFailoverBytes: c.max ?? MB };
    const e = electCandidate([deadPrimary, replica('node2', c.r2), replica('node3', c.r3)], policy, 'node1', c.last === null ? null : parseLsn(c.last));
    assert.equal(e.winner?.name ?? null, c.winner, c.name);
    if (c.why) assert.equal(e.rejected.find((r) => r.node === 'node2')?.why, c.why, c.name);
  }
});

test('a primary still answering provides the reference through its walLsn', () => {
  const e = electCandidate([primary({ walLsn: parseLsn('0/5000000') }), replica('node2', '0/3000000')], P, 'node1');
  assert.equal(e.winner, null);
  assert.equal(e.reason, 'no candidate: node2 lags 32.0 MB behind 0/5000000 (maximum 1.0 MB)');
});

/**
 * Synchronous quorum: N = quorum, R replicas, some answer. Safe iff at least
 * R - N + 1 answer; then the candidate must be at or above the (N - U)-th
 * highest observed position (U = unobserved), which is the top one exactly at
 * the threshold.
 */
test('synchronous quorum: safety and winner by quorum, replicas and how many answer', () => {
  type Row = { quorum: number; lsns: (string | null)[]; winner: string | null; unsafe?: string };
  const rows: Row[] = [
    { quorum: 1, lsns: ['0/3000060'], winner: 'node2' },
    { quorum: 1, lsns: [null], winner: null, unsafe: 'promotion unsafe: quorum 1 over 1 replica needs 1 of them answering to be sure one holds every acknowledged commit, and none does' },
    { quorum: 1, lsns: ['0/3000060', '0/3000000'], winner: 'node2' },
    { quorum: 1, lsns: ['0/3000000', '0/3000060'], winner: 'node3' },
    { quorum: 1, lsns: ['0/3000060', null], winner: null, unsafe: 'promotion unsafe: quorum 1 over 2 replicas needs 2 of them answering to be sure one holds every acknowledged commit, and only node2 does' },
    { quorum: 2, lsns: ['0/3000000', null], winner: 'node2' },
    { quorum: 2, lsns: ['0/3000000', '0/3000060'], winner: 'node3' },
    { quorum: 1, lsns: ['0/3000060', '0/3000000', null], winner: null, unsafe: 'promotion unsafe: quorum 1 over 3 replicas needs 3 of them answering to be sure one holds every acknowledged commit, and only node2 and node3 do' },
    { quorum: 1, lsns: ['0/3000000', '0/3000060', '0/3000010'], winner: 'node3' },
    { quorum: 2, lsns: ['0/3000000', null, null], winner: null, unsafe: 'promotion unsafe: quorum 2 over 3 replicas needs 2 of them answering to be sure one holds every acknowledged commit, and only node2 does' },
    { quorum: 2, lsns: ['0/3000000', '0/3000060', null], winner: 'node3' },
    { quorum: 2, lsns: ['0/3000000', '0/3000060', '0/3000010'], winner: 'node3' },
    { quorum: 3, lsns: [null, null, '0/3000000'], winner: 'node4' },
  ];
  for (const row of rows) {
    const reps = row.lsns.map((l, i) => (l === null ? gone(replica(`node${i + 2}`, '0/1')) : replica(`node${i + 2}`, l)));
    const e = electCandidate([deadPrimary, ...reps], sync(row.quorum), 'node1');
    const label = `quorum ${row.quorum} over ${JSON.stringify(row.lsns)}`;
    assert.equal(e.winner?.name ?? null, row.winner, label);
    assert.equal(e.unsafe, row.unsafe !== undefined, label);
    if (row.unsafe) assert.equal(e.reason, row.unsafe, label);
  }
});

test('synchronous quorum: who may win when the most advanced replica is not eligible', () => {
  // quorum 1 over 2, both answer: only the top position is sure to hold every acknowledged commit
  const q1 = electCandidate([deadPrimary, replica('node2', '0/3000000'), replica('node3', '0/3000060', { nofailover: true })], sync(1), 'node1');
  assert.equal(q1.winner, null);
  assert.equal(q1.rejected.find((r) => r.node === 'node2')?.why, 'is at 0/3000000 and may miss commits acknowledged up to 0/3000060');
  // quorum 2 over 3, all answer: acknowledged commits are on 2 replicas, so the second highest suffices
  const q2 = electCandidate(
    [deadPrimary, replica('node2', '0/3000030'), replica('node3', '0/3000060', { nofailover: true }), replica('node4', '0/3000000')],
    sync(2), 'node1');
  assert.equal(q2.winner?.name, 'node2');
  assert.equal(q2.rejected.find((r) => r.node === 'node4')?.reason, 'behind_quorum');
});

test('synchronous quorum: fenced nodes do not count as replicas, nofailover ones do, a quorum above R is strictest', () => {
  // node4 fenced: R = 2, quorum 1 needs both node2 and node3
  const fenced = electCandidate([deadPrimary, replica('node2', '0/3000060'), replica('node3', '0/3000000'), gone(replica('node4', '0/1', { fenced: true }))], sync(1), 'node1');
  assert.equal(fenced.winner?.name, 'node2');
  // nofailover node3 is down: quorum 1 over 2 needs it answering
  const nofail = electCandidate([deadPrimary, replica('node2', '0/3000060'), gone(replica('node3', '0/1', { nofailover: true }))], sync(1), 'node1');
  assert.equal(nofail.unsafe, true);
  // quorum 3 with 2 replicas (misconfigured): one answering is enough, and it must be the top
  const over = electCandidate([deadPrimary, replica('node2', '0/3000000'), replica('node3', '0/3000060', { nofailover: true })], sync(3), 'node1');
  assert.equal(over.winner, null);
  assert.equal(over.rejected.find((r) => r.node === 'node2')?.reason, 'behind_quorum');
});

test('switchover refusals: unknown, current primary, primary down, down, lagging, nofailover, fenced, not streaming', () => {
  const healthy = [primary(), replica('node2', '0/3000060'), replica('node3', '0/3000060')];
  const cases: { name: string; nodes: NodeObservation[]; to: string; refusal: string; sentence: string; hint: string }[] = [
    { name: 'unknown', nodes: healthy, to: 'node9', refusal: 'unknown', sentence: 'cannot switch over to node9: no node is named node9', hint: 'choose one of node2 and node3' },
    { name: 'primary', nodes: healthy, to: 'node1', refusal: 'primary', sentence: 'cannot switch over to node1: it is already the primary', hint: 'choose one of node2 and node3' },
    { name: 'primary down', nodes: [deadPrimary, replica('node2', '0/3000060')], to: 'node2', refusal: 'primary_down',
      sentence: 'cannot switch over to node2: the primary node1 is not answering, so it cannot hand over cleanly', hint: 'use pgmaestro failover --to node2' },
    { name: 'down', nodes: [primary(), gone(replica('node2', '0/3000060'))], to: 'node2', refusal: 'down', sentence: 'cannot switch over to node2: it is unreachable', hint: 'start node2 or choose another node (see pgmaestro status)' },
    { name: 'lagging', nodes: [primary({ walLsn: parseLsn('0/5000000') }), replica('node2', '0/3000000')], to: 'node2', refusal: 'lagging',
      sentence: 'cannot switch over to node2: it lags 32.0 MB behind 0/5000000 (maximum 1.0 MB)', hint: 'wait until node2 catches up, or raise maximum_lag_on_failover' },
    { name: 'nofailover', nodes: [primary(), replica('node2', '0/3000060', { nofailover: true })], to: 'node2', refusal: 'nofailover',
      sentence: 'cannot switch over to node2: it is tagged nofailover', hint: 'remove tags.nofailover from node2 in the configuration, or choose another node' },
    { name: 'fenced', nodes: [primary(), replica('node2', '0/3000060', { fenced: true })], to: 'node2', refusal: 'fenced', sentence: 'cannot switch over to node2: it is fenced', hint: 'rejoin it first: pgmaestro rejoin node2' },
    { name: 'not streaming', nodes: [primary(), replica('node2', '0/3000060', { upstreamStreaming: false })], to: 'node2', refusal: 'not_streaming',
      sentence: 'cannot switch over to node2: it is not streaming from node1, so it cannot catch up', hint: "check node2's WAL receiver (pgmaestro status) and retry once it streams" },
  ];
  for (const c of cases) {
    const r = checkSwitchoverTarget(c.nodes, P, 'node1', c.to);
    assert.deepEqual(r, { ok: false, refusal: c.refusal, sentence: c.sentence, hint: c.hint }, c.name);
  }
});

test('switchover to a streaming replica is possible, and says how far behind it is; synchronous mode adds nothing', () => {
  const ok = checkSwitchoverTarget([primary(), replica('node2', '0/3000000'), gone(replica('node3', '0/1'))], sync(1), 'node1', 'node2');
  assert.equal(ok.ok, true);
  assert.equal(ok.sentence, 'switchover to node2 possible: it streams from node1, 96 B behind');
  const caught = checkSwitchoverTarget([primary(), replica('node2', '0/3000060')], P, 'node1', 'node2');
  assert.equal(caught.sentence, 'switchover to node2 possible: it streams from node1, caught up');
});

test('manual failover: without a target the election decides; with one, the target passes every election check', () => {
  const nodes = [deadPrimary, replica('node2', '0/3000060'), replica('node3', '0/3000000')];
  assert.deepEqual(checkManualFailover(nodes, P, 'node1', null), { ok: true, target: nodes[1], sentence: 'failover to node2 possible: node2 most advanced at 0/3000060' });
  assert.equal(checkManualFailover(nodes, P, 'node1', 'node3').sentence, 'failover to node3 possible: it is at 0/3000000, 96 B behind');
  assert.equal(checkManualFailover(nodes, P, 'node1', 'node2').sentence, 'failover to node2 possible: it is at 0/3000060, the most advanced known position');

  const none = checkManualFailover([deadPrimary, gone(replica('node2', '0/1')), replica('node3', '0/3000060', { nofailover: true })], P, 'node1', null);
  assert.deepEqual(none, {
    ok: false, refusal: 'no_candidate', sentence: 'cannot fail over: no candidate: node2 is unreachable, node3 is tagged nofailover',
    hint: 'start a replica, or remove tags.nofailover from one (see pgmaestro status)',
  });

  const unknown = checkManualFailover(nodes, P, 'node1', 'nodeX');
  assert.equal(unknown.ok === false && unknown.refusal, 'unknown');
  const self = checkManualFailover(nodes, P, 'node1', 'node1');
  assert.equal(self.sentence, 'cannot fail over to node1: it is already the primary');
  const lag = checkManualFailover(nodes, P, 'node1', 'node3', parseLsn('0/3200000'));
  assert.equal(lag.sentence, 'cannot fail over to node3: it lags 2.0 MB behind 0/3200000 (maximum 1.0 MB)');
});

test('manual failover in synchronous mode refuses an unsafe promotion and a target that may miss acknowledged commits', () => {
  const oneDown = [deadPrimary, replica('node2', '0/3000060'), gone(replica('node3', '0/1'))];
  const any = checkManualFailover(oneDown, sync(1), 'node1', null);
  assert.deepEqual(any.ok === false && [any.refusal, any.hint], ['unsafe', 'bring the unreachable replicas back so that no acknowledged commit can be lost']);
  const named = checkManualFailover(oneDown, sync(1), 'node1', 'node2');
  assert.equal(named.sentence.startsWith('cannot fail over to node2: promotion unsafe: quorum 1 over 2 replicas'), true);

  const behind = checkManualFailover([deadPrimary, replica('node2', '0/3000060'), replica('node3', '0/3000000')], sync(1), 'node1', 'node3');
  assert.deepEqual(behind, {
    ok: false, refusal: 'behind_quorum', sentence: 'cannot fail over to node3: it is at 0/3000000 and may miss commits acknowledged up to 0/3000060',
    hint: 'choose node2, which holds every acknowledged commit',
  });
});
