import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide } from '../../src/ha/policy.js';
import type { Decision } from '../../src/ha/policy.js';
import { DEFAULT_HA_POLICY, EMPTY_MEMORY } from '../../src/ha/observations.js';
import type { HaPolicy, Memory, NodeObservation, Snapshot } from '../../src/ha/observations.js';
import { parseLsn } from '../../src/postgres/lsn.js';
import { crashed, gone, late, primary, replica, stopped } from '../helpers/ha-observations.js';

const P: HaPolicy = { ...DEFAULT_HA_POLICY, restartFirst: false };
const T0 = 1_000_000;

/** A replica whose WAL receiver is not connected (its primary is gone). */
const orphan = (r: NodeObservation): NodeObservation => ({ ...r, upstreamStreaming: false, lastMsgAgeMs: null });

const r2 = replica('node2', '0/3000060');
const r3 = replica('node3', '0/3000000');

function deepFreeze<T>(x: T): T {
  if (x && typeof x === 'object' && !Object.isFrozen(x)) {
    Object.freeze(x);
    for (const v of Object.values(x)) deepFreeze(v);
  }
  return x;
}

type Frame = { t: number; nodes: NodeObservation[]; primary?: string; policy?: HaPolicy };

/** Drives decide() through a timeline (t in seconds), threading the memory; inputs are frozen to prove purity. */
function run(frames: Frame[], memory: Memory = EMPTY_MEMORY): Decision[] {
  const out: Decision[] = [];
  for (const f of frames) {
    const snap: Snapshot = deepFreeze({ at: T0 + Math.round(f.t * 1000), primary: f.primary ?? 'node1', policy: f.policy ?? P, nodes: f.nodes });
    const d = decide(snap, deepFreeze(memory));
    out.push(d);
    memory = d.memory;
  }
  return out;
}
const every = (from: number, to: number, step: number, nodes: (t: number) => NodeObservation[], policy?: HaPolicy): Frame[] => {
  const fs: Frame[] = [];
  for (let t = from; t <= to + 1e-9; t += step) fs.push({ t: Math.round(t * 10) / 10, nodes: nodes(t), policy });
  return fs;
};
const healthyBefore = every(-2, -1, 1, () => [primary(), r2, r3]);
const last = <T>(xs: T[]): T => xs[xs.length - 1];

test('a healthy cluster says all is well, and names replicas that do not stream', () => {
  const [d] = run([{ t: 0, nodes: [primary(), r2, r3] }]);
  assert.deepEqual(d.action, { kind: 'none' });
  assert.equal(d.sentence, 'all well: node1 answered in 3 ms at 0/3000060, node2 and node3 streaming');
  const [e] = run([{ t: 0, nodes: [primary(), r2, orphan(r3), replica('node4', '0/1', { fenced: true })] }]);
  assert.equal(e.sentence, 'primary alive: node1 answered in 3 ms at 0/3000060, node2 streaming, node3 not streaming');
  const [f] = run([{ t: 0, nodes: [primary()] }]);
  assert.equal(f.sentence, 'all well: node1 answered in 3 ms at 0/3000060, no replica');
});

test('crash with restart_first off: the clock runs for failover_timeout, then the most advanced replica is promoted', () => {
  const ds = run([...healthyBefore, ...every(0, 5, 1, () => [crashed(primary()), orphan(r2), orphan(r3)])]);
  assert.deepEqual(ds.slice(2).map((d) => d.sentence), [
    'no failover: node1 postmaster down for 0.0 s of 5.0 s',
    'no failover: node1 postmaster down for 1.0 s of 5.0 s',
    'no failover: node1 postmaster down for 2.0 s of 5.0 s',
    'no failover: node1 postmaster down for 3.0 s of 5.0 s',
    'no failover: node1 postmaster down for 4.0 s of 5.0 s',
    'promoted node2: node1 postmaster down for 5.0 s, node2 most advanced at 0/3000060',
  ]);
  assert.deepEqual(ds[3].action, { kind: 'wait', node: 'node1' });
  assert.deepEqual(last(ds).action, { kind: 'failover', from: 'node1', to: 'node2', reason: 'node1 postmaster down for 5.0 s' });
});

