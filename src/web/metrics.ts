import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { parseLsn } from '../postgres/lsn.js';
import type { ConsoleView } from './view.js';

/**
 * `/metrics` in the Prometheus text format. Each scrape renders one view
 * into a fresh registry (so a node that disappeared leaves no stale series),
 * merged with the process's own default metrics. Names follow Prometheus
 * conventions: `pgmaestro_` prefix, the unit in the name, `_total` on
 * counters; a value that is unknown (a node down) is absent, never 0.
 */

/** What the daemon counts itself: it is not in any observation. */
export class DaemonCounters {
  readonly decisions = new Map<string, number>();
  failovers = 0;

  decision(kind: string): void {
    this.decisions.set(kind, (this.decisions.get(kind) ?? 0) + 1);
  }

  failover(): void {
    this.failovers++;
  }
}

const ROLES = ['primary', 'replica', 'down', 'fenced'] as const;
const BACKUP_TYPES = ['full', 'incr', 'cold', 'logical'] as const;

export class MetricsRenderer {
  private readonly process = new Registry();

  constructor(private readonly counters: DaemonCounters) {
    collectDefaultMetrics({ register: this.process });
  }

  get contentType(): string {
    return this.process.contentType;
  }

  async render(view: ConsoleView): Promise<string> {
    const reg = new Registry();
    fill(reg, view, this.counters);
    return (await Registry.merge([reg, this.process]).metrics()) as string;
  }
}

