import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { armGuard, guardDue, guardFiles, monoNow, takeFiring } from '../../src/agent/guard.js';
import { busyError } from '../../src/cluster/lock.js';
import { confirmCandidate } from '../../src/ha/election.js';
import { DEFAULT_HA_POLICY, EMPTY_MEMORY, type HaPolicy, type Memory, type Snapshot } from '../../src/ha/observations.js';
import { decide } from '../../src/ha/policy.js';
import { adoptMemory, portableMemory, worthHandingOver } from '../../src/ha/policy-memory.js';
import { parseLsn } from '../../src/postgres/lsn.js';
import { gone, primary, replica } from '../helpers/ha-observations.js';

const quorum1: HaPolicy = { ...DEFAULT_HA_POLICY, synchronous: { quorum: 1 } };
const fencedOld = { ...gone(primary()), fenced: true };

test('after the fence the elected replica stays unless another now holds more; a tie keeps it', () => {
  const nodes = [fencedOld, replica('node2', '0/3000100'), replica('node3', '0/3000100')];
  assert.deepEqual(confirmCandidate(nodes, DEFAULT_HA_POLICY, 'node1', 'node3'), { to: 'node3', sentence: null });
  const ahead = [fencedOld, replica('node2', '0/3000200'), replica('node3', '0/3000100')];
  const c = confirmCandidate(ahead, DEFAULT_HA_POLICY, 'node1', 'node3');
  assert.equal(c.to, 'node2');
  assert.match(c.sentence!, /^promoting node2 instead of node3: once the old primary was fenced, node2 most advanced at 0\/3000200 \(node3 is at 0\/3000100\)$/);
});

test('after the fence, with quorum 1 over two replicas, a replica that stops answering stops the promotion', () => {
  // node2 got a commit acknowledged by it alone, then vanished: promoting node3 could lose it
  const nodes = [fencedOld, gone(replica('node2', '0/3000200')), replica('node3', '0/3000100')];
  const c = confirmCandidate(nodes, quorum1, 'node1', 'node3');
  assert.equal(c.to, null);
  assert.match(c.sentence!, /promotion unsafe: quorum 1 over 2 replicas needs 2 of them answering/);
  // both answer: the one holding the acknowledged commit wins
  assert.equal(confirmCandidate([fencedOld, replica('node2', '0/3000200'), replica('node3', '0/3000100')], quorum1, 'node1', 'node3').to, 'node2');
});

test('the chosen replica gone after the fence: the next best takes its place', () => {
  const c = confirmCandidate([fencedOld, replica('node2', '0/3000100'), gone(replica('node3', '0/3000100'))], DEFAULT_HA_POLICY, 'node1', 'node3');
  assert.equal(c.to, 'node2');
  assert.match(c.sentence!, /instead of node3: .*\(node3 is unreachable\)/);
  assert.equal(confirmCandidate([fencedOld, gone(replica('node2', '0/1')), gone(replica('node3', '0/1'))], DEFAULT_HA_POLICY, 'node1', 'node3').to, null);
});

/** A primary failing from `since`, as a monitor at `at` remembers it. */
function failingMemory(since: number, at: number): Memory {
  return {
    primary: 'node1',
    nodes: { node1: { failingSince: since, failures: 4, lastAnswerAt: since - 500 }, node2: { failingSince: null, failures: 0, lastAnswerAt: at } },
    wal: { lsn: parseLsn('0/3000060'), advancedAt: since - 800 },
    heard: { by: 'node2', at: since - 300 },
    restart: null,
  };
}

test('a memory handed to another controller keeps its clocks as ages: the gap between the two is never counted', () => {
  const written = 1_000_000;
  const m = failingMemory(written - 1500, written);
  const p = JSON.parse(JSON.stringify(portableMemory(m, written))) as ReturnType<typeof portableMemory>;
  assert.equal(p.nodes.node1.failingForMs, 1500);
  // read 4 s later by a host whose clock is 50 s behind: the failure still seems 1.5 s old
  const readAt = written + 4000 - 50_000;
  const back = adoptMemory(p, readAt);
  assert.equal(readAt - back.nodes.node1.failingSince!, 1500);
  assert.equal(back.nodes.node1.failures, 4);
  assert.equal(back.wal!.lsn, parseLsn('0/3000060'));
  assert.equal(readAt - back.heard!.at, 1800);
  assert.equal(worthHandingOver(m), true);
  assert.equal(worthHandingOver(EMPTY_MEMORY), false);
});

test('a controller continuing handed-over memory fails over no sooner than the one it replaces would have', () => {
  const policy = { ...DEFAULT_HA_POLICY, failoverTimeoutMs: 5000, restartFirst: false };
  const dead = gone(primary());
  const snap = (at: number): Snapshot => ({ at, primary: 'node1', policy, nodes: [dead, replica('node2', '0/3000060', { upstreamStreaming: false, lastMsgAgeMs: null }), replica('node3', '0/3000060', { upstreamStreaming: false, lastMsgAgeMs: null })] });
  // the first controller saw the primary fail at t=0 and was lost at t=3000; its memory was written then
  let m: Memory = EMPTY_MEMORY;
  for (let t = 0; t <= 3000; t += 500) m = decide(snap(t), m).memory;
  const handed = portableMemory(m, 3000);
  // the next one takes over at t=7000 (its own clock reads 107000): the failure counts 3 s, not 7 s
  let n = adoptMemory(handed, 107_000);
  const first = decide({ ...snap(107_000) }, n);
  assert.equal(first.action.kind, 'wait');
  assert.match(first.sentence, /for 3\.0 s of 5\.0 s/);
  n = first.memory;
  const later = decide(snap(109_000), n);
  assert.equal(later.action.kind, 'failover', later.sentence);
});

test('the guard fires exactly at its deadline; its arming is a file replaced whole', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-guard-'));
  const files = guardFiles(dir, dir, 'h1');
  const now = monoNow();
  assert.equal(guardDue(null, now), false);
  armGuard(files, { node: 'node1', dataDir: '/d', deadline: now + 1000, agentPid: process.pid, vip: null });
  const armed = JSON.parse(fs.readFileSync(files.arming, 'utf8'));
  assert.equal(guardDue(armed, now + 999), false);
  assert.equal(guardDue(armed, now + 1000), true);
  armGuard(files, null);
  assert.equal(fs.existsSync(files.arming), false);
  assert.equal(takeFiring(files), null);
  fs.writeFileSync(files.fired, JSON.stringify({ node: 'node1', at: 'x', lateMs: 3, result: 'fenced' }));
  assert.equal(takeFiring(files)?.lateMs, 3);
  assert.equal(takeFiring(files), null, 'a firing is reported once');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a busy lock names its holder the same way whatever keeps it', () => {
  const e = busyError('cluster', 'mh', { command: 'pgmaestro up', pid: 42, host: 'h2', since: '2026-01-01T00:00:00.000Z' }, 5000);
  assert.equal(e.code, 'busy');
  assert.match(e.render(), /^the cluster mh is busy \(waited 5 s\): `pgmaestro up` \(pid 42 on h2\) has held it since 2026-01-01T00:00:00\.000Z\. HINT: /);
});
