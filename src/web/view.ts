import { storageSummary, type StorageSummary } from '../backup/summary.js';
import type { ArchiveStatus } from '../backup/wal-status.js';
import type { BackupInfo } from '../backup/types.js';
import type { ClusterStatus, NodeStatus } from '../cluster/status.js';
import type { EventRecord } from '../daemon/events.js';
import { parseLsn } from '../postgres/lsn.js';
import type { ConsoleInputs, EndpointStat } from './source.js';
import type { WindowReport } from '../backup/window.js';
import { backupTimeline, type RecoveryAnalysis, type RestorableRange, type TimelineModel } from './timeline.js';

/**
 * What the page shows, built from one observation. Pure. Every field is
 * chosen here, one by one, from the inputs, so no secret can ride along with
 * a status object; only the seams for fields other work will add to
 * `status` (hosts, controller, dcs, subscriptions) pass as they come. The
 * server also redacts every secret it knows from whatever it sends.
 */

/** A node as the page shows it: what status says, minus its data directory and connection string. */
export type NodeView = Pick<NodeStatus, 'name' | 'role' | 'reachable' | 'pid' | 'timeline' | 'lsn' | 'receive_lsn' | 'lag_bytes' | 'lag_seconds' | 'upstream' | 'pending_restart' | 'error'> & {
  readonly address: string;
  readonly slot: { readonly name: string; readonly active: boolean } | null;
};

export type BackupRow = Pick<BackupInfo, 'id' | 'type' | 'parent' | 'node' | 'start_time' | 'stop_time' | 'size_bytes' | 'stored_bytes'>;

export type BackupsView =
  | { readonly ok: true; readonly timeline: TimelineModel; readonly backups: readonly BackupRow[]; readonly storage: StorageSummary; readonly schedule: { readonly full: string; readonly incr: string } }
  | { readonly ok: false; readonly error: string };

/** One point of the charts. */
export interface SamplePoint {
  /** Unix seconds. */
  readonly t: number;
  readonly primary: string | null;
  readonly timeline: number | null;
  /** The primary's WAL position as a byte number (for the write rate). */
  readonly lsn: number | null;
  /** Bytes of WAL per second written since the previous point; null across a change of primary or timeline. */
  readonly write_rate: number | null;
  readonly lag_bytes: Readonly<Record<string, number | null>>;
  readonly lag_seconds: Readonly<Record<string, number | null>>;
}

export interface ConsoleView {
  readonly at: string;
  readonly cluster: string | null;
  readonly postgres_version: string | null;
  readonly primary: string | null;
  readonly daemon_pid: number | null;
  /** One sentence per thing a DBA must look at: a node down, a repository unreadable, an observation that failed. */
  readonly problems: readonly string[];
  readonly nodes: readonly NodeView[];
  readonly slots: readonly { readonly name: string; readonly active: boolean; readonly retained_bytes: number | null }[];
  readonly endpoints: readonly EndpointStat[];
  readonly archive: ArchiveStatus | null;
  readonly monitor: { readonly at: string; readonly sentence: string } | null;
  /** Newest first. */
  readonly events: readonly EventRecord[];
  readonly backups: BackupsView;
  /**
   * Seams for work in progress elsewhere, shown when `status` carries them:
   * the hosts, controller and state store of the multi-host mode (issue 9),
   * logical subscriptions and partitions. null: not available.
   */
  readonly hosts: readonly Readonly<Record<string, unknown>>[] | null;
  readonly controller: Readonly<Record<string, unknown>> | null;
  readonly dcs: Readonly<Record<string, unknown>> | null;
  readonly logical: readonly Readonly<Record<string, unknown>>[] | null;
  readonly sample: SamplePoint;
}

export function buildView(inp: ConsoleInputs, previous: SamplePoint | null): ConsoleView {
  const st = inp.status;
  const nodes = (st?.nodes ?? []).map(
    (n): NodeView => ({
      name: n.name,
      role: n.role,
      reachable: n.reachable,
      address: `${n.host}:${n.port}`,
      pid: n.pid,
      timeline: n.timeline,
      lsn: n.lsn,
      receive_lsn: n.receive_lsn,
      lag_bytes: n.lag_bytes,
      lag_seconds: n.lag_seconds,
      upstream: n.upstream,
      slot: n.slot ? { name: n.slot.name, active: n.slot.active } : null,
      pending_restart: n.pending_restart,
      error: n.error,
    }),
  );
  const backups = backupsView(inp);
  const extra = (st ?? {}) as unknown as Record<string, unknown>;
  return {
    at: inp.at.toISOString(),
    cluster: st?.cluster ?? null,
    postgres_version: st?.postgres_version ?? null,
    primary: st?.primary ?? null,
    daemon_pid: st?.daemon.pid ?? null,
    problems: problems(inp, backups),
    nodes,
    slots: (st?.slots ?? []).map((s) => ({ name: s.name, active: s.active, retained_bytes: s.retained_bytes })),
    endpoints: inp.endpoints,
    archive: st?.archive ?? null,
    monitor: inp.monitor,
    events: inp.events,
    backups,
    hosts: records(extra.hosts),
    controller: record(extra.controller),
    dcs: record(extra.dcs),
    logical: records(extra.subscriptions),
    sample: samplePoint(inp, st, previous),
  };
}