function fill(reg: Registry, v: ConsoleView, counters: DaemonCounters): void {
  const g = (name: string, help: string, labelNames: string[] = []) => new Gauge({ name, help, labelNames, registers: [reg] });
  const set = (m: Gauge, labels: Record<string, string>, value: number | null | undefined) => {
    if (value !== null && value !== undefined && Number.isFinite(value)) m.set(labels, value);
  };
  /** A gauge without labels, registered only when its value is known (prom-client would print an unset one as 0). */
  const single = (name: string, help: string, value: number | null | undefined) => {
    if (value !== null && value !== undefined && Number.isFinite(value)) g(name, help).set(value);
  };

  // cluster and nodes
  const info = g('pgmaestro_cluster_info', 'The cluster, its current primary and PostgreSQL version (always 1).', ['cluster', 'primary', 'postgres_version']);
  if (v.cluster) info.set({ cluster: v.cluster, primary: v.primary ?? '', postgres_version: v.postgres_version ?? '' }, 1);
  single('pgmaestro_observation_timestamp_seconds', 'When the values below were observed (Unix time).', Date.parse(v.at) / 1000);
  const up = g('pgmaestro_node_up', '1 when pgmaestro reaches the node over SQL, else 0.', ['node']);
  const role = g('pgmaestro_node_role', 'The node\'s role: 1 for the role it has, 0 for the others.', ['node', 'role']);
  const tl = g('pgmaestro_node_timeline', 'The timeline the node is on.', ['node']);
  const lsn = g('pgmaestro_node_wal_lsn_bytes', 'The node\'s WAL position as a byte number: the primary\'s write position, a replica\'s replay position.', ['node']);
  const lagB = g('pgmaestro_node_replay_lag_bytes', 'Bytes of WAL the replica has still to replay (0 on the primary).', ['node']);
  const lagS = g('pgmaestro_node_replay_lag_seconds', 'Replay lag in seconds as the primary measures it (0 when caught up).', ['node']);
  for (const n of v.nodes) {
    up.set({ node: n.name }, n.reachable ? 1 : 0);
    for (const r of ROLES) role.set({ node: n.name, role: r }, n.role === r ? 1 : 0);
    set(tl, { node: n.name }, n.timeline);
    set(lsn, { node: n.name }, n.lsn ? Number(parseLsn(n.lsn)) : null);
    set(lagB, { node: n.name }, n.lag_bytes);
    set(lagS, { node: n.name }, n.lag_seconds);
  }
  const retained = g('pgmaestro_replication_slot_retained_wal_bytes', 'WAL the primary keeps for the slot: from its restart_lsn to the primary\'s position.', ['slot']);
  const active = g('pgmaestro_replication_slot_active', '1 when a client streams from the slot.', ['slot']);
  for (const s of v.slots) {
    set(retained, { slot: s.name }, s.retained_bytes);
    active.set({ slot: s.name }, s.active ? 1 : 0);
  }

  // WAL archive and backups
  single('pgmaestro_archive_lag_bytes', 'Bytes the primary has written past the end of the WAL archive.', v.archive?.lag_bytes);
  single('pgmaestro_archive_wal_lsn_bytes', 'Where the WAL archive ends, as a byte number.', v.archive?.archived_lsn ? Number(parseLsn(v.archive.archived_lsn)) : null);
  single('pgmaestro_repository_up', '1 when the backup repository can be read.', v.backups.ok ? 1 : 0);
  if (v.backups.ok) {
    const b = v.backups;
    const count = g('pgmaestro_backups', 'Completed backups in the repository.', ['type']);
    const age = g('pgmaestro_backup_last_age_seconds', 'Seconds since the newest backup of the type ended.', ['type']);
    const size = g('pgmaestro_backup_last_size_bytes', 'Size of the newest backup of the type (bytes of the original files).', ['type']);
    const stored = g('pgmaestro_backup_last_stored_bytes', 'Bytes the newest backup of the type takes in the repository.', ['type']);
    const dur = g('pgmaestro_backup_last_duration_seconds', 'How long the newest backup of the type took.', ['type']);
    const now = Date.parse(v.at);
    for (const t of BACKUP_TYPES) {
      const ofType = b.backups.filter((x) => x.type === t); // newest first
      count.set({ type: t }, ofType.length);
      const last = ofType[0];
      if (!last) continue;
      age.set({ type: t }, Math.max(0, (now - Date.parse(last.stop_time)) / 1000));
      size.set({ type: t }, last.size_bytes);
      stored.set({ type: t }, last.stored_bytes);
      dur.set({ type: t }, Math.max(0, (Date.parse(last.stop_time) - Date.parse(last.start_time)) / 1000));
    }
    single('pgmaestro_recovery_window_restorable', '1 when every moment of the recovery window up to the end of the WAL archive can be restored.', b.timeline.fullyRestorable ? 1 : 0);
    single('pgmaestro_recovery_window_seconds', 'The recovery window: backup.retention, or the age of the cluster when it is younger.', (Date.parse(b.timeline.now) - Date.parse(b.timeline.windowStart)) / 1000);
    single('pgmaestro_recovery_oldest_restorable_timestamp_seconds', 'The oldest moment a restore can reach now (Unix time).', b.timeline.restorable ? Date.parse(b.timeline.restorable.from) / 1000 : null);
    const used = g('pgmaestro_repository_stored_bytes', 'Bytes the repository holds, by kind.', ['kind']);
    used.set({ kind: 'backups' }, b.storage.backups_bytes);
    used.set({ kind: 'wal' }, b.storage.wal_bytes);
    single('pgmaestro_repository_projected_bytes', 'What the backup policy will hold once the window is full, at the observed sizes and WAL rate.', b.storage.projected_bytes);
  }

  // endpoints and the router (decisions appear once the router exists)
  const conns = g('pgmaestro_endpoint_connections', 'Client connections the endpoint forwards now.', ['endpoint']);
  const waiting = g('pgmaestro_endpoint_waiting_connections', 'Client connections the endpoint holds while it has no target (failover).', ['endpoint']);
  const fromClients = new Counter({ name: 'pgmaestro_endpoint_received_bytes_total', help: 'Bytes received from clients.', labelNames: ['endpoint'], registers: [reg] });
  const toClients = new Counter({ name: 'pgmaestro_endpoint_sent_bytes_total', help: 'Bytes sent to clients.', labelNames: ['endpoint'], registers: [reg] });
  const routed = new Counter({ name: 'pgmaestro_router_decisions_total', help: 'Statements or transactions the router sent, by route.', labelNames: ['endpoint', 'route'], registers: [reg] });
  for (const e of v.endpoints) {
    conns.set({ endpoint: e.name }, e.connections);
    waiting.set({ endpoint: e.name }, e.waiting);
    fromClients.inc({ endpoint: e.name }, e.bytesFromClients);
    toClients.inc({ endpoint: e.name }, e.bytesToClients);
    for (const [route, n] of Object.entries(e.decisions)) routed.inc({ endpoint: e.name, route }, n);
  }

  // what the daemon decided
  const decisions = new Counter({ name: 'pgmaestro_monitor_decisions_total', help: 'Monitor cycles by the decision taken (none, wait, restart, fence, failover).', labelNames: ['kind'], registers: [reg] });
  for (const [kind, n] of counters.decisions) decisions.inc({ kind }, n);
  new Counter({ name: 'pgmaestro_failovers_total', help: 'Failovers (automatic and forced) carried out by this daemon since it started.', registers: [reg] }).inc(counters.failovers);
}
