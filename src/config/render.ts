import type { Settings } from './schema.js';
import type { ClusterConfig, NodeConfig } from './types.js';

/**
 * Pure rendering of the files pgmaestro owns in a data directory.
 *
 * postgresql.conf is the same on every node: pgmaestro's baseline, then the
 * cluster's shared settings, then includes of the node's own file (port,
 * addresses, overrides) and, on a replica, the standby file. A DBA diffing two
 * nodes sees the difference in the small files only.
 */

export const NODE_CONF = 'pgmaestro.node.conf';

/**
 * The baseline bound on what one replication slot may hold back on the
 * primary. 2 GB is 128 segments: a replica down for a maintenance hour at a
 * sustained 0.5 MB/s of WAL keeps its slot, while the worst case (several
 * dead slots) stays a known amount of disk rather than all of it. Past it
 * the replica is rebuilt (ha.auto_reclone), which costs one copy of the
 * database instead of a primary that stops with a full disk.
 */
export const SLOT_BOUND = '2GB';
export const STANDBY_CONF = 'pgmaestro.standby.conf';
const HEADER = '# Written by pgmaestro from pgmaestro.yaml; edit that file, not this one: changes here are overwritten.\n';

export function renderSharedConf(cfg: ClusterConfig, major: number): string {
  const baseline: Settings = {
    wal_level: 'replica',
    max_wal_senders: 16,
    max_replication_slots: 16,
    hot_standby: true,
    hot_standby_feedback: true,
    wal_log_hints: true,
    // a dead replica or a stopped archiver may hold back at most this much WAL (README, "Slots")
    max_slot_wal_keep_size: SLOT_BOUND,
    password_encryption: 'scram-sha-256',
    unix_socket_directories: '',
    logging_collector: true,
    log_directory: 'log',
    log_filename: 'postgresql-%Y-%m-%d.log',
    log_line_prefix: '%m [%p] %q%u@%d ',
    ...(major >= 17 ? { summarize_wal: true } : {}),
    // replicas notice a dead link within the failover timeout's order
    wal_receiver_timeout: `${Math.max(2 * cfg.ha.failoverTimeoutMs, 5000)}ms`,
    wal_receiver_status_interval: '1s',
    ...(cfg.ha.quorum !== null ? { synchronous_standby_names: `ANY ${cfg.ha.quorum} (${cfg.nodes.map((n) => n.name).join(', ')})` } : {}),
  };
  return (
    HEADER +
    `# Cluster ${cfg.cluster}: identical on every node.\n\n` +
    '# pgmaestro baseline\n' +
    settingsLines(baseline) +
    (Object.keys(cfg.settings).length > 0 ? '\n# shared settings (postgres.settings)\n' + settingsLines(cfg.settings) : '') +
    '\n# this node only\n' +
    `include_if_exists = '${NODE_CONF}'\n` +
    `include_if_exists = '${STANDBY_CONF}'\n`
  );
}

export function renderNodeConf(cfg: ClusterConfig, node: NodeConfig): string {
  const own: Settings = {
    port: node.port,
    listen_addresses: listenAddresses(node),
    cluster_name: `${cfg.cluster}-${node.name}`,
  };
  return (
    HEADER +
    `# Node ${node.name}.\n` +
    settingsLines(own) +
    (Object.keys(node.settings).length > 0 ? `\n# overrides (nodes[].settings and ${node.overrideFile})\n` + settingsLines(node.settings) : '')
  );
}

/** The standby file of a replica streaming from `primary` through its own slot. The password stays in `passfile`. */
export function renderStandbyConf(cfg: ClusterConfig, node: NodeConfig, primary: NodeConfig, passfile: string): string {
  const conninfo = [
    `host=${primary.replication}`,
    `port=${primary.port}`,
    `user=${cfg.replicationUser}`,
    `passfile=${passfile}`,
    `application_name=${node.name}`,
    'connect_timeout=5',
  ].join(' ');
  return (
    HEADER +
    `# Node ${node.name} is a replica of ${primary.name}.\n` +
    settingsLines({ primary_conninfo: conninfo, primary_slot_name: slotName(node), recovery_target_timeline: 'latest' })
  );
}

/** Physical slot of a replica on the primary. */
export function slotName(node: NodeConfig): string {
  return `pgm_${node.name}`;
}

/**
 * pg_hba.conf, the same on every node so any node can become primary:
 * scram-sha-256 only; the superuser only from the nodes' admin addresses;
 * replication only from the nodes' replication and admin addresses; the
 * replication user nowhere else; applications from `clients`.
 */
export function renderHba(cfg: ClusterConfig): string {
  const uniq = (xs: string[]) => [...new Set(xs)];
  const admin = uniq([...cfg.nodes.map((n) => n.admin), ...cfg.managerAddresses].map(hbaAddress));
  const repl = uniq([...cfg.nodes.map((n) => hbaAddress(n.replication)), ...admin]);
  const lines = [
    HEADER.trimEnd(),
    '# TYPE  DATABASE     USER            ADDRESS            METHOD',
    ...admin.map((a) => hbaLine('all', cfg.superuser, a, 'scram-sha-256')),
    ...repl.map((a) => hbaLine('replication', cfg.replicationUser, a, 'scram-sha-256')),
    hbaLine('all', cfg.superuser, 'all', 'reject'),
    hbaLine('all', cfg.replicationUser, 'all', 'reject'),
    ...uniq([...cfg.clients]).map((c) => hbaLine('all', 'all', c, 'scram-sha-256')),
  ];
  return lines.join('\n') + '\n';
}

function hbaLine(db: string, user: string, address: string, method: string): string {
  return `host    ${db.padEnd(12)} ${user.padEnd(15)} ${address.padEnd(18)} ${method}`;
}

function hbaAddress(a: string): string {
  if (/^\d+\.\d+\.\d+\.\d+$/.test(a)) return `${a}/32`;
  if (a.includes(':')) return `${a}/128`;
  return a; // a host name: pg_hba resolves it
}

function listenAddresses(node: NodeConfig): string {
  return [...new Set([node.service, node.replication, node.admin])].join(',');
}

export function settingsLines(s: Settings): string {
  return Object.entries(s)
    .map(([k, v]) => `${k} = ${formatValue(v)}\n`)
    .join('');
}

function formatValue(v: string | number | boolean): string {
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  if (typeof v === 'number') return String(v);
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}
