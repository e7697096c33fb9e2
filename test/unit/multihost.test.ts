import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { firstDifference, canonicalJson } from '../../src/agent/config-check.js';
import { healthStatus } from '../../src/agent/health.js';
import { loadConfig } from '../../src/config/load.js';
import { PgmError } from '../../src/errors.js';
import { decide } from '../../src/ha/policy.js';
import { DEFAULT_HA_POLICY, EMPTY_MEMORY, type LeaseObservation, type Memory, type NodeObservation, type Snapshot } from '../../src/ha/observations.js';
import { gone, primary, replica, stopped } from '../helpers/ha-observations.js';

const multi = (ha: string, etcd: string) => `cluster: mh
ha:
${ha}
dcs:
  etcd:
    endpoints: [http://10.0.3.1:2379]
${etcd}
hosts:
  - { name: a, agent: 10.0.3.1:8008 }
  - { name: b, agent: 10.0.3.2:8008 }
nodes:
  - { name: node1, host: a, port: 5432, data_dir: d1, admin: 10.0.3.1 }
  - { name: node2, host: b, port: 5432, data_dir: d2, admin: 10.0.3.2 }
`;

function load(text: string) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-mhcfg-'));
  fs.writeFileSync(path.join(dir, 'pgmaestro.yaml'), text);
  return loadConfig(path.join(dir, 'pgmaestro.yaml'));
}
function refused(text: string, pattern: RegExp): void {
  assert.throws(() => load(text), (err: unknown) => err instanceof PgmError && err.code === 'config.invalid' && pattern.test(err.render()) && !!err.hint);
}

test('a multi-host configuration loads: hosts, node hosts, etcd with its timings', () => {
  const cfg = load(multi('  loop_wait: 1s', '    ttl: 10s'));
  assert.equal(cfg.dcs?.etcd.ttlMs, 10_000);
  assert.equal(cfg.dcs?.etcd.retryTimeoutMs, 2000);
  assert.equal(cfg.ha.loopWaitMs, 1000);
  assert.deepEqual(cfg.hosts.map((h) => [h.name, h.agent.host, h.agent.port]), [['a', '10.0.3.1', 8008], ['b', '10.0.3.2', 8008]]);
  assert.deepEqual(cfg.nodes.map((n) => n.host), ['a', 'b']);
});

test('the ttl must leave room for a loop, two slow requests and the fencing margin', () => {
  // 1 + 2*2 = 5 > 5 - 1 = 4
  refused(multi('  loop_wait: 1s', '    ttl: 5s'), /dcs\.etcd\.ttl: 5 s is unsafe with ha\.loop_wait 1 s and dcs\.etcd\.retry_timeout 2 s.*HINT: raise dcs\.etcd\.ttl to at least 6 s/);
  assert.equal(load(multi('  loop_wait: 1s', '    ttl: 6s')).dcs?.etcd.ttlMs, 6000);
  assert.equal(load(multi('  loop_wait: 500ms\n  failover_timeout: 2s', '    ttl: 3s\n    retry_timeout: 500ms')).dcs?.etcd.ttlMs, 3000);
});

test('failover_timeout shorter than three monitor cycles is refused', () => {
  refused(multi('  loop_wait: 2s', '    ttl: 20s'), /ha\.failover_timeout: 5 s is shorter than three monitor cycles \(ha\.loop_wait 2 s\)/);
});

test('with dcs every node names a configured host; without dcs hosts are refused', () => {
  refused(multi('  loop_wait: 1s', '    ttl: 10s').replace('host: b, ', 'host: c, '), /nodes\[1\]\.host: 'c' is not a configured host.*HINT: use one of: a, b/);
  refused(multi('  loop_wait: 1s', '    ttl: 10s').replace('host: b, ', ''), /nodes\[1\]\.host: node node2 names no host/);
  refused(multi('  loop_wait: 1s', '    ttl: 10s').replace(/dcs:\n  etcd:\n    endpoints: \[.*\]\n    ttl: 10s\n/, ''), /hosts: hosts need a dcs section/);
  refused(multi('  loop_wait: 1s', '    ttl: 10s').replace('{ name: b, agent: 10.0.3.2:8008 }', '{ name: b, agent: 10.0.3.1:8008 }'), /hosts\[1\]\.agent: hosts a and b have the same agent address/);
});

const T0 = 1_000_000;
function after(s: Omit<Snapshot, 'policy' | 'at'>, seconds: number[], leases: LeaseObservation): string[] {
  let m: Memory = EMPTY_MEMORY;
  const out: string[] = [];
  for (const t of seconds) {
    const d = decide({ ...s, at: T0 + t * 1000, policy: { ...DEFAULT_HA_POLICY, restartFirst: false }, leases }, m);
    m = d.memory;
    out.push(`${d.action.kind}: ${d.sentence}`);
  }
  return out;
}
const orphan = (r: NodeObservation): NodeObservation => ({ ...r, upstreamStreaming: false, lastMsgAgeMs: null });
const nodes = [gone(primary()), orphan(replica('node2', '0/3000060')), orphan(replica('node3', '0/3000000'))];

