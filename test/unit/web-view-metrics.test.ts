import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DaemonCounters, MetricsRenderer } from '../../src/web/metrics.js';
import { buildView } from '../../src/web/view.js';
import { AT, inputs } from '../helpers/console-inputs.js';
import { parseMetrics, sample } from '../helpers/prometheus.js';

test('the view names the down node, keeps its error, computes the write rate from the previous point', () => {
  const first = buildView({ ...inputs(), at: new Date(AT.getTime() - 2000), status: { ...inputs().status!, nodes: inputs().status!.nodes.map((n) => (n.name === 'node1' ? { ...n, lsn: '0/3000000' } : n)) } }, null);
  assert.equal(first.sample.write_rate, null, 'no previous point');
  const v = buildView(inputs(), first.sample);
  assert.equal(v.sample.write_rate, 128, '256 bytes in 2 s');
  assert.deepEqual(v.sample.lag_bytes, { node2: 256, node3: null });
  assert.equal(v.problems[0], 'node3 is down: connect ECONNREFUSED 127.0.0.1:5434');
  assert.match(v.problems[1], /^the recovery window is not fully restorable: .*not restorable: 2026-02-28T12:00:00.000Z to 2026-03-01T10:00:30.000Z \(no backup is that old/);
  assert.equal(v.problems.length, 2);
  assert.equal(v.nodes.find((n) => n.name === 'node3')?.role, 'down');
  assert.equal(v.backups.ok && v.backups.backups[0].id, 'I', 'newest first');
  assert.equal(v.hosts, null);
  assert.equal(v.logical, null);
  assert.ok(!JSON.stringify(v).includes('dsn'), 'the view carries no connection strings');
  assert.ok(!JSON.stringify(v).includes('passfile'));
});

test("the timeline draws the repository's own window analysis when status carries it: a WAL gap is unrestorable, an archive behind is pending", () => {
  const gap = 'WAL gap: node1 removed WAL from 0/5000000 to 0/9000000 before it was archived; a new full backup heals it';
  const window = {
    window_start: '2026-02-28T12:00:00.000Z',
    window_end: AT.toISOString(),
    restorable: false,
    ranges: [
      { from: '2026-02-28T12:00:00.000Z', to: '2026-03-01T09:00:00.000Z', restorable: true, reason: 'from backup F' },
      { from: '2026-03-01T09:00:00.000Z', to: '2026-03-01T09:30:00.000Z', restorable: false, reason: gap },
      { from: '2026-03-01T09:30:00.000Z', to: AT.toISOString(), restorable: false, reason: 'WAL since then is not in the archive yet (is the archiver running?)' },
    ],
    sentence: 'not restorable: …',
  };
  const v = buildView({ ...inputs(), status: { ...inputs().status!, window } }, null);
  assert.ok(v.backups.ok);
  if (!v.backups.ok) return;
  const states = v.backups.timeline.spans.map((r) => [r.state, r.reason]);
  assert.deepEqual(states.map((x) => x[0]), ['restorable', 'unrestorable', 'pending']);
  assert.equal(states[1][1], gap);
  assert.equal(v.backups.timeline.fullyRestorable, false);
  assert.equal(v.backups.timeline.gapsAnalysed, true);
  assert.match(v.problems.join('\n'), /WAL gap: node1 removed WAL/);
});

test('a repository that cannot be read and a failed observation are problems, not errors', () => {
  const v = buildView({ ...inputs(), status: null, error: 'the cluster could not be observed: boom', repository: { ok: false, error: 'the backup repository /r cannot be read: EIO' } }, null);
  assert.deepEqual(v.problems, ['the cluster could not be observed: boom', 'the backup repository /r cannot be read: EIO']);
  assert.deepEqual(v.nodes, []);
  assert.equal(v.backups.ok, false);
});

test('/metrics: parses, follows the naming conventions, and says what the view says', async () => {
  const counters = new DaemonCounters();
  for (let i = 0; i < 5; i++) counters.decision('none');
  counters.decision('failover');
  counters.failover();
  const m = new MetricsRenderer(counters);
  const text = await m.render(buildView(inputs(), null));
  const f = parseMetrics(text);
  const ours = f.filter((x) => x.name.startsWith('pgmaestro_'));
  for (const x of f) assert.match(x.name, /^(pgmaestro|process|nodejs)_[a-z0-9_]+$/, x.name);
  for (const x of ours) {
    assert.ok(x.help.length > 10, `${x.name} has a help text`);
    if (x.type === 'COUNTER') assert.match(x.name, /_total$/, `${x.name}: a counter ends in _total`);
    else assert.doesNotMatch(x.name, /_total$/, `${x.name}: only counters end in _total`);
  }

  assert.equal(sample(f, 'pgmaestro_cluster_info', { cluster: 'demo', primary: 'node1', postgres_version: '18.4' }), 1);
  assert.equal(sample(f, 'pgmaestro_node_up', { node: 'node1' }), 1);
  assert.equal(sample(f, 'pgmaestro_node_up', { node: 'node3' }), 0);
  assert.equal(sample(f, 'pgmaestro_node_role', { node: 'node3', role: 'down' }), 1);
  assert.equal(sample(f, 'pgmaestro_node_role', { node: 'node3', role: 'replica' }), 0);
  assert.equal(sample(f, 'pgmaestro_node_timeline', { node: 'node3' }), undefined, 'unknown is absent, not 0');
  assert.equal(sample(f, 'pgmaestro_node_wal_lsn_bytes', { node: 'node1' }), 0x3000100);
  assert.equal(sample(f, 'pgmaestro_node_replay_lag_bytes', { node: 'node2' }), 256);
  assert.equal(sample(f, 'pgmaestro_node_replay_lag_seconds', { node: 'node2' }), 0.5);
  assert.equal(sample(f, 'pgmaestro_replication_slot_retained_wal_bytes', { slot: 'pgm_node2' }), 256);
  assert.equal(sample(f, 'pgmaestro_replication_slot_retained_wal_bytes', { slot: 'pgm_node3' }), undefined);
  assert.equal(sample(f, 'pgmaestro_replication_slot_active', { slot: 'pgm_node3' }), 0);
  assert.equal(sample(f, 'pgmaestro_archive_lag_bytes'), 256);
  assert.equal(sample(f, 'pgmaestro_backups', { type: 'full' }), 1);
  assert.equal(sample(f, 'pgmaestro_backup_last_age_seconds', { type: 'incr' }), 3600 - 5);
  assert.equal(sample(f, 'pgmaestro_backup_last_duration_seconds', { type: 'full' }), 30);
  assert.equal(sample(f, 'pgmaestro_backup_last_size_bytes', { type: 'cold' }), undefined);
  assert.equal(sample(f, 'pgmaestro_recovery_window_restorable'), 0, 'a 1d window, backups from 10:00 only');
  assert.equal(sample(f, 'pgmaestro_recovery_window_seconds'), 86400);
  assert.equal(sample(f, 'pgmaestro_repository_stored_bytes', { kind: 'wal' }), 16777216);
  assert.equal(sample(f, 'pgmaestro_endpoint_connections', { endpoint: 'rw' }), 3);
  assert.equal(sample(f, 'pgmaestro_endpoint_sent_bytes_total', { endpoint: 'rw' }), 3400);
  assert.equal(sample(f, 'pgmaestro_monitor_decisions_total', { kind: 'none' }), 5);
  assert.equal(sample(f, 'pgmaestro_failovers_total'), 1);
  assert.ok(sample(f, 'process_resident_memory_bytes')! > 0, 'the process metrics come along');

  // a second scrape renders afresh: a node gone from the view leaves no stale series
  const later = inputs();
  const fewer = { ...later, status: { ...later.status!, nodes: later.status!.nodes.slice(0, 2) } };
  const f2 = parseMetrics(await m.render(buildView(fewer, null)));
  assert.equal(sample(f2, 'pgmaestro_node_up', { node: 'node3' }), undefined);

  // an archive with nothing in it yet: no lag sample at all (not a 0 that would say "caught up")
  const empty = { ...later, status: { ...later.status!, archive: { last_segment: null, archived_lsn: null, timeline: null, lag_bytes: null, lag_seconds: null } } };
  const f3 = parseMetrics(await m.render(buildView(empty, null)));
  assert.equal(sample(f3, 'pgmaestro_archive_lag_bytes'), undefined);
  assert.equal(sample(f3, 'pgmaestro_archive_wal_lsn_bytes'), undefined);
});
