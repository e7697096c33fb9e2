import type { NodeConfig } from '../config/types.js';
import { slotName } from '../config/render.js';
import { formatLsn, lsnDiff, parseLsn } from '../postgres/lsn.js';
import { withClient } from '../postgres/sql.js';
import { adminTarget, currentPrimaryName, nodeDsn, type ClusterContext } from './context.js';
import { readSecrets } from './secrets.js';
import { daemonPid, daemonRole, livePid, restarts, since, spareRole, supervisorRole } from '../daemon/spawn.js';
import { endpointStats, type EndpointStats } from '../router/stats.js';
import { readService } from '../daemon/service.js';
import type { EndpointKind } from '../config/types.js';
import { Repository } from '../backup/repository.js';
import { archiveStatus, repositoryWindow, type ArchiveStatus } from '../backup/wal-status.js';
import type { WindowReport } from '../backup/window.js';
import { multiHostStatus, type DcsStatus, type HostStatus } from '../agent/cluster-ops.js';
import { PGMAESTRO_VERSION } from '../version.js';
import { ARCHIVER_SLOT } from '../ha/promote.js';
import { logicalSummary, type QueryNodeSummary, type SubscriptionSummary } from '../logical/status.js';

export type Role = 'primary' | 'replica' | 'down' | 'fenced';

export interface SlotStatus {
  readonly name: string;
  readonly active: boolean;
  readonly restart_lsn: string | null;
  readonly wal_status: string | null;
  readonly safe_wal_size: number | null;
}

/** A physical slot on the primary and the WAL it holds back there. */
export interface PrimarySlot extends SlotStatus {
  /** 'replica' (a node's), 'archiver' (the WAL archiver's) or 'other'. */
  readonly kind: 'replica' | 'archiver' | 'other';
  /** The node a replica slot serves. */
  readonly node: string | null;
  /** Bytes of WAL from the slot's restart_lsn to the primary's position; null without a restart_lsn. */
  readonly retained_bytes: number | null;
  /** Bytes that can still be written before the slot is in danger (PostgreSQL's safe_wal_size); null when unbounded. */
  readonly safe_wal_size: number | null;
}

export interface NodeStatus {
  readonly name: string;
  readonly role: Role;
  readonly reachable: boolean;
  /** Multi-host: the host (hosts[].name) the node runs on; otherwise its service address, as before hosts existed. */
  readonly host: string;
  /** The service address. */
  readonly address: string;
  readonly port: number;
  readonly data_dir: string;
  readonly pid: number | null;
  readonly timeline: number | null;
  /** Primary: current write position; replica: last replayed position. */
  readonly lsn: string | null;
  readonly receive_lsn: string | null;
  readonly lag_bytes: number | null;
  readonly lag_seconds: number | null;
  readonly upstream: string | null;
  readonly slot: SlotStatus | null;
  /** Settings whose new value waits for a restart (PostgreSQL's pending_restart). */
  readonly pending_restart: readonly string[];
  readonly dsn: string;
  readonly error: string | null;
}

export interface ClusterStatus {
  /** pgmaestro's own version. */
  readonly version: string;
  readonly cluster: string;
  readonly config: string;
  readonly primary: string;
  readonly postgres_version: string;
  readonly passfile: string;
  readonly daemon: {
    readonly running: boolean;
    readonly pid: number | null;
    readonly log: string;
    readonly since: string | null;
    readonly restarts: number;
    /** Who keeps the daemon and the endpoints running: pgmaestro's supervisor, or systemd (`service`: its target). */
    readonly managed_by: 'supervisor' | 'systemd';
    readonly service: string | null;
    /** `spare`: the pid of the idle process the supervisor keeps to take over a dead role at once (null while it starts one). */
    readonly supervisor: { readonly running: boolean; readonly pid: number | null; readonly since: string | null; readonly spare: number | null };
  };
  /** `rw`, `ro`, `auto`: host:port of each endpoint whose process runs; `details`: each enabled endpoint (see EndpointStats). */
  readonly endpoints: EndpointsStatus;
  /** Multi-host only. */
  readonly hosts?: readonly HostStatus[];
  readonly controller?: string | null;
  readonly dcs?: DcsStatus;
  readonly archive: ArchiveStatus | null;
  readonly backups: { readonly count: number; readonly latest: string | null };
  /** Whether every moment of the recovery window can be restored now (null when the repository cannot be read). */
  readonly window: WindowReport | null;
  readonly nodes: NodeStatus[];
  /** Every physical slot on the primary (the replicas' and the WAL archiver's); empty when the primary is down. */
  readonly slots: PrimarySlot[];
  /** Nodes of kind query (independent servers fed by logical replication); absent when there are none. */
  readonly query_nodes?: QueryNodeSummary[];
  /** One record per declared subscription (the web console lists them); absent when none is declared. */
  readonly subscriptions?: SubscriptionSummary[];
}

