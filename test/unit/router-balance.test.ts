import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClusterState } from '../../src/cluster/state.js';
import {
  chooseReadReplica,
  chooseRo,
  eligibleReplicas,
  leastConnections,
  noPrimaryReason,
  primaryFromState,
  referenceLsn,
  replicaEligibility,
  type NodeView,
} from '../../src/router/balance.js';

const cfg = { nodes: [{ name: 'node1' }, { name: 'node2' }, { name: 'node3' }], initialPrimary: 'node1' } as unknown as Parameters<typeof primaryFromState>[0];
const NOW = Date.parse('2026-01-01T00:00:00Z');
function state(change: Partial<ClusterState> = {}): ClusterState {
  return { version: 1, cluster: 'c', primary: 'node2', timeline: 2, fenced: [], updatedAt: '2026-01-01T00:00:00Z', ...change };
}
const policy = { maxLagBytes: 1000, maxLagSeconds: 10 };

function primary(name: string, lsn: bigint): NodeView {
  return { name, reachable: true, inRecovery: false, currentLsn: lsn, replayLsn: null, receiveLsn: null, replayDelaySeconds: 0 };
}
function replica(name: string, replay: bigint, receive = replay, delay = 0): NodeView {
  return { name, reachable: true, inRecovery: true, currentLsn: null, replayLsn: replay, receiveLsn: receive, replayDelaySeconds: delay };
}
function down(name: string): NodeView {
  return { name, reachable: false, inRecovery: null, currentLsn: null, replayLsn: null, receiveLsn: null, replayDelaySeconds: null };
}

// --- which primary ---------------------------------------------------------------

test('primary: the recorded primary; with no state or an unknown name, the configured one', () => {
  assert.equal(primaryFromState(cfg, state(), NOW), 'node2');
  assert.equal(primaryFromState(cfg, null, NOW), 'node1');
  assert.equal(primaryFromState(cfg, state({ primary: 'gone' }), NOW), 'node1');
  assert.equal(noPrimaryReason(cfg, state(), NOW), null);
});

test('primary: none while a promotion is pending', () => {
  const st = state({ pending: { kind: 'failover', from: 'node2', to: 'node3', reason: 'x', at: '' } });
  assert.equal(primaryFromState(cfg, st, NOW), null);
  assert.equal(noPrimaryReason(cfg, st, NOW), 'a failover from node2 to node3 is in progress');
  assert.equal(noPrimaryReason(cfg, state({ pending: { kind: 'switchover', from: 'a', to: 'b', reason: '', at: '' } }), NOW), 'a switchover from a to b is in progress');
});

test('primary: none while a hold is in force; a hold past its time lapses by itself', () => {
  const held = state({ hold: { reason: 'switchover: stopping node2', until: new Date(NOW + 1).toISOString() } });
  assert.equal(primaryFromState(cfg, held, NOW), null);
  assert.equal(noPrimaryReason(cfg, held, NOW), 'switchover: stopping node2');
  const stale = state({ hold: { reason: 'x', until: new Date(NOW).toISOString() } });
  assert.equal(primaryFromState(cfg, stale, NOW), 'node2', 'until is exclusive');
  assert.equal(primaryFromState(cfg, state({ hold: null }), NOW), 'node2');
});

test('primary: none when the recorded primary is fenced; a fenced replica does not matter', () => {
  assert.equal(primaryFromState(cfg, state({ fenced: ['node2'] }), NOW), null);
  assert.equal(noPrimaryReason(cfg, state({ fenced: ['node2'] }), NOW), 'the primary node2 is fenced');
  assert.equal(primaryFromState(cfg, state({ fenced: ['node1'] }), NOW), 'node2');
});

test('primary: a pending promotion wins over a hold, a hold over a fence (the reason names the first)', () => {
  const all = state({ pending: { kind: 'failover', from: 'node2', to: 'node3', reason: '', at: '' }, hold: { reason: 'held', until: new Date(NOW + 1000).toISOString() }, fenced: ['node2'] });
  assert.match(noPrimaryReason(cfg, all, NOW)!, /failover/);
  assert.equal(noPrimaryReason(cfg, { ...all, pending: null }, NOW), 'held');
});