test('decide: an unreachable primary still holding its lease is not failed over; once the lease is gone it is', () => {
  const held = after({ primary: 'node1', nodes }, [0, 2, 4, 6], { primaryHolder: 'node1', ttlMs: 10_000, failsafeAgeMs: null });
  assert.match(held[3], /^wait: no failover: node1 unreachable for 6\.0 s, but it still holds its primary lease; its agent fences it before the lease can expire$/);
  const free = after({ primary: 'node1', nodes }, [0, 2, 4, 6], { primaryHolder: null, ttlMs: 10_000, failsafeAgeMs: null });
  assert.match(free[3], /^failover: promoted node2: node1 unreachable for 6\.0 s/);
});

test('decide: a primary whose agent answers is failed over although it holds the lease (the fence releases it)', () => {
  const frozen = [stopped(primary()), orphan(replica('node2', '0/3000060'))];
  const d = after({ primary: 'node1', nodes: frozen }, [0, 2, 4, 6], { primaryHolder: 'node1', ttlMs: 10_000, failsafeAgeMs: null });
  assert.match(d[3], /^failover: promoted node2/);
});

test('decide: failsafe (the primary reached every agent while cut off from etcd) and another lease holder veto a promotion', () => {
  const fs1 = after({ primary: 'node1', nodes }, [0, 2, 4, 6], { primaryHolder: null, ttlMs: 10_000, failsafeAgeMs: 1500 });
  assert.match(fs1[3], /but its agent reached every other agent 1\.5 s ago while cut off from etcd \(failsafe\)$/);
  const stale = after({ primary: 'node1', nodes }, [0, 2, 4, 6], { primaryHolder: null, ttlMs: 10_000, failsafeAgeMs: 11_000 });
  assert.match(stale[3], /^failover: /);
  const other = after({ primary: 'node1', nodes }, [0, 2, 4, 6], { primaryHolder: 'node2', ttlMs: 10_000, failsafeAgeMs: null });
  assert.match(other[3], /but node2 holds the primary lease$/);
});

test('health checks answer as Patroni does: 200 or 503', () => {
  const q = (s = '') => new URLSearchParams(s);
  const p = primary();
  const r = replica('node2', '0/3000000');
  assert.equal(healthStatus('/primary', q(), { obs: p, primaryAuthority: true, lagBytes: 0 }), 200);
  assert.equal(healthStatus('/primary', q(), { obs: p, primaryAuthority: false, lagBytes: 0 }), 503, 'no lease, no primary');
  assert.equal(healthStatus('/primary', q(), { obs: r, primaryAuthority: false, lagBytes: 0 }), 503);
  assert.equal(healthStatus('/replica', q(), { obs: r, primaryAuthority: false, lagBytes: 96 }), 200);
  assert.equal(healthStatus('/replica', q('lag=100'), { obs: r, primaryAuthority: false, lagBytes: 96 }), 200);
  assert.equal(healthStatus('/replica', q('lag=10'), { obs: r, primaryAuthority: false, lagBytes: 96 }), 503);
  assert.equal(healthStatus('/replica', q('lag=10'), { obs: r, primaryAuthority: false, lagBytes: null }), 503, 'unknown lag is not within a bound');
  assert.equal(healthStatus('/replica', q(), { obs: { ...r, fenced: true }, primaryAuthority: false, lagBytes: 0 }), 503);
  assert.equal(healthStatus('/read-only', q(), { obs: p, primaryAuthority: true, lagBytes: 0 }), 200);
  assert.equal(healthStatus('/health', q(), { obs: gone(p), primaryAuthority: false, lagBytes: null }), 503);
  assert.equal(healthStatus('/health', q(), { obs: null, primaryAuthority: false, lagBytes: null }), 503);
  assert.equal(healthStatus('/nonsense', q(), { obs: p, primaryAuthority: true, lagBytes: 0 }), null);
});

test('configuration records compare by canonical JSON and name the first differing key', () => {
  assert.equal(canonicalJson({ b: 1, a: [1, { d: 2, c: 3 }] }), '{"a":[1,{"c":3,"d":2}],"b":1}');
  assert.deepEqual(firstDifference({ ha: { ttl: '3s', x: 1 }, nodes: [{ port: 1 }] }, { ha: { ttl: '3s', x: 1 }, nodes: [{ port: 2 }] }, []), { path: ['nodes', 0, 'port'], here: '1', there: '2' });
  assert.deepEqual(firstDifference({ a: 1 }, { a: 1, b: true }, []), { path: ['b'], here: '(absent)', there: 'true' });
  assert.equal(firstDifference({ a: [1, 2] }, { a: [1, 2] }, []), null);
});