test('crash with restart_first on: restarted in place at once, no promotion once it answers', () => {
  const policy = { ...P, restartFirst: true };
  const ds = run([
    { t: 0, nodes: [primary(), r2, r3], policy },
    { t: 1, nodes: [crashed(primary()), orphan(r2), orphan(r3)], policy },
    { t: 2, nodes: [stopped(primary()), orphan(r2), orphan(r3)], policy }, // starting up: pid alive, SQL refused
    { t: 3, nodes: [primary(), r2, r3], policy },
  ]);
  assert.deepEqual(ds.map((d) => d.action.kind), ['none', 'restart', 'wait', 'none']);
  assert.equal(ds[1].sentence, 'restarted node1 in place: its postmaster was down while its host answered');
  assert.equal(ds[2].sentence, 'no failover: restarted node1 in place 1.0 s ago, waiting up to 15.0 s for it to answer');
  assert.deepEqual(ds[3].memory.restart, { node: 'node1', at: T0 + 1000, backAt: T0 + 3000 });
});

test('a restart that does not bring the primary back within restart_timeout ends in a failover', () => {
  const policy = { ...P, restartFirst: true };
  const ds = run([...healthyBefore, ...every(0, 15, 1, () => [crashed(primary()), orphan(r2), orphan(r3)], policy)]);
  const kinds = ds.slice(2).map((d) => d.action.kind);
  assert.deepEqual(kinds, ['restart', ...Array(14).fill('wait'), 'failover']);
  assert.equal(ds[16].sentence, 'no failover: restarted node1 in place 14.0 s ago, waiting up to 15.0 s for it to answer');
  assert.equal(last(ds).sentence, 'promoted node2: node1 postmaster down for 15.0 s (its restart 15.0 s ago did not bring it back), node2 most advanced at 0/3000060');
});

test('a second crash within restart_window is not restarted again: it fails over after the timeout; after the window it is restarted', () => {
  const policy = { ...P, restartFirst: true };
  const down = () => [crashed(primary()), orphan(r2), orphan(r3)];
  const ds = run([
    { t: 0, nodes: down(), policy },
    { t: 1, nodes: [primary(), r2, r3], policy },
    ...every(60, 65, 1, down, policy),
  ]);
  assert.equal(ds[0].action.kind, 'restart');
  assert.equal(ds[2].sentence, 'no failover: node1 postmaster down for 0.0 s of 5.0 s (failed again 60.0 s after its restart)');
  assert.equal(last(ds).sentence, 'promoted node2: node1 postmaster down for 5.0 s (failed again 60.0 s after its restart), node2 most advanced at 0/3000060');

  const later = run([{ t: 0, nodes: down(), policy }, { t: 1, nodes: [primary(), r2, r3], policy }, { t: 400, nodes: down(), policy }]);
  assert.deepEqual(later.map((d) => d.action.kind), ['restart', 'none', 'restart']);
});

test('restart_first needs a reachable host and a known-dead pid: unreachable or hung primaries are not restarted', () => {
  const policy = { ...P, restartFirst: true };
  for (const sick of [gone(primary()), stopped(primary()), { ...crashed(primary()), postmasterAlive: null }]) {
    const [d] = run([{ t: 0, nodes: [sick, orphan(r2)], policy }]);
    assert.equal(d.action.kind, 'wait', JSON.stringify(sick));
  }
});

test('SIGSTOP shorter than the timeout: a late answer proves life and resets the clock; no failover', () => {
  const ds = run([
    ...healthyBefore,
    ...every(0, 3, 1, () => [stopped(primary()), orphan(r2), orphan(r3)]),
    { t: 4, nodes: [late(primary(), 4100), r2, r3] },
    { t: 5, nodes: [primary(), r2, r3] },
  ]);
  assert.ok(ds.every((d) => d.action.kind === 'none' || d.action.kind === 'wait'));
  assert.equal(ds[5].sentence, 'no failover: node1 not answering for 3.0 s of 5.0 s');
  assert.equal(ds[6].sentence, 'no failover: node1 answered slowly (4.1 s), so it is alive');
  assert.deepEqual(ds[6].memory.nodes.node1, { failingSince: null, failures: 0, lastAnswerAt: T0 + 4000 });
});

test('a late answer resets the run of failures: the clock starts again after it', () => {
  const ds = run([
    ...every(0, 4, 1, () => [gone(primary()), orphan(r2)]),
    { t: 4.5, nodes: [late(primary(), 4400), r2] },
    ...every(5, 9, 1, () => [gone(primary()), orphan(r2)]),
  ]);
  assert.equal(last(ds).sentence, 'no failover: node1 unreachable for 4.0 s of 5.0 s');
});