export interface EndpointsStatus {
  readonly rw?: string;
  readonly ro?: string;
  readonly auto?: string;
  /** The web console and /metrics (served by the daemon): host:port while the daemon runs. */
  readonly console?: string;
  /** The read-only endpoint over the query nodes (served by the daemon itself): host:port while the daemon runs. */
  readonly query?: string;
  /** Multi-host: the rw endpoint each reachable agent serves, by host name. */
  readonly rw_by_host?: Readonly<Record<string, string>>;
  readonly details: Partial<Record<EndpointKind, EndpointStats>>;
  /** libpq URIs (no password) for applications: one per running endpoint, and multi-host strings that need no pgmaestro process. */
  readonly dsn: Partial<Record<EndpointKind, string>> & { readonly multi_host_rw: string; readonly multi_host_ro: string };
}

interface Probe {
  readonly inRecovery: boolean;
  readonly lsn: bigint;
  readonly receiveLsn: bigint | null;
  readonly timeline: number | null;
  readonly upstream: string | null;
  readonly pendingRestart: string[];
  /** Primary only: per application_name, seconds of replay lag. */
  readonly replayLag: Map<string, number | null>;
  readonly slots: Map<string, SlotStatus>;
}

/** Observes every node in parallel. A node that is stopped or unreachable is reported `down`, never raised. */
export async function clusterStatus(ctx: ClusterContext): Promise<ClusterStatus> {
  const secrets = readSecrets(ctx.cfg);
  const primaryName = await currentPrimaryName(ctx);
  const fenced = new Set((await ctx.store.read())?.fenced ?? []);
  const probes = await Promise.all(
    ctx.cfg.nodes.map(async (n): Promise<Probe | Error> => {
      if (!secrets) return new Error('never provisioned');
      try {
        return await probe(ctx, n, secrets);
      } catch (err) {
        return err as Error;
      }
    }),
  );
  const byName = new Map(ctx.cfg.nodes.map((n, i) => [n.name, probes[i]]));
  const primaryProbe = byName.get(primaryName);
  const primaryOk = primaryProbe instanceof Error || primaryProbe === undefined || primaryProbe.inRecovery ? null : primaryProbe;

  const pids = await Promise.all(ctx.cfg.nodes.map(async (n) => (await ctx.control(n).inspect()).pid));
  const nodes = ctx.cfg.nodes.map((n, i) => nodeStatus(ctx, n, probes[i], primaryOk, fenced.has(n.name), pids[i]));
  const dpid = daemonPid(ctx);
  const spid = livePid(ctx, supervisorRole(ctx));
  const service = readService(ctx);
  const eps = await endpointStats(ctx);
  const primaryNode = nodes.find((n) => n.name === primaryName && n.role === 'primary');
  let archive: ArchiveStatus | null = null;
  let backups = { count: 0, latest: null as string | null };
  let window: WindowReport | null = null;
  let repo: Repository | null = null;
  try {
    repo = await Repository.open(ctx, 'read');
    if (ctx.cfg.backup.walArchive) archive = await archiveStatus(ctx, repo, primaryNode?.lsn ?? null);
    const list = await repo.list();
    backups = { count: list.length, latest: list[list.length - 1]?.id ?? null };
    window = await repositoryWindow(ctx, repo);
  } catch {
    // a missing or unreadable repository does not make status fail
  } finally {
    await repo?.close().catch(() => undefined);
  }
  const logical = (ctx.cfg.queryNodes?.length ?? 0) > 0 || (ctx.cfg.logical?.subscriptions.length ?? 0) > 0 ? await logicalSummary(ctx) : null;
  const multi = ctx.cfg.dcs ? await multiHostStatus(ctx) : null;
  const byHost: Record<string, string> = {};
  for (const h of multi?.hosts ?? []) {
    const n = ctx.cfg.nodes.find((x) => x.host === h.name);
    if (n && h.reachable && ctx.cfg.endpoints.rw) byHost[h.name] = `${n.service}:${ctx.cfg.endpoints.rw.port}`;
  }
  // multi-host: every agent serves the endpoint on its host; the primary's own host is one hop shorter
  const primaryHost = ctx.cfg.nodes.find((n) => n.name === primaryName)?.host ?? '';
  const rw = byHost[primaryHost] ?? Object.values(byHost)[0];
  // multi-host: every agent serves the console on its host; status names the primary's (or the first that answers)
  const consoleHost = ctx.cfg.nodes.find((n) => n.host === primaryHost && byHost[primaryHost]) ?? ctx.cfg.nodes.find((n) => n.host && byHost[n.host]);
  const consoleAt = ctx.cfg.endpoints.console;
  const endpoints: EndpointsStatus = multi
    ? { ...endpointsStatus(ctx, []), ...(rw ? { rw, rw_by_host: byHost } : {}), ...(consoleAt && consoleHost ? { console: `${consoleHost.service}:${consoleAt.port}` } : {}) }
    : { ...endpointsStatus(ctx, eps), ...(dpid !== null && consoleAt ? { console: `${consoleAt.host}:${consoleAt.port}` } : {}) };
  const queryAt = ctx.cfg.queryEndpoint;
  const withQuery: EndpointsStatus = !multi && dpid !== null && queryAt && (ctx.cfg.queryNodes?.length ?? 0) > 0 ? { ...endpoints, query: `${queryAt.host}:${queryAt.port}` } : endpoints;
  return {
    version: PGMAESTRO_VERSION,
    cluster: ctx.cfg.cluster,
    config: ctx.cfg.file,
    primary: primaryName,
    postgres_version: ctx.bins.version,
    passfile: ctx.paths.superuserPassfile,
    daemon: {
      running: dpid !== null,
      pid: dpid,
      log: ctx.paths.daemonLog,
      since: dpid === null ? null : since(daemonRole(ctx)),
      restarts: restarts(daemonRole(ctx)),
      managed_by: service ? 'systemd' : 'supervisor',
      service: service?.target ?? null,
      supervisor: { running: spid !== null, pid: spid, since: spid === null ? null : since(supervisorRole(ctx)), spare: spid === null ? null : livePid(ctx, spareRole(ctx)) },
    },
    endpoints: withQuery,
    ...(multi ? { hosts: multi.hosts, controller: multi.controller, dcs: multi.dcs } : {}),
    archive,
    backups,
    window,
    nodes,
    slots: primaryOk
      ? [...primaryOk.slots.values()].map((sl) => {
          const node = ctx.cfg.nodes.find((n) => slotName(n) === sl.name)?.name ?? null;
          return { ...sl, kind: sl.name === ARCHIVER_SLOT ? 'archiver' : node ? 'replica' : 'other', node, retained_bytes: sl.restart_lsn ? Number(lsnDiff(primaryOk.lsn, parseLsn(sl.restart_lsn))) : null } as const;
        })
      : [],
    ...(logical && logical.query_nodes.length > 0 ? { query_nodes: logical.query_nodes } : {}),
    ...(logical && logical.subscriptions.length > 0 ? { subscriptions: logical.subscriptions } : {}),
  };
}

