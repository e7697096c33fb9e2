import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide } from '../../src/ha/policy.js';
import type { Decision } from '../../src/ha/policy.js';
import { DEFAULT_HA_POLICY, EMPTY_MEMORY } from '../../src/ha/observations.js';
import type { HaPolicy, Memory, NodeObservation } from '../../src/ha/observations.js';
import { parseLsn } from '../../src/postgres/lsn.js';

const T0 = 5_000_000;
const node = (name: string, over: Partial<NodeObservation> = {}): NodeObservation => ({
  name, sqlOk: true, probeMs: 3, hostReachable: true, postmasterAlive: true, inRecovery: true,
  walLsn: null, receiveLsn: parseLsn('0/3000060'), replayLsn: parseLsn('0/3000060'), upstreamStreaming: true, upstream: 'node1',
  lastMsgAgeMs: 100, timeline: 1, nofailover: false, priority: 100, fenced: false, ...over,
});
const asPrimary = (name: string, lsn: string, timeline: number, over: Partial<NodeObservation> = {}): NodeObservation =>
  node(name, { inRecovery: false, walLsn: parseLsn(lsn), receiveLsn: null, replayLsn: null, upstreamStreaming: null, upstream: null, lastMsgAgeMs: null, timeline, ...over });
const dead = { sqlOk: false, probeMs: null, postmasterAlive: false, inRecovery: null, walLsn: null, receiveLsn: null, replayLsn: null, upstreamStreaming: null, lastMsgAgeMs: null } as const;
const orphan = { upstreamStreaming: false, lastMsgAgeMs: null } as const;

test('a whole story: crash, restart in place, second crash, failover, the old primary returns and is fenced', () => {
  const policy: HaPolicy = { ...DEFAULT_HA_POLICY, restartFirst: true };
  const n1 = asPrimary('node1', '0/3000060', 1);
  const n2 = node('node2');
  const n3 = node('node3', { receiveLsn: parseLsn('0/3000000') });
  const afterN1 = { ...n2, ...asPrimary('node2', '0/3000200', 2) };
  const n3OnN2 = node('node3', { upstream: 'node2', timeline: 2, receiveLsn: parseLsn('0/3000200') });
  const frames: [number, string, NodeObservation[]][] = [
    [0, 'node1', [n1, n2, n3]],
    [1, 'node1', [{ ...n1, ...dead }, { ...n2, ...orphan }, { ...n3, ...orphan }]],
    [2, 'node1', [n1, n2, n3]],
    [30, 'node1', [{ ...n1, ...dead }, { ...n2, ...orphan }, { ...n3, ...orphan }]],
    [32, 'node1', [{ ...n1, ...dead }, { ...n2, ...orphan }, { ...n3, ...orphan }]],
    [33, 'node1', [{ ...n1, ...dead }, { ...n2, ...orphan }, { ...n3, ...orphan }]],
    [35, 'node1', [{ ...n1, ...dead }, { ...n2, ...orphan }, { ...n3, ...orphan }]],
    // the daemon fenced node1, promoted node2, re-pointed node3 and saved the state
    [36, 'node2', [{ ...n1, ...dead, fenced: true }, afterN1, n3OnN2]],
    [40, 'node2', [{ ...n1, fenced: true }, afterN1, n3OnN2]],
    [41, 'node2', [{ ...n1, ...dead, fenced: true }, afterN1, n3OnN2]],
  ];
  let memory: Memory = EMPTY_MEMORY;
  const ds: Decision[] = [];
  for (const [t, primary, nodes] of frames) {
    const d = decide({ at: T0 + t * 1000, primary, policy, nodes }, memory);
    ds.push(d);
    memory = d.memory;
  }
  assert.deepEqual(ds.map((d) => d.sentence), [
    'all well: node1 answered in 3 ms at 0/3000060, node2 and node3 streaming',
    'restarted node1 in place: its postmaster was down while its host answered',
    'all well: node1 answered in 3 ms at 0/3000060, node2 and node3 streaming',
    'no failover: node1 postmaster down for 0.0 s of 5.0 s (failed again 29.0 s after its restart)',
    'no failover: node1 postmaster down for 2.0 s of 5.0 s (failed again 29.0 s after its restart)',
    'no failover: node1 postmaster down for 3.0 s of 5.0 s (failed again 29.0 s after its restart)',
    'promoted node2: node1 postmaster down for 5.0 s (failed again 29.0 s after its restart), node2 most advanced at 0/3000060',
    'all well: node2 answered in 3 ms at 0/3000200, node3 streaming',
    "fenced node1 again: it runs as a primary on timeline 1 although held fenced until rejoined; node2 is the cluster's primary on timeline 2",
    'all well: node2 answered in 3 ms at 0/3000200, node3 streaming',
  ]);
  assert.deepEqual(ds[6].action, { kind: 'failover', from: 'node1', to: 'node2', reason: 'node1 postmaster down for 5.0 s (failed again 29.0 s after its restart)' });
  // the memory now follows node2; node1's failures are still counted, as a node
  assert.equal(memory.primary, 'node2');
  assert.deepEqual(memory.wal, { lsn: parseLsn('0/3000200'), advancedAt: null });
  assert.equal(memory.heard?.by, 'node3');
  assert.deepEqual(memory.nodes.node1, { failingSince: T0 + 41_000, failures: 1, lastAnswerAt: T0 + 40_000 });
});