test('SIGSTOP of the whole server longer than the timeout fails over; of the postmaster alone (walsenders alive) it does not', () => {
  const all = run([...healthyBefore, ...every(0, 5, 1, () => [stopped(primary()), orphan(r2), orphan(r3)])]);
  assert.equal(last(all).sentence, 'promoted node2: node1 not answering for 5.0 s, node2 most advanced at 0/3000060');

  const pmOnly = run([...healthyBefore, ...every(0, 30, 1, () => [stopped(primary()), replica('node2', '0/3000060', { lastMsgAgeMs: 200 }), orphan(r3)])]);
  assert.ok(pmOnly.every((d) => d.action.kind === 'none'));
  assert.equal(last(pmOnly).sentence, 'no failover: node1 not answering us, but node2 still streams from it (last message 0.2 s ago)');
});

test('network delay: answers later than the probe timeout while WAL advances are not a death', () => {
  const ds = run([
    { t: 0, nodes: [primary(), r2, r3] },
    { t: 1, nodes: [late(primary({ walLsn: parseLsn('0/3000100') }), 4200), r2, r3] },
    { t: 2.1, nodes: [late(primary({ walLsn: parseLsn('0/3000100') }), 4200), r2, r3] },
  ]);
  assert.equal(ds[1].sentence, 'no failover: node1 answered slowly (4.2 s) but WAL advanced 0.0 s ago');
  assert.equal(ds[2].sentence, 'no failover: node1 answered slowly (4.2 s) but WAL advanced 1.1 s ago');
  assert.deepEqual(ds.map((d) => d.action.kind), ['none', 'none', 'none']);
});

test('isolated primary: no failover while a replica still streams from it; failover after the timeout when none does', () => {
  const heard = run([...healthyBefore, ...every(0, 20, 2, () => [gone(primary()), replica('node2', '0/3000060', { lastMsgAgeMs: 400 }), orphan(r3)])]);
  assert.ok(heard.every((d) => d.action.kind === 'none'));
  assert.equal(last(heard).sentence, 'no failover: node1 unreachable for us, but node2 still streams from it (last message 0.4 s ago)');

  const cut = run([...healthyBefore, ...every(0, 6, 2, () => [gone(primary()), orphan(r2), orphan(r3)])]);
  assert.deepEqual(cut.slice(2).map((d) => d.sentence), [
    'no failover: node1 unreachable for 0.0 s of 5.0 s',
    'no failover: node1 unreachable for 2.0 s of 5.0 s',
    'no failover: node1 unreachable for 4.0 s of 5.0 s',
    'promoted node2: node1 unreachable for 6.0 s, node2 most advanced at 0/3000060',
  ]);
});

test('streams from another upstream, stale streams and the word of unreachable replicas do not keep a primary alive', () => {
  const cases: [string, NodeObservation][] = [
    ['cascaded from node3', replica('node2', '0/3000060', { upstream: 'node3' })],
    ['last message older than the timeout', replica('node2', '0/3000060', { lastMsgAgeMs: 5000 })],
    ['replica probe failed', replica('node2', '0/3000060', { sqlOk: false, probeMs: null })],
  ];
  for (const [name, r] of cases) {
    const ds = run(every(0, 6, 1, () => [gone(primary()), r, orphan(r3)]));
    assert.equal(last(ds).action.kind, 'failover', name);
  }
});

test('a replica that heard the primary recently delays the verdict until the timeout has passed since then', () => {
  const streaming = replica('node2', '0/3000060', { lastMsgAgeMs: 300 });
  const ds = run([...every(0, 8, 1, () => [gone(primary()), streaming, orphan(r3)]), ...every(9, 13, 1, () => [gone(primary()), orphan(r2), orphan(r3)])]);
  assert.equal(ds[9].sentence, 'no failover: node1 unreachable for 9.0 s, but node2 heard from it 1.3 s ago');
  assert.equal(ds[12].sentence, 'no failover: node1 unreachable for 12.0 s, but node2 heard from it 4.3 s ago');
  assert.equal(ds[12].action.kind, 'none');
  assert.equal(last(ds).sentence, 'promoted node2: node1 unreachable for 13.0 s, node2 most advanced at 0/3000060');
});