function endpointsStatus(ctx: ClusterContext, eps: EndpointStats[]): EndpointsStatus {
  const running = eps.filter((e) => e.running);
  const addresses: Partial<Record<EndpointKind, string>> = Object.fromEntries(running.map((e) => [e.kind, e.address]));
  const uri = (hosts: string, query = '') => `postgresql://${ctx.cfg.superuser}@${hosts}/postgres${query}`;
  const all = ctx.cfg.nodes.map((n) => `${n.service.includes(':') ? `[${n.service}]` : n.service}:${n.port}`).join(',');
  return {
    ...addresses,
    details: Object.fromEntries(eps.map((e) => [e.kind, e])),
    dsn: {
      ...Object.fromEntries(running.map((e) => [e.kind, uri(e.address)])),
      multi_host_rw: uri(all, '?target_session_attrs=read-write'),
      multi_host_ro: uri(all, '?target_session_attrs=prefer-standby'),
    },
  };
}

function nodeStatus(ctx: ClusterContext, n: NodeConfig, p: Probe | Error, primary: Probe | null, isFenced: boolean, pid: number | null): NodeStatus {
  const base = { name: n.name, host: n.host ?? n.service, address: n.service, port: n.port, data_dir: n.dataDir, pid, dsn: nodeDsn(ctx, n) };
  if (p instanceof Error) {
    return { ...base, role: isFenced ? 'fenced' : 'down', reachable: false, timeline: null, lsn: null, receive_lsn: null, lag_bytes: null, lag_seconds: null, upstream: null, slot: null, pending_restart: [], error: p.message };
  }
  const role: Role = isFenced ? 'fenced' : p.inRecovery ? 'replica' : 'primary';
  const lagBytes = p.inRecovery && primary ? Number(lsnDiff(primary.lsn, p.lsn)) : p.inRecovery ? null : 0;
  const lagSeconds = !p.inRecovery ? 0 : lagBytes === 0 ? 0 : (primary?.replayLag.get(n.name) ?? null);
  return {
    ...base,
    role,
    reachable: true,
    timeline: p.timeline,
    lsn: formatLsn(p.lsn),
    receive_lsn: p.receiveLsn === null ? null : formatLsn(p.receiveLsn),
    lag_bytes: lagBytes,
    lag_seconds: lagSeconds,
    upstream: p.upstream,
    slot: p.inRecovery ? (primary?.slots.get(slotName(n)) ?? null) : null,
    pending_restart: p.pendingRestart,
    error: null,
  };
}

