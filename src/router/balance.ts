import type { ClusterState } from '../cluster/state.js';
import type { ClusterConfig } from '../config/types.js';

/**
 * Pure decisions of the endpoints over plain data: which node is the primary
 * the endpoints forward writes to, which replicas may take reads, and which
 * one a new read connection goes to. No I/O; unit-tested exhaustively.
 */

/** What an endpoint process last saw of one node (its own probe). */
export interface NodeView {
  readonly name: string;
  readonly reachable: boolean;
  /** pg_is_in_recovery(); null when unreachable. */
  readonly inRecovery: boolean | null;
  /** Primary: pg_current_wal_lsn(). */
  readonly currentLsn: bigint | null;
  /** Replica: pg_last_wal_replay_lsn(), pg_last_wal_receive_lsn(). */
  readonly replayLsn: bigint | null;
  readonly receiveLsn: bigint | null;
  /** Replica: seconds since the last replayed transaction while WAL waits to be replayed, else 0. */
  readonly replayDelaySeconds: number | null;
}

export interface LagPolicy {
  readonly maxLagBytes: number;
  readonly maxLagSeconds: number;
}

export type Eligibility = { readonly eligible: true } | { readonly eligible: false; readonly reason: string; readonly fenced: boolean };

type Nodes = Pick<ClusterConfig, 'nodes' | 'initialPrimary'>;

function recordedPrimary(cfg: Nodes, st: ClusterState | null): string {
  return st && cfg.nodes.some((n) => n.name === st.primary) ? st.primary : cfg.initialPrimary;
}

/** Why the endpoints have no primary now, for the log; null when they have one. */
export function noPrimaryReason(cfg: Nodes, st: ClusterState | null, now = Date.now()): string | null {
  if (st?.pending) return `a ${st.pending.kind} from ${st.pending.from} to ${st.pending.to} is in progress`;
  if (st?.hold && Date.parse(st.hold.until) > now) return st.hold.reason;
  const primary = recordedPrimary(cfg, st);
  if (st?.fenced.includes(primary)) return `the primary ${primary} is fenced`;
  return null;
}

/**
 * The primary the endpoints forward to: the recorded primary, or null while a
 * promotion is pending, a switchover holds connections, or the primary is
 * fenced (new connections then wait).
 */
export function primaryFromState(cfg: Nodes, st: ClusterState | null, now = Date.now()): string | null {
  return noPrimaryReason(cfg, st, now) === null ? recordedPrimary(cfg, st) : null;
}

/**
 * The newest WAL position known: the primary's current one, else (primary
 * unreachable, during a failover) the most advanced replica's, so replicas
 * keep taking reads while there is no primary to compare with.
 */
export function referenceLsn(views: readonly NodeView[], primary: string | null): bigint | null {
  const p = views.find((v) => v.name === primary);
  if (p?.reachable && p.inRecovery === false && p.currentLsn !== null) return p.currentLsn;
  let best: bigint | null = null;
  for (const v of views) {
    if (!v.reachable || v.inRecovery !== true) continue;
    for (const l of [v.receiveLsn, v.replayLsn]) if (l !== null && (best === null || l > best)) best = l;
  }
  return best;
}

/** Whether `v` may take new reads, and if not, why (one clause for the log). */
export function replicaEligibility(v: NodeView, ctx: { readonly primary: string | null; readonly fenced: readonly string[]; readonly reference: bigint | null }, policy: LagPolicy): Eligibility {
  if (ctx.fenced.includes(v.name)) return { eligible: false, reason: 'fenced', fenced: true };
  if (v.name === ctx.primary) return { eligible: false, reason: 'it is the primary', fenced: false };
  if (!v.reachable) return { eligible: false, reason: 'unreachable', fenced: false };
  if (v.inRecovery !== true) return { eligible: false, reason: 'not in recovery (promoted?)', fenced: false };
  if (v.replayLsn === null) return { eligible: false, reason: 'has replayed nothing yet', fenced: false };
  if (ctx.reference !== null && ctx.reference > v.replayLsn && ctx.reference - v.replayLsn > BigInt(policy.maxLagBytes)) {
    return { eligible: false, reason: `${ctx.reference - v.replayLsn} bytes behind (max_lag ${policy.maxLagBytes})`, fenced: false };
  }
  if (v.replayDelaySeconds !== null && v.replayDelaySeconds > policy.maxLagSeconds) {
    return { eligible: false, reason: `replay ${v.replayDelaySeconds.toFixed(1)} s behind (max_lag_seconds ${policy.maxLagSeconds})`, fenced: false };
  }
  return { eligible: true };
}

/** Every configured node but the primary, with its eligibility. */
export function eligibleReplicas(
  views: readonly NodeView[],
  primary: string | null,
  fenced: readonly string[],
  policy: LagPolicy,
): Map<string, Eligibility> {
  const reference = referenceLsn(views, primary);
  const out = new Map<string, Eligibility>();
  for (const v of views) if (v.name !== primary) out.set(v.name, replicaEligibility(v, { primary, fenced, reference }, policy));
  return out;
}

/**
 * Least connections: the candidate with the fewest connections; ties are
 * broken by `turn` (a counter the caller increments), so connections that
 * open and close one by one still alternate.
 */
export function leastConnections(candidates: readonly string[], connections: (name: string) => number, turn: number): string | null {
  if (candidates.length === 0) return null;
  let min = Infinity;
  let tied: string[] = [];
  for (const c of candidates) {
    const n = connections(c);
    if (n < min) {
      min = n;
      tied = [c];
    } else if (n === min) tied.push(c);
  }
  return tied[turn % tied.length];
}

export type RoChoice = { readonly kind: 'replica'; readonly node: string } | { readonly kind: 'primary'; readonly node: string } | { readonly kind: 'hold' } | { readonly kind: 'refuse' };

/**
 * Where the ro endpoint sends a new connection: an eligible replica by least
 * connections; with none, the primary (`fallback: primary`) or a refusal;
 * with no primary either (a failover), the connection waits.
 */
export function chooseRo(eligible: readonly string[], primary: string | null, fallback: 'primary' | 'refuse', connections: (name: string) => number, turn: number): RoChoice {
  const r = leastConnections(eligible, connections, turn);
  if (r) return { kind: 'replica', node: r };
  if (fallback === 'refuse') return { kind: 'refuse' };
  return primary ? { kind: 'primary', node: primary } : { kind: 'hold' };
}

/**
 * Read-your-writes: the replica for a read by a client whose last commit is
 * at `mustHave` (null: none yet): an eligible replica whose replay LSN has
 * reached it, by least connections; null means the primary.
 */
export function chooseReadReplica(
  eligible: readonly string[],
  replayLsn: (name: string) => bigint | null,
  mustHave: bigint | null,
  connections: (name: string) => number,
  turn: number,
): string | null {
  const caughtUp = mustHave === null ? eligible : eligible.filter((n) => {
    const r = replayLsn(n);
    return r !== null && r >= mustHave;
  });
  return leastConnections(caughtUp, connections, turn);
}
