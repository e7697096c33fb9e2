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
    `cluster ${st.cluster} (PostgreSQL ${st.postgres_version}), primary ${st.primary}, ${st.hosts ? multiHostLine(st) : `daemon ${st.daemon.running ? `running (pid ${st.daemon.pid}${restartsNote(st.daemon.restarts)})` : 'not running'}, ${st.daemon.managed_by === 'systemd' ? `kept by systemd (${st.daemon.service})` : `supervisor ${st.daemon.supervisor.running ? `running (pid ${st.daemon.supervisor.pid}${st.daemon.supervisor.spare ? `, spare pid ${st.daemon.supervisor.spare}` : ''})` : 'not running'}`}`}`,
    '',
    line(header),
    ...rows.map(line),
    '',
    ...endpointLines(st),
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

const ENDPOINT_ROLE = { rw: 'read-write, follows the primary', ro: 'read-only, balanced over replicas', auto: 'routes reads to replicas, writes to the primary' };

function restartsNote(n: number): string {
  return n > 0 ? `, restarted ${n}×` : '';
}

/** One line per endpoint (address, process, connections), then the DSNs for applications. */
function endpointLines(st: ClusterStatus): string[] {
  const eps = Object.values(st.endpoints.details);
  if (st.endpoints.rw_by_host) {
    // multi-host: every agent serves rw on its host
    return [`endpoint rw   ${st.endpoints.rw} read-write, follows the primary (served by the agent of every host: ${Object.entries(st.endpoints.rw_by_host).map(([h, a]) => `${h} ${a}`).join(', ')})`];
  }
  if (eps.length === 0) return [];
  const lines = eps.map((e) => {
    const proc = e.running ? `pid ${e.pid} since ${e.since}${restartsNote(e.restarts)}` : 'not running';
    const conns = e.connections ? `, ${e.connections.current} connections` : '';
    return `endpoint ${e.kind.padEnd(4)} ${e.address.padEnd(21)} ${ENDPOINT_ROLE[e.kind]} (${proc}${conns})`;
  });
  const dsn = st.endpoints.dsn;
  return [
    ...lines,
    ...(['rw', 'ro', 'auto'] as const).flatMap((k) => (dsn[k] ? [`dsn ${k.padEnd(4)} ${dsn[k]}`] : [])),
    `dsn libpq (no endpoint needed): ${dsn.multi_host_rw}  (reads: ${dsn.multi_host_ro.replace(/.*\?/, '?')})`,
  ];
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