function backupsView(inp: ConsoleInputs): BackupsView {
  const r = inp.repository;
  if (!r.ok) return { ok: false, error: r.error };
  const timeline = backupTimeline({
    backups: r.backups,
    walArchivedAt: r.wal.filter((e) => !e.name.includes('.')).map((e) => e.archived_at),
    walArchive: r.policy.walArchive,
    retentionMs: r.policy.retentionMs,
    retention: r.policy.retention,
    now: inp.at,
    createdAt: createdAt(r.backups.find((b) => b.system_identifier)?.system_identifier ?? null),
    analysis: r.analysis ?? analysisOfWindow(inp.status?.window ?? null),
  });
  const rows = [...r.backups].reverse().map((b) => ({ id: b.id, type: b.type, parent: b.parent, node: b.node, start_time: b.start_time, stop_time: b.stop_time, size_bytes: b.size_bytes, stored_bytes: b.stored_bytes }));
  return { ok: true, timeline, backups: rows, storage: storageSummary(r.backups, r.wal, r.policy, inp.at), schedule: r.policy.schedule };
}

/**
 * The repository's own analysis of the recovery window (status.window: WAL
 * gaps, failed backups, an archive that stands still) as the timeline draws
 * it. WAL not archived yet is pending, not lost.
 */
export function analysisOfWindow(w: WindowReport | null): RecoveryAnalysis | null {
  if (!w) return null;
  const ranges: RestorableRange[] = w.ranges.map((r) => ({ from: r.from, to: r.to, state: r.restorable ? 'restorable' : /not in the archive yet/.test(r.reason) ? 'pending' : 'unrestorable', reason: r.reason }));
  // the archive trails now by less than the analysis tolerates: that tail is lag, not a gap
  const end = ranges.at(-1)?.to ?? w.window_start;
  if (end < w.window_end) ranges.push({ from: end, to: w.window_end, state: 'pending', reason: 'WAL written since then is not in the archive yet' });
  return { ranges, walGaps: [] };
}

/** A system identifier's upper 32 bits are the second initdb ran. */
export function createdAt(systemIdentifier: string | null): string | null {
  if (!systemIdentifier || !/^\d+$/.test(systemIdentifier)) return null;
  return new Date(Number(BigInt(systemIdentifier) >> 32n) * 1000).toISOString();
}

function problems(inp: ConsoleInputs, backups: BackupsView): string[] {
  const out: string[] = [];
  if (inp.error) out.push(inp.error);
  for (const n of inp.status?.nodes ?? []) {
    if (n.role === 'fenced') out.push(`${n.name} is fenced: it stays out of the cluster until \`pgmaestro rejoin ${n.name}\``);
    else if (n.role === 'down') out.push(`${n.name} is down${n.error ? `: ${n.error}` : ''}`);
    if (n.pending_restart.length > 0) out.push(`${n.name} needs a restart to apply ${n.pending_restart.join(', ')} (pgmaestro restart)`);
  }
  if (inp.status && !inp.status.nodes.some((n) => n.role === 'primary')) out.push(`no node is primary right now (expected ${inp.status.primary})`);
  if (!backups.ok) out.push(backups.error);
  else if (!backups.timeline.fullyRestorable) out.push(`the recovery window is not fully restorable: ${backups.timeline.sentence}`);
  return out;
}

function samplePoint(inp: ConsoleInputs, st: ClusterStatus | null, previous: SamplePoint | null): SamplePoint {
  const t = Math.round(inp.at.getTime() / 100) / 10;
  const p = st?.nodes.find((n) => n.role === 'primary' && n.name === st.primary) ?? null;
  const lsn = p?.lsn ? Number(parseLsn(p.lsn)) : null;
  const same = previous && p && previous.primary === p.name && previous.timeline === p.timeline && previous.lsn !== null && lsn !== null && t > previous.t;
  const lag_bytes: Record<string, number | null> = {};
  const lag_seconds: Record<string, number | null> = {};
  for (const n of st?.nodes ?? []) {
    if (n.role === 'primary') continue;
    lag_bytes[n.name] = n.role === 'replica' ? n.lag_bytes : null;
    lag_seconds[n.name] = n.role === 'replica' ? n.lag_seconds : null;
  }
  return {
    t,
    primary: p?.name ?? null,
    timeline: p?.timeline ?? null,
    lsn,
    write_rate: same ? Math.max(0, Math.round((lsn - previous.lsn!) / (t - previous.t))) : null,
    lag_bytes,
    lag_seconds,
  };
}

function record(v: unknown): Record<string, unknown> | null {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

function records(v: unknown): Record<string, unknown>[] | null {
  return Array.isArray(v) ? v.filter((x) => record(x) !== null) : null;
}