test('WAL received from the primary is progress even when our probes fail', () => {
  const stale = (lsn: string) => replica('node2', lsn, { lastMsgAgeMs: 9000 });
  const at = (t: number, lsn: string): Frame => ({ t, nodes: [stopped(primary()), stale(lsn), orphan(r3)] });
  const flat = run([0, 1, 2, 3, 4, 5].map((t) => at(t, '0/3000060')));
  assert.equal(last(flat).action.kind, 'failover');
  const moving = run([...[0, 1, 2, 3, 4].map((t) => at(t, '0/3000060')), at(5, '0/3000100'), at(7, '0/3000100'), at(10, '0/3000100')]);
  assert.equal(moving[5].sentence, 'no failover: node1 not answering for 5.0 s, but WAL advanced 0.0 s ago');
  assert.equal(moving[6].sentence, 'no failover: node1 not answering for 7.0 s, but WAL advanced 2.0 s ago');
  assert.equal(last(moving).action.kind, 'failover');
});

test('a stall of the daemon between two probes is not an outage: min_failed_probes', () => {
  const ds = run([{ t: 0, nodes: [gone(primary()), orphan(r2)] }, { t: 10, nodes: [gone(primary()), orphan(r2)] }, { t: 11, nodes: [gone(primary()), orphan(r2)] }]);
  assert.equal(ds[1].sentence, 'no failover: node1 unreachable for 10.0 s, but only 2 of 3 probes failed');
  assert.equal(ds[2].action.kind, 'failover');
});

test('no eligible candidate: never fail over, say why; a crashed postmaster is then restarted in place whatever restart_first says', () => {
  const blocked = () => [gone(primary()), gone(r2), replica('node3', '0/3000060', { nofailover: true, upstreamStreaming: false })];
  const ds = run(every(0, 6, 2, blocked));
  assert.deepEqual(last(ds).action, { kind: 'wait', node: 'node1' });
  assert.equal(last(ds).sentence, 'no failover: node1 unreachable for 6.0 s, but no candidate: node2 is unreachable, node3 is tagged nofailover');

  const crash = () => [crashed(primary()), ...blocked().slice(1)];
  const cs = run(every(0, 6, 1, crash));
  assert.equal(cs[5].sentence, 'restarted node1 in place: its postmaster was down and no replica can take over (no candidate: node2 is unreachable, node3 is tagged nofailover)');
  assert.deepEqual(cs[5].action, { kind: 'restart', node: 'node1' });
  assert.equal(cs[6].sentence, 'no failover: restarted node1 in place 1.0 s ago, waiting up to 15.0 s for it to answer');
});

test('lag above maximum_lag_on_failover disqualifies a replica; the old primary\'s last WAL position is the reference', () => {
  const hot = primary({ walLsn: parseLsn('0/5000000') });
  const a = replica('node2', '0/3000000');
  const b = replica('node3', '0/4F00000');
  const ok = run([{ t: -1, nodes: [hot, a, b] }, ...every(0, 5, 1, () => [gone(hot), orphan(a), orphan(b)])]);
  assert.equal(last(ok).sentence, 'promoted node3: node1 unreachable for 5.0 s, node3 most advanced at 0/4F00000');
  const c = replica('node3', '0/4000000');
  const none = run([{ t: -1, nodes: [hot, a, c] }, ...every(0, 5, 1, () => [gone(hot), orphan(a), orphan(c)])]);
  assert.equal(last(none).sentence,
    'no failover: node1 unreachable for 5.0 s, but no candidate: node2 lags 32.0 MB behind 0/5000000 (maximum 1.0 MB), node3 lags 16.0 MB behind 0/5000000 (maximum 1.0 MB)');
});

test('priority breaks a tie in position', () => {
  const a = replica('node2', '0/3000060');
  const b = replica('node3', '0/3000060', { priority: 200 });
  const ds = run(every(0, 5, 1, () => [gone(primary()), orphan(a), orphan(b)]));
  assert.deepEqual(last(ds).action, { kind: 'failover', from: 'node1', to: 'node3', reason: 'node1 unreachable for 5.0 s' });
  assert.equal(last(ds).sentence, 'promoted node3: node1 unreachable for 5.0 s, node3 most advanced at 0/3000060 (priority 200 over node2)');
});

