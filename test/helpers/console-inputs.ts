import type { BackupInfo } from '../../src/backup/types.js';
import type { ClusterStatus, NodeStatus } from '../../src/cluster/status.js';
import type { BackupConfig } from '../../src/config/types.js';
import type { ConsoleInputs } from '../../src/web/source.js';

/** A scripted observation for the console's unit tests: node1 primary, node2 lagging 256 bytes, node3 down, a full and an incremental. */
export const AT = new Date('2026-03-01T12:00:00Z');
const policy: BackupConfig = { repository: '/r', compression: 'none', retentionMs: 86400_000, retention: '1d', from: 'replica', walArchive: true, schedule: { full: '0 1 * * 0', incr: '0 1 * * 1-6' }, processMax: 2, walFlushIntervalMs: 1000, s3: { region: 'us-east-1', pathStyle: false, timeoutMs: 30000 } };

function node(name: string, over: Partial<NodeStatus>): NodeStatus {
  return {
    name, role: 'replica', reachable: true, host: '127.0.0.1', address: '127.0.0.1', port: 5432, data_dir: `/d/${name}`, pid: 10, timeline: 2, lsn: '0/3000100', receive_lsn: null,
    lag_bytes: 0, lag_seconds: 0, upstream: 'node1', slot: null, pending_restart: [], dsn: `postgresql://postgres@127.0.0.1:5432/postgres`, error: null, ...over,
  };
}

function backup(id: string, type: BackupInfo['type'], start: string, stop: string, parent: string | null = null): BackupInfo {
  return { id, type, parent, node: 'node2', start_time: start, stop_time: stop, start_lsn: '0/2000028', stop_lsn: '0/2000100', timeline: 2, size_bytes: 1000, stored_bytes: 900, compression: 'none', pg_version: '18.4', system_identifier: null, catalog_sha256: '', manifest_sha256: null, checksum: '' };
}

export function inputs(): ConsoleInputs {
  const status: ClusterStatus = {
    cluster: 'demo', version: '0.1.0', config: '/c/pgmaestro.yaml', primary: 'node1', postgres_version: '18.4', passfile: '/c/secrets/superuser.pgpass',
    daemon: { running: true, pid: 99, log: '/c/logs/pgmaestro.log', since: '2026-01-01T00:00:00.000Z', restarts: 0, managed_by: 'supervisor', service: null, supervisor: { running: true, pid: 98, since: '2026-01-01T00:00:00.000Z', spare: null } },
    endpoints: {
      rw: '127.0.0.1:6432',
      console: '127.0.0.1:7432',
      details: {},
      dsn: { rw: 'postgresql://postgres@127.0.0.1:6432/postgres', multi_host_rw: 'postgresql://postgres@127.0.0.1:5432,127.0.0.1:5433/postgres?target_session_attrs=read-write', multi_host_ro: 'postgresql://postgres@127.0.0.1:5432,127.0.0.1:5433/postgres?target_session_attrs=prefer-standby' },
    },
    archive: { last_segment: '000000020000000000000002', archived_lsn: '0/3000000', timeline: 2, lag_bytes: 256, lag_seconds: 0.2 }, backups: { count: 2, latest: 'I' }, window: null,
    nodes: [
      node('node1', { role: 'primary', lsn: '0/3000100', lag_bytes: 0, lag_seconds: 0, upstream: null }),
      node('node2', { lsn: '0/3000000', lag_bytes: 256, lag_seconds: 0.5 }),
      node('node3', { role: 'down', reachable: false, pid: null, timeline: null, lsn: null, lag_bytes: null, lag_seconds: null, upstream: null, error: 'connect ECONNREFUSED 127.0.0.1:5434' }),
    ],
    slots: [
      { name: 'pgm_node2', kind: 'replica', node: 'node2', active: true, restart_lsn: '0/3000000', wal_status: 'reserved', retained_bytes: 256, safe_wal_size: 2147483392 },
      { name: 'pgm_node3', kind: 'replica', node: 'node3', active: false, restart_lsn: null, wal_status: null, retained_bytes: null, safe_wal_size: null },
    ],
  };
  return {
    at: AT, status, error: null,
    events: [{ at: '2026-03-01T11:59:00.000Z', sentence: 'promoted node1: node3 postmaster down for 3.0 s' }],
    repository: {
      ok: true, policy, analysis: null,
      backups: [backup('F', 'full', '2026-03-01T10:00:00.000Z', '2026-03-01T10:00:30.000Z'), backup('I', 'incr', '2026-03-01T11:00:00.000Z', '2026-03-01T11:00:05.000Z', 'F')],
      wal: [{ name: '000000020000000000000002', stored: '000000020000000000000002', sha256: 'x', size: 16777216, archived_at: '2026-03-01T11:50:00.000Z' }],
    },
    endpoints: [{ name: 'rw', address: '127.0.0.1:6432', target: 'node1', connections: 3, waiting: 0, bytesFromClients: 1200, bytesToClients: 3400, decisions: {}, pid: 99 }],
    monitor: { at: '2026-03-01T11:59:59.000Z', sentence: 'all well' },
  };
}