test('memory: facts about the primary reset when it changes, nodes that left are forgotten, WAL progress needs a second sight', () => {
  const policy = DEFAULT_HA_POLICY;
  const a = decide({ at: T0, primary: 'node1', policy, nodes: [asPrimary('node1', '0/100', 1), node('node2'), node('node9')] }, EMPTY_MEMORY);
  assert.deepEqual(a.memory.wal, { lsn: parseLsn('0/3000060'), advancedAt: null }); // a replica received more than the primary's last answer said
  const b = decide({ at: T0 + 1000, primary: 'node1', policy, nodes: [asPrimary('node1', '0/3000100', 1), node('node2')] }, a.memory);
  assert.deepEqual(b.memory.wal, { lsn: parseLsn('0/3000100'), advancedAt: T0 + 1000 });
  assert.deepEqual(Object.keys(b.memory.nodes), ['node1', 'node2']);
  assert.deepEqual(b.memory.heard, { by: 'node2', at: T0 + 900 });
  const c = decide({ at: T0 + 2000, primary: 'node2', policy, nodes: [{ ...asPrimary('node1', '0/1', 1), ...dead }, asPrimary('node2', '0/2000000', 2)] }, b.memory);
  assert.deepEqual(c.memory.wal, { lsn: parseLsn('0/2000000'), advancedAt: null });
  assert.equal(c.memory.heard, null);
  assert.equal(c.memory.primary, 'node2');
});

/** Deterministic PRNG (mulberry32) so a failing timeline can be replayed by its seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type PrimaryState = 'ok' | 'late' | 'crashed' | 'stopped' | 'gone';
type ReplicaState = 'stream' | 'orphan' | 'gone';

/**
 * Random timelines, checked against rules re-derived here from the raw
 * history: the policy may only promote a dead primary's eligible replica and
 * only restart a crashed postmaster on a reachable host.
 */
