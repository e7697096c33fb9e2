import type { Lsn } from '../postgres/lsn.js';

/**
 * What the monitor saw of one node in one cycle. The daemon fills it from its
 * probes and the cluster's configuration; `decide()` never does I/O, so every
 * fact it may act on is here. A field the probe could not learn is null, never
 * a guess: the policy treats null as "unknown", which never hastens a failover.
 */
export interface NodeObservation {
  readonly name: string;
  /** The SQL probe (connect + SELECT) answered within its timeout. */
  readonly sqlOk: boolean;
  /**
   * How long the SQL probe took to answer successfully, even when that was
   * after its timeout (the daemon lets a timed-out probe run on and reports
   * when it eventually answers). null when it never answered successfully:
   * refused, reset, an error reply ("starting up"), or still pending.
   * `sqlOk === false && probeMs !== null` reads as "slow but alive".
   */
  readonly probeMs: number | null;
  /** The node's host answers at all on its admin address (TCP to its port, agent, ICMP), independently of SQL. */
  readonly hostReachable: boolean;
  /** Whether the postmaster's pid is alive; null when the host cannot be inspected (e.g. unreachable). */
  readonly postmasterAlive: boolean | null;
  /** pg_is_in_recovery(); null when unknown. */
  readonly inRecovery: boolean | null;
  /** pg_current_wal_lsn() on a primary; null on replicas or when unknown. */
  readonly walLsn: Lsn | null;
  /** pg_last_wal_receive_lsn(): WAL received and flushed to disk; null when unknown. */
  readonly receiveLsn: Lsn | null;
  /** pg_last_wal_replay_lsn(); null when unknown. */
  readonly replayLsn: Lsn | null;
  /** pg_stat_wal_receiver.status = 'streaming'; null when unknown (probe failed). */
  readonly upstreamStreaming: boolean | null;
  /**
   * The node the WAL receiver is connected to, when the daemon could map
   * sender_host/sender_port to a node name; null when unknown. Unknown is read
   * as "the cluster's primary", as every pgmaestro replica streams from it.
   */
  readonly upstream: string | null;
  /** now() - pg_stat_wal_receiver.last_msg_receipt_time, in ms; null when unknown. */
  readonly lastMsgAgeMs: number | null;
  readonly timeline: number | null;
  /** Static, from the configuration: never promote this node. */
  readonly nofailover: boolean;
  /** Static, from the configuration: election tie-breaker, higher wins. */
  readonly priority: number;
  /** From the cluster state: held out of the endpoint until rejoined. */
  readonly fenced: boolean;
}

/** Synchronous replication: a commit is acknowledged once `quorum` replicas flushed it (ANY N). */
export interface SynchronousPolicy {
  readonly quorum: number;
}

export interface HaPolicy {
  /**
   * The primary is dead only after its probes failed continuously for this
   * long AND nobody (our late answers, WAL progress, a replica's WAL receiver)
   * heard from it for this long. Also the freshness bound for a replica's
   * last message: the rendered configuration must make an idle primary speak
   * to its replicas at least this often (wal_receiver_timeout on replicas at
   * most twice this, or a heartbeat write), or an idle healthy primary cut off
   * from us only will look silent.
   */
  readonly failoverTimeoutMs: number;
  /** Also needed before the verdict, so one stall of the daemon between two probes is not read as an outage. */
  readonly minFailedProbes: number;
  /** Restart a crashed postmaster in place (host reachable, pid dead) before considering a promotion. */
  readonly restartFirst: boolean;
  /** How long a restart in place gets to answer SQL again before we fail over. */
  readonly restartTimeoutMs: number;
  /** A node restarted in place less than this long ago is not restarted again: the next crash fails over. */
  readonly restartWindowMs: number;
  /** A replica further than this behind the most advanced known position is not promoted. */
  readonly maximumLagOnFailoverBytes: number;
  readonly synchronous: SynchronousPolicy | null;
}

export const DEFAULT_HA_POLICY: HaPolicy = {
  failoverTimeoutMs: 5_000,
  minFailedProbes: 3,
  restartFirst: true,
  restartTimeoutMs: 15_000,
  restartWindowMs: 300_000,
  maximumLagOnFailoverBytes: 1024 * 1024,
  synchronous: null,
};

/** One immutable picture of the cluster, taken once per monitor cycle. */
export interface Snapshot {
  /** When the probes of this cycle completed, in ms (Date.now() in the daemon, anything monotonic in tests). */
  readonly at: number;
  /** The primary according to the persisted cluster state (not according to the nodes). */
  readonly primary: string;
  readonly policy: HaPolicy;
  /** Every configured node, exactly once. */
  readonly nodes: readonly NodeObservation[];
  /** Multi-host only (state in etcd): what the leases say; absent in the single-daemon mode. */
  readonly leases?: LeaseObservation;
}

/**
 * The primary lease, as the controller sees it. The primary's agent renews it
 * and fences its PostgreSQL before it can expire; cut off from etcd but able to
 * reach every other agent, it keeps serving (failsafe) and tells them so.
 */
export interface LeaseObservation {
  /** The node holding the group's primary lease, null when nobody does. */
  readonly primaryHolder: string | null;
  /** The lease's time to live. */
  readonly ttlMs: number;
  /** How long ago the cluster primary's agent last reached another agent directly while cut off from etcd; null when it did not. */
  readonly failsafeAgeMs: number | null;
}

/** Per node: the current run of unanswered probes. */
export interface NodeMemory {
  /** `at` of the first unanswered probe of the current run; null when the last probe answered. */
  readonly failingSince: number | null;
  /** Consecutive unanswered probes. */
  readonly failures: number;
  /** `at` of the last answer (in time or late); null when never seen answering. */
  readonly lastAnswerAt: number | null;
}

export interface RestartMemory {
  readonly node: string;
  /** When the restart in place was ordered. */
  readonly at: number;
  /** When the node answered SQL again after it; null while it has not. */
  readonly backAt: number | null;
}

/**
 * What `decide()` carries from one cycle to the next: the caller passes back
 * exactly what the previous call returned. It lives in the daemon's memory
 * only; starting from EMPTY_MEMORY (after a daemon restart) restarts every
 * clock, which delays a failover but never hastens one.
 */
export interface Memory {
  /** The primary the primary-specific fields below are about; they reset when it changes. */
  readonly primary: string | null;
  readonly nodes: Readonly<Record<string, NodeMemory>>;
  /**
   * The highest WAL position known to have been written by the primary (its
   * own walLsn, or what replicas streaming from it received), and when that
   * last increased (null: never seen increasing).
   */
  readonly wal: { readonly lsn: Lsn; readonly advancedAt: number | null } | null;
  /** The latest moment a replica streaming from the primary received a message from it. */
  readonly heard: { readonly by: string; readonly at: number } | null;
  /** The last restart in place ordered, whichever node it was. */
  readonly restart: RestartMemory | null;
}

export const EMPTY_MEMORY: Memory = { primary: null, nodes: {}, wal: null, heard: null, restart: null };