// --- reference position ------------------------------------------------------------

test('reference LSN: the primary\'s current position', () => {
  assert.equal(referenceLsn([primary('node1', 500n), replica('node2', 400n, 450n)], 'node1'), 500n);
});

test('reference LSN: without a reachable primary, the most advanced replica position, received or replayed', () => {
  assert.equal(referenceLsn([down('node1'), replica('node2', 400n, 450n), replica('node3', 420n, 430n)], 'node1'), 450n);
  assert.equal(referenceLsn([replica('node2', 400n, 450n)], null), 450n);
  assert.equal(referenceLsn([{ ...replica('node2', 460n), receiveLsn: null }, replica('node3', 100n)], null), 460n);
  // a named primary that is in recovery (demoted, or the state is stale) does not count as the primary
  assert.equal(referenceLsn([{ ...primary('node1', 900n), inRecovery: true, replayLsn: 300n, receiveLsn: 300n }, replica('node2', 200n)], 'node1'), 300n);
  assert.equal(referenceLsn([down('node1'), down('node2')], 'node1'), null);
  assert.equal(referenceLsn([], 'node1'), null);
});

// --- eligibility ---------------------------------------------------------------------

const ctx = { primary: 'node1', fenced: [] as string[], reference: 5000n };

test('eligibility: a streaming replica within both limits takes reads', () => {
  assert.deepEqual(replicaEligibility(replica('node2', 5000n), ctx, policy), { eligible: true });
  assert.deepEqual(replicaEligibility(replica('node2', 4000n), ctx, policy), { eligible: true }, 'exactly max_lag behind is still within');
  assert.deepEqual(replicaEligibility(replica('node2', 6000n), ctx, policy), { eligible: true }, 'ahead of a stale reference');
  assert.deepEqual(replicaEligibility(replica('node2', 1n), { ...ctx, reference: null }, policy), { eligible: true }, 'no reference: no byte limit');
  assert.deepEqual(replicaEligibility(replica('node2', 5000n, 5000n, 10), ctx, policy), { eligible: true }, 'exactly max_lag_seconds is still within');
});

test('eligibility: every reason to refuse, each in one clause', () => {
  const cases: [NodeView, typeof ctx, string, boolean][] = [
    [replica('node2', 5000n), { ...ctx, fenced: ['node2'] }, 'fenced', true],
    [replica('node1', 5000n), ctx, 'it is the primary', false],
    [down('node2'), ctx, 'unreachable', false],
    [primary('node2', 5000n), ctx, 'not in recovery (promoted?)', false],
    [{ ...replica('node2', 0n), replayLsn: null }, ctx, 'has replayed nothing yet', false],
    [replica('node2', 3999n), ctx, '1001 bytes behind (max_lag 1000)', false],
    [replica('node2', 5000n, 6000n, 10.5), ctx, 'replay 10.5 s behind (max_lag_seconds 10)', false],
  ];
  for (const [view, c, reason, fenced] of cases) assert.deepEqual(replicaEligibility(view, c, policy), { eligible: false, reason, fenced }, reason);
});

test('eligibility: fenced is checked first (a fenced old primary may look like a healthy primary)', () => {
  assert.deepEqual(replicaEligibility(primary('node2', 9n), { ...ctx, fenced: ['node2'] }, policy), { eligible: false, reason: 'fenced', fenced: true });
  assert.deepEqual(replicaEligibility(down('node2'), { ...ctx, fenced: ['node2'] }, policy), { eligible: false, reason: 'fenced', fenced: true });
});

test('eligibility: every node but the primary, the reference taken from the views', () => {
  const views = [primary('node1', 10_000n), replica('node2', 9500n), replica('node3', 8000n)];
  const m = eligibleReplicas(views, 'node1', [], policy);
  assert.deepEqual([...m.keys()], ['node2', 'node3']);
  assert.deepEqual(m.get('node2'), { eligible: true });
  assert.deepEqual(m.get('node3'), { eligible: false, reason: '2000 bytes behind (max_lag 1000)', fenced: false });
  // no primary (failover in progress): every node is judged, against the best replica
  const during = eligibleReplicas([down('node1'), replica('node2', 9500n), replica('node3', 9000n)], null, ['node1'], policy);
  assert.deepEqual([...during.keys()], ['node1', 'node2', 'node3']);
  assert.equal(during.get('node1')!.eligible, false);
  assert.deepEqual(during.get('node2'), { eligible: true });
  assert.deepEqual(during.get('node3'), { eligible: true });
});