test('random timelines never break the failover rules (400 seeded runs)', () => {
  const seen = { failover: 0, restart: 0, wait: 0, none: 0, fence: 0 };
  for (let seed = 1; seed <= 400; seed++) {
    const r = rng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
    const policy: HaPolicy = {
      ...DEFAULT_HA_POLICY,
      failoverTimeoutMs: pick([3000, 5000]),
      minFailedProbes: pick([1, 2, 3]),
      restartFirst: r() < 0.5,
      restartTimeoutMs: pick([4000, 15000]),
      synchronous: pick([null, null, { quorum: 1 }, { quorum: 2 }]),
    };
    const T = policy.failoverTimeoutMs;
    const statics = ['node2', 'node3'].map((name) => ({ name, nofailover: r() < 0.2, priority: pick([100, 200]), lsn: 0x3000000n + BigInt(Math.floor(r() * 0x200000)) }));
    let ps: PrimaryState = 'ok';
    const rs: ReplicaState[] = ['stream', 'stream'];
    let memory: Memory = EMPTY_MEMORY;
    let at = T0;
    let wal = 0x3200000n;
    let runStart: number | null = null;
    let failures = 0;
    let lastHeard: number | null = null;
    let restart: { at: number; back: boolean } | null = null;
    for (let cycle = 0; cycle < 80; cycle++) {
      at += Math.round(300 + r() * 2200);
      if (r() < 0.15) ps = pick(['ok', 'late', 'crashed', 'stopped', 'gone'] as const);
      for (let i = 0; i < 2; i++) if (r() < 0.15) rs[i] = pick(['stream', 'orphan', 'gone'] as const);
      if (ps === 'ok' && r() < 0.5) wal += 0x100n;
      const base = asPrimary('node1', '0/0', 1, { walLsn: wal });
      const p: NodeObservation =
        ps === 'ok' ? base
        : ps === 'late' ? { ...base, sqlOk: false, probeMs: T + 500 }
        : ps === 'crashed' ? { ...base, ...dead }
        : ps === 'stopped' ? { ...base, ...dead, postmasterAlive: true }
        : { ...base, ...dead, hostReachable: false, postmasterAlive: null };
      const reps = statics.map((s, i) => {
        const n = node(s.name, { nofailover: s.nofailover, priority: s.priority, receiveLsn: s.lsn, lastMsgAgeMs: Math.floor(r() * 8000) });
        return rs[i] === 'stream' ? n : rs[i] === 'orphan' ? { ...n, ...orphan } : { ...n, ...dead, hostReachable: false, postmasterAlive: null };
      });
      const d = decide({ at, primary: 'node1', policy, nodes: [p, ...reps] }, memory);
      memory = d.memory;
      seen[d.action.kind]++;

      // the history, re-derived
      const answered = p.sqlOk || p.probeMs !== null;
      if (answered) [runStart, failures] = [null, 0];
      else [runStart, failures] = [runStart ?? at, failures + 1];
      for (const n of reps) if (n.sqlOk && n.upstreamStreaming) lastHeard = Math.max(lastHeard ?? -Infinity, at - n.lastMsgAgeMs!);
      if (restart && answered) restart.back = true;

      const label = `seed ${seed} cycle ${cycle}: ${d.sentence}`;
      assert.ok(d.sentence.length > 0 && !d.sentence.includes('\n'), label);
      if (answered) assert.equal(d.action.kind, 'none', label);
      if (d.action.kind === 'restart') {
        assert.ok(p.hostReachable && p.postmasterAlive === false, label);
        assert.ok(!restart || restart.back || at - restart.at >= policy.restartTimeoutMs, label);
        restart = { at, back: false };
      }
      if (d.action.kind === 'failover') {
        assert.ok(!answered && runStart !== null && at - runStart >= T && failures >= policy.minFailedProbes, label);
        assert.ok(lastHeard === null || at - lastHeard >= T, label);
        assert.ok(!restart || restart.back || at - restart.at >= policy.restartTimeoutMs, label);
        const to = reps.find((n) => n.name === (d.action as { to: string }).to)!;
        assert.ok(to.sqlOk && to.inRecovery === true && !to.nofailover && !to.fenced, label);
        assert.ok(d.sentence.startsWith(`promoted ${to.name}: `), label);
        if (policy.synchronous) {
          const up = reps.filter((n) => n.sqlOk);
          assert.ok(up.length >= 2 - policy.synchronous.quorum + 1, label);
          assert.ok(up.every((n) => n.receiveLsn! <= to.receiveLsn! || policy.synchronous!.quorum === 2), label);
        }
        break; // the cluster has a new primary: this timeline ends
      }
    }
  }
  assert.ok(seen.failover > 20 && seen.restart > 20 && seen.wait > 100 && seen.none > 100, JSON.stringify(seen));
});