test('synchronous quorum: promotion only when enough replicas answer to hold every acknowledged commit', () => {
  const rows: { quorum: number; reps: NodeObservation[]; expect: string }[] = [
    { quorum: 1, reps: [orphan(r2), orphan(r3)], expect: 'promoted node2: node1 unreachable for 5.0 s, node2 most advanced at 0/3000060' },
    { quorum: 1, reps: [orphan(r2), gone(r3)],
      expect: 'no failover: node1 unreachable for 5.0 s, but promotion unsafe: quorum 1 over 2 replicas needs 2 of them answering to be sure one holds every acknowledged commit, and only node2 does' },
    { quorum: 2, reps: [gone(r2), orphan(r3)], expect: 'promoted node3: node1 unreachable for 5.0 s, node3 most advanced at 0/3000000' },
    { quorum: 1, reps: [orphan(r2), orphan(r3), gone(replica('node4', '0/1'))],
      expect: 'no failover: node1 unreachable for 5.0 s, but promotion unsafe: quorum 1 over 3 replicas needs 3 of them answering to be sure one holds every acknowledged commit, and only node2 and node3 do' },
    { quorum: 1, reps: [orphan(r2), orphan(r3), orphan(replica('node4', '0/3000010'))], expect: 'promoted node2: node1 unreachable for 5.0 s, node2 most advanced at 0/3000060' },
    { quorum: 2, reps: [orphan(r2), orphan(r3), gone(replica('node4', '0/1'))], expect: 'promoted node2: node1 unreachable for 5.0 s, node2 most advanced at 0/3000060' },
  ];
  for (const row of rows) {
    const policy = { ...P, synchronous: { quorum: row.quorum } };
    const ds = run(every(0, 5, 1, () => [gone(primary()), ...row.reps], policy));
    assert.equal(last(ds).sentence, row.expect);
  }
});

test('an old primary that comes back as a primary is fenced, whether or not the state already holds it fenced', () => {
  const newPrimary = replica('node2', '0/3000060', { inRecovery: false, walLsn: parseLsn('0/3000200'), timeline: 2, upstream: null, upstreamStreaming: null, lastMsgAgeMs: null });
  const node3 = replica('node3', '0/3000200', { upstream: 'node2', timeline: 2 });
  const [d] = run([{ t: 0, primary: 'node2', nodes: [primary(), newPrimary, node3] }]);
  assert.deepEqual(d.action, { kind: 'fence', node: 'node1' });
  assert.equal(d.sentence, "fenced node1: it runs as a primary on timeline 1, but node2 is the cluster's primary on timeline 2");
  const [e] = run([{ t: 0, primary: 'node2', nodes: [primary({ fenced: true }), newPrimary, node3] }]);
  assert.equal(e.sentence, "fenced node1 again: it runs as a primary on timeline 1 although held fenced until rejoined; node2 is the cluster's primary on timeline 2");
  // fencing outranks a failing cluster primary
  const [f] = run([{ t: 0, primary: 'node2', nodes: [primary(), gone(newPrimary), node3] }]);
  assert.equal(f.action.kind, 'fence');
});

test('a fenced cluster primary means an interrupted failover: it is finished at once', () => {
  const [d] = run([{ t: 0, nodes: [primary({ fenced: true }), r2, r3] }]);
  assert.deepEqual(d.action, { kind: 'failover', from: 'node1', to: 'node2', reason: 'node1 is fenced' });
  assert.equal(d.sentence, 'promoted node2: node1 is fenced, node2 most advanced at 0/3000060');
  const [e] = run([{ t: 0, nodes: [crashed(primary({ fenced: true })), gone(r2)], policy: { ...P, restartFirst: true } }]);
  assert.equal(e.sentence, 'no failover: node1 is fenced, but no candidate: node2 is unreachable');
  assert.equal(e.action.kind, 'wait');
});

test('inconsistent input is reported, never acted on', () => {
  const [d] = run([{ t: 0, primary: 'node9', nodes: [primary(), r2] }]);
  assert.deepEqual(d.action, { kind: 'wait', node: 'node9' });
  assert.equal(d.sentence, "no decision: node9, the cluster's primary, is missing from the observations");
  const [e] = run([{ t: 0, nodes: [primary({ inRecovery: true }), r2] }]);
  assert.equal(e.sentence, "no writable primary: node1, the cluster's primary, answers but is in recovery");
  assert.equal(e.action.kind, 'wait');
});