// --- choosing ---------------------------------------------------------------------------

test('least connections: the fewest; ties broken by the turn, so one-by-one connections alternate', () => {
  const load: Record<string, number> = { a: 2, b: 1, c: 1 };
  const n = (x: string) => load[x];
  assert.equal(leastConnections(['a', 'b', 'c'], n, 0), 'b');
  assert.equal(leastConnections(['a', 'b', 'c'], n, 1), 'c');
  assert.equal(leastConnections(['a', 'b', 'c'], n, 2), 'b');
  assert.equal(leastConnections(['a'], n, 7), 'a');
  assert.equal(leastConnections([], n, 0), null);
  // connections opened one after another, each closed before the next: all zero, so the turn spreads them
  const seen = new Map<string, number>();
  for (let t = 0; t < 20; t++) {
    const c = leastConnections(['x', 'y'], () => 0, t)!;
    seen.set(c, (seen.get(c) ?? 0) + 1);
  }
  assert.deepEqual([...seen].sort(), [['x', 10], ['y', 10]]);
  // connections kept open: least connections alone spreads them evenly
  const open: Record<string, number> = { x: 0, y: 0 };
  for (let t = 0; t < 20; t++) open[leastConnections(['x', 'y'], (k) => open[k], 0)!]++;
  assert.deepEqual(open, { x: 10, y: 10 });
});

test('ro: an eligible replica; else the primary (fallback primary) or a refusal; with no primary either, hold', () => {
  const zero = () => 0;
  assert.deepEqual(chooseRo(['node2'], 'node1', 'primary', zero, 0), { kind: 'replica', node: 'node2' });
  assert.deepEqual(chooseRo(['node2'], 'node1', 'refuse', zero, 0), { kind: 'replica', node: 'node2' });
  assert.deepEqual(chooseRo([], 'node1', 'primary', zero, 0), { kind: 'primary', node: 'node1' });
  assert.deepEqual(chooseRo([], 'node1', 'refuse', zero, 0), { kind: 'refuse' });
  assert.deepEqual(chooseRo([], null, 'primary', zero, 0), { kind: 'hold' });
  assert.deepEqual(chooseRo([], null, 'refuse', zero, 0), { kind: 'refuse' });
  assert.deepEqual(chooseRo(['node2'], null, 'primary', zero, 0), { kind: 'replica', node: 'node2' }, 'reads go on during a failover');
});

test('read-your-writes: only a replica that replayed the client\'s last commit; none means the primary', () => {
  const replay: Record<string, bigint | null> = { node2: 100n, node3: 200n, node4: null };
  const r = (n: string) => replay[n];
  const zero = () => 0;
  assert.equal(chooseReadReplica(['node2', 'node3'], r, 150n, zero, 0), 'node3');
  assert.equal(chooseReadReplica(['node2', 'node3'], r, 200n, zero, 0), 'node3', 'replayed exactly up to the commit is enough');
  assert.equal(chooseReadReplica(['node2', 'node3'], r, 201n, zero, 0), null);
  assert.equal(chooseReadReplica(['node2', 'node3'], r, 100n, zero, 1), 'node3', 'both caught up: balanced');
  assert.equal(chooseReadReplica(['node2', 'node3'], r, 100n, zero, 0), 'node2');
  assert.equal(chooseReadReplica(['node4'], r, 1n, zero, 0), null, 'an unknown replay position is not caught up');
  assert.equal(chooseReadReplica(['node4'], r, null, zero, 0), 'node4', 'no commit yet: any eligible replica');
  assert.equal(chooseReadReplica([], r, null, zero, 0), null);
  assert.equal(chooseReadReplica(['node2', 'node3'], r, null, (n) => (n === 'node2' ? 5 : 1), 0), 'node3');
});
