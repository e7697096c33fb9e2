import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderHba, renderNodeConf, renderSharedConf, renderStandbyConf } from '../../src/config/render.js';
import type { ClusterConfig, NodeConfig } from '../../src/config/types.js';

const node = (name: string, port: number, addr: string, settings = {}): NodeConfig => ({
  name, port, dataDir: `/d/${name}`, service: addr, replication: addr.replace('10.0.1', '10.0.2'), admin: addr.replace('10.0.1', '10.0.3'),
  settings, nofailover: false, priority: 100, overrideFile: `/c/pgmaestro.${name}.yaml`, overrideKeys: [], vipInterface: null, host: null,
});
const cfg: ClusterConfig = {
  file: '/c/pgmaestro.yaml', dir: '/c', home: '/c', cluster: 'demo', initialPrimary: 'a', clients: ['10.0.1.0/24'], binDir: 'embedded',
  osUser: 'postgres', superuser: 'postgres', replicationUser: 'replicator', settings: { shared_buffers: '256MB', jit: false },
  backup: { repository: '/c/backups', compression: 'none', retention: '21d', retentionMs: 21 * 86400_000, from: 'replica', walArchive: true, schedule: { full: '0 1 * * 0', incr: '0 1 * * 1-6' }, processMax: 2, walFlushIntervalMs: 1000, s3: { region: 'us-east-1', pathStyle: false, timeoutMs: 30000 } },
  ha: { failoverTimeoutMs: 5000, restartFirst: true, maximumLagOnFailover: 1048576, autoRejoin: false, autoReclone: true, quorum: null, isolation: 'none', vip: null, loopWaitMs: 1000 },
  endpoints: { rw: { host: '127.0.0.1', port: 6432 }, ro: null, auto: null, maxLagBytes: 0, maxLagSeconds: 0, roDrainMs: 0, roFallback: 'primary', holdMs: 0, poolSize: 1, tlsCert: null, tlsKey: null, console: { host: '127.0.0.1', port: 7432 } },
  managerAddresses: [],
  nodes: [node('a', 5432, '10.0.1.1'), node('b', 5432, '10.0.1.2', { work_mem: '64MB' })],
  dcs: null,
  hosts: [],
  canonical: {},
};

test('postgresql.conf is identical on every node and ends with the node includes', () => {
  const s = renderSharedConf(cfg, 18);
  assert.match(s, /^shared_buffers = '256MB'$/m);
  assert.match(s, /^jit = off$/m);
  assert.match(s, /^summarize_wal = on$/m);
  assert.match(s, /^password_encryption = 'scram-sha-256'$/m);
  assert.match(s, /include_if_exists = 'pgmaestro\.node\.conf'\ninclude_if_exists = 'pgmaestro\.standby\.conf'\n$/);
  assert.doesNotMatch(s, /port =/);
});

test('summarize_wal only where the version has it', () => {
  assert.doesNotMatch(renderSharedConf(cfg, 16), /summarize_wal/);
  assert.match(renderSharedConf(cfg, 17), /summarize_wal = on/);
});

test('the node file holds the port, its addresses and its overrides', () => {
  const s = renderNodeConf(cfg, cfg.nodes[1]);
  assert.match(s, /^port = 5432$/m);
  assert.match(s, /^listen_addresses = '10\.0\.1\.2,10\.0\.2\.2,10\.0\.3\.2'$/m);
  assert.match(s, /^work_mem = '64MB'$/m);
});

test('the standby file names a passfile and a slot, never a password', () => {
  const s = renderStandbyConf(cfg, cfg.nodes[1], cfg.nodes[0], '/c/secrets/replication.pgpass');
  assert.match(s, /primary_conninfo = 'host=10\.0\.2\.1 port=5432 user=replicator passfile=\/c\/secrets\/replication\.pgpass application_name=b/);
  assert.match(s, /^primary_slot_name = 'pgm_b'$/m);
  assert.doesNotMatch(s, /password=/);
});

test('pg_hba allows replication only from the nodes, scram only, superuser only from admin addresses', () => {
  const s = renderHba(cfg);
  const lines = s.split('\n').filter((l) => l.startsWith('host'));
  assert.ok(lines.every((l) => /scram-sha-256$|reject$/.test(l)), 'every line is scram-sha-256 or reject');
  const repl = lines.filter((l) => /^host\s+replication/.test(l)).map((l) => l.split(/\s+/)[3]);
  assert.deepEqual(repl.sort(), ['10.0.2.1/32', '10.0.2.2/32', '10.0.3.1/32', '10.0.3.2/32']);
  const su = lines.filter((l) => /^host\s+all\s+postgres\s/.test(l));
  assert.deepEqual(su.map((l) => l.split(/\s+/)[3]), ['10.0.3.1/32', '10.0.3.2/32', 'all']);
  assert.match(su[2], /reject$/);
  assert.ok(lines.some((l) => /^host\s+all\s+all\s+10\.0\.1\.0\/24\s+scram-sha-256$/.test(l)));
  assert.ok(!lines.some((l) => /\btrust\b|\bmd5\b|\bpassword\b/.test(l)));
});

test('a quote in a value is escaped', () => {
  const s = renderSharedConf({ ...cfg, settings: { application_name: "it's" } }, 18);
  assert.match(s, /application_name = 'it''s'/);
});
