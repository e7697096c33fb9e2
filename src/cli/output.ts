import { formatBytes } from '../util/format.js';
import path from 'node:path';
import type { ClusterStatus } from '../cluster/status.js';
import { tokenFiles } from '../web/auth.js';

/** The `--wait` option of every command that takes a lock. */
export const WAIT_FLAGS = '--wait [duration]';
export const WAIT_HELP = 'when another command holds the cluster (or repository), wait for it: for ever, or this long (30s, 10m, 1h)';

/** The human table of `pgmaestro status`. */
export function formatStatus(st: ClusterStatus): string {
  const header = ['NODE', 'ROLE', 'ADDRESS', 'PID', 'TL', 'LSN', 'LAG', 'SLOT'];
  const rows = st.nodes.map((n) => [
    n.name,
    n.role + (n.pending_restart.length > 0 ? ` (restart pending: ${n.pending_restart.join(', ')})` : ''),
    `${n.host}:${n.port}`,
    n.pid === null ? '-' : String(n.pid),
    n.timeline === null ? '-' : String(n.timeline),
    n.lsn ?? '-',
    n.role === 'replica' ? `${n.lag_bytes ?? '?'} B${n.lag_seconds ? ` / ${n.lag_seconds.toFixed(1)} s` : ''}` : '-',
    n.slot ? `${n.slot.name} ${n.slot.active ? 'active' : 'inactive'}${n.slot.wal_status && n.slot.wal_status !== 'reserved' ? `, ${n.slot.wal_status}` : ''}` : '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  const primary = st.nodes.find((n) => n.name === st.primary);
  return [
    `cluster ${st.cluster} (PostgreSQL ${st.postgres_version}), primary ${st.primary}, ${st.hosts ? multiHostLine(st) : `daemon ${st.daemon.running ? `running (pid ${st.daemon.pid})` : 'not running'}`}`,
    '',
    line(header),
    ...rows.map(line),
    '',
    ...(st.endpoints.rw ? [`endpoint (read-write, follows the primary): ${st.endpoints.rw}`] : []),
    ...(st.endpoints.query ? [`endpoint (read-only, the query nodes): ${st.endpoints.query}`] : []),
    ...(st.query_nodes ?? []).map((q) => `query node ${q.name} ${q.host}:${q.port}: ${q.pid === null ? 'down' : `running (pid ${q.pid})`}`),
    ...(st.subscriptions ?? []).map((x) => `subscription ${x.subscription} -> ${x.subscriber}: ${x.state}, ${x.tables}${x.lag_bytes !== null ? `, lag ${formatBytes(x.lag_bytes)}` : ''}${x.problem ? ` (${x.problem.split(':')[0]}; logical status says more)` : ''}`),
    ...(st.endpoints.console ? [`console and /metrics: http://${st.endpoints.console}/ (token in ${tokenFiles(path.dirname(st.passfile)).read}; operator token beside it)`] : []),
    ...(st.slots.length > 0 ? [`slots on ${st.primary}: ${st.slots.map((sl) => `${sl.name} ${sl.retained_bytes === null ? '-' : formatBytes(sl.retained_bytes)} ${sl.wal_status ?? 'unused'}`).join(', ')}`] : []),
    ...(st.archive?.archived_lsn ? [`WAL archive: up to ${st.archive.archived_lsn} (timeline ${st.archive.timeline})${st.archive.lag_bytes !== null ? `, ${st.archive.lag_bytes} bytes${st.archive.lag_seconds !== null ? ` and ${st.archive.lag_seconds} s` : ''} behind the primary` : ''}`] : []),
    `backups: ${st.backups.count}${st.backups.latest ? ` (latest ${st.backups.latest})` : ''}`,
    ...(st.window ? [`recovery window: ${st.window.sentence}`] : []),
    `connect: PGPASSFILE=${st.passfile} psql "${connectDsn(st)}"${st.endpoints.rw ? '   (the endpoint follows the primary; each node has its dsn in status --json)' : ''}`,
  ].join('\n');
}

/** Multi-host: the agents, the controller and etcd, in a few words. */
function multiHostLine(st: ClusterStatus): string {
  const hosts = st.hosts!;
  const up = hosts.filter((h) => h.reachable).length;
  const down = hosts.filter((h) => !h.reachable).map((h) => h.name);
  const members = st.dcs?.members ?? [];
  const etcd = st.dcs ? `etcd ${st.dcs.healthy ? 'healthy' : 'NOT healthy'} (${members.filter((m) => m.healthy).length} of ${members.length} members)` : 'etcd unknown';
  return `agents ${up} of ${hosts.length}${down.length > 0 ? ` (not answering: ${down.join(', ')})` : ''}, controller ${st.controller ?? 'none'}, ${etcd}`;
}

/** The endpoint's DSN when the daemon runs it, else the primary's own. */
function connectDsn(st: ClusterStatus): string {
  const direct = (st.nodes.find((n) => n.name === st.primary) ?? st.nodes[0]).dsn;
  return st.endpoints.rw ? direct.replace(/@[^/]+\//, `@${st.endpoints.rw}/`) : direct;
}