async function probe(ctx: ClusterContext, n: NodeConfig, secrets: NonNullable<ReturnType<typeof readSecrets>>): Promise<Probe> {
  return withClient(
    adminTarget(ctx, n, secrets),
    async (c) => {
      const r = await c.query<{ rec: boolean; pending: string[] }>('SELECT pg_is_in_recovery() AS rec, ARRAY(SELECT name FROM pg_settings WHERE pending_restart ORDER BY name)::text[] AS pending');
      const inRecovery = r.rows[0].rec;
      if (!inRecovery) {
        const w = await c.query<{ lsn: string; walfile: string }>('SELECT pg_current_wal_lsn()::text AS lsn, pg_walfile_name(pg_current_wal_lsn()) AS walfile');
        const rep = await c.query<{ application_name: string; lag: number | null }>('SELECT application_name, EXTRACT(epoch FROM replay_lag)::float8 AS lag FROM pg_stat_replication');
        const sl = await c.query<{ slot_name: string; active: boolean; restart_lsn: string | null; wal_status: string | null; safe: string | null }>(
          "SELECT slot_name, active, restart_lsn::text, wal_status, safe_wal_size::text AS safe FROM pg_replication_slots WHERE slot_type = 'physical'",
        );
        return {
          inRecovery,
          lsn: parseLsn(w.rows[0].lsn),
          receiveLsn: null,
          timeline: parseInt(w.rows[0].walfile.slice(0, 8), 16),
          upstream: null,
          pendingRestart: r.rows[0].pending,
          replayLag: new Map(rep.rows.map((x) => [x.application_name, x.lag])),
          slots: new Map(sl.rows.map((x) => [x.slot_name, { name: x.slot_name, active: x.active, restart_lsn: x.restart_lsn, wal_status: x.wal_status, safe_wal_size: x.safe === null ? null : Number(x.safe) }])),
        };
      }
      const s = await c.query<{ replay: string | null; receive: string | null; tli: number | null; ctl_tli: number; host: string | null; port: number | null }>(
        `SELECT pg_last_wal_replay_lsn()::text AS replay, pg_last_wal_receive_lsn()::text AS receive,
                (SELECT received_tli FROM pg_stat_wal_receiver) AS tli,
                (SELECT timeline_id FROM pg_control_checkpoint()) AS ctl_tli,
                (SELECT sender_host FROM pg_stat_wal_receiver) AS host,
                (SELECT sender_port FROM pg_stat_wal_receiver) AS port`,
      );
      const row = s.rows[0];
      const upstream = ctx.cfg.nodes.find((m) => m.port === row.port && (m.replication === row.host || m.service === row.host || m.admin === row.host));
      return {
        inRecovery,
        lsn: row.replay ? parseLsn(row.replay) : 0n,
        receiveLsn: row.receive ? parseLsn(row.receive) : null,
        timeline: row.tli ?? row.ctl_tli,
        upstream: upstream?.name ?? null,
        pendingRestart: r.rows[0].pending,
        replayLag: new Map(),
        slots: new Map(),
      };
    },
    3000,
  );
}
