/**
 * The state store: what a cluster knows about itself beyond its
 * configuration, kept per group of nodes (a primary and its replicas), plus
 * the cluster's event log. Two implementations behind one interface: a
 * directory on local disk (lab mode, one daemon) and etcd (several hosts,
 * one agent each). Callers never know which one they talk to.
 */

/** The only group a configuration has today; a later configuration may hold several, each with its own primary. */
export const DEFAULT_GROUP = 'main';

export interface PendingStep {
  readonly kind: 'failover' | 'switchover';
  readonly from: string;
  readonly to: string;
  readonly reason: string;
  readonly at: string;
  /** The target was elected (not named by the operator): it is confirmed, or replaced, on the positions seen once the old primary is fenced. */
  readonly elected?: boolean;
}

/** One group's state: which node is primary now (it changes on failover), the timeline, fenced nodes, a step in progress. */
export interface ClusterState {
  readonly version: 1;
  readonly cluster: string;
  /** The group this state is about; absent in files written before groups existed (read as DEFAULT_GROUP). */
  readonly group?: string;
  readonly primary: string;
  readonly timeline: number | null;
  readonly fenced: readonly string[];
  readonly updatedAt: string;
  /**
   * A promotion in progress: written before the first irreversible step and
   * cleared after the last, so a controller that restarts (or takes over) mid-way finishes it.
   */
  readonly pending?: PendingStep | null;
  /**
   * The endpoints hold new connections (no primary) until `until` (ISO time)
   * or until cleared: a switchover sets it while it stops the old primary
   * cleanly, before anything is irreversible. A stale hold expires by itself.
   */
  readonly hold?: { readonly reason: string; readonly until: string } | null;
}

export interface EventRecord {
  readonly at: string;
  readonly sentence: string;
  /** The host whose agent recorded it (multi-host only). */
  readonly host?: string;
}

/** Returns `s` with `change` applied and a fresh timestamp. */
export function nextState(s: ClusterState, change: Partial<Omit<ClusterState, 'version' | 'cluster' | 'updatedAt'>>): ClusterState {
  return { ...s, ...change, updatedAt: new Date().toISOString() };
}

/**
 * Guarantees, whatever the backend:
 * - `read` returns the last state written for the group (or null before the first).
 * - `write` is atomic (a reader sees the old state or the new one, never a mix)
 *   and revision-checked: it succeeds only if the stored state is still the
 *   one this store last read or wrote for that group (or there was none), else
 *   it throws `dcs.conflict` and changes nothing. So a read-then-write never
 *   overwrites a change made meanwhile by another process.
 * - `update` is the read-modify-write loop over that check: `change` may run
 *   more than once; returning null writes nothing.
 * - Events are appended in order and never rewritten; `events(n)` returns the last n, oldest first.
 */
export interface StateStore {
  readonly kind: 'file' | 'etcd';
  read(group?: string): Promise<ClusterState | null>;
  write(state: ClusterState): Promise<void>;
  update(group: string, change: (current: ClusterState | null) => ClusterState | null): Promise<ClusterState | null>;
  /**
   * The node holding the group's primary lease; null when nobody does. A
   * primary's agent holds it while it can renew it and fences its PostgreSQL
   * before it can expire, so nobody may be promoted while it is held. The
   * file store has no leases (one daemon, nobody to wait for): always null.
   */
  primaryHolder(group?: string): Promise<string | null>;
  /**
   * `at`: when it happened, for an event recorded late (an agent cut off from
   * the store keeps its events until it is back). `id`: the caller's number
   * for this event, the same on every retry, so that a request that timed out
   * after the store had recorded it does not record it twice.
   */
  appendEvent(sentence: string, at?: Date, id?: number): Promise<EventRecord>;
  events(last?: number): Promise<EventRecord[]>;
  /** Releases connections; the store is unusable afterwards. */
  close(): Promise<void>;
}

export function groupOf(s: ClusterState): string {
  return s.group ?? DEFAULT_GROUP;
}
