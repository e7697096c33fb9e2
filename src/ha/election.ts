import { formatLsn, lsnDiff } from '../postgres/lsn.js';
import type { Lsn } from '../postgres/lsn.js';
import type { HaPolicy, NodeObservation } from './observations.js';
import { bytes, listing } from './policy-format.js';

/**
 * Who may become primary, and why the others may not. Pure: observations in,
 * a winner and a reason out. Used by the automatic policy and by the operator
 * commands (switchover, failover), so both refuse for the same reasons.
 */

export type RejectReason = 'fenced' | 'nofailover' | 'down' | 'not_replica' | 'no_position' | 'lagging' | 'behind_quorum';

export interface Rejection {
  readonly node: string;
  readonly reason: RejectReason;
  /** A predicate that reads after the node's name: "is unreachable", "lags 2.0 MB behind 0/3000060 (maximum 1.0 MB)". */
  readonly why: string;
}

export interface Election {
  /** null when nobody may be promoted; `reason` then says why. */
  readonly winner: NodeObservation | null;
  /** "node2 most advanced at 0/3000060", or "no candidate: node2 is unreachable, node3 is tagged nofailover". */
  readonly reason: string;
  /** Every replica that was not chosen for a reason other than losing the ranking, by name. */
  readonly rejected: readonly Rejection[];
  /** The most advanced known position, that lag is measured from; null when nothing is known. */
  readonly reference: Lsn | null;
  /** Synchronous mode: too few replicas answer to know who holds every acknowledged commit. */
  readonly unsafe: boolean;
}

interface Assessment {
  readonly reference: Lsn | null;
  /** Synchronous mode only: why no promotion at all is safe; null when one may be. */
  readonly unsafe: string | null;
  readonly eligible: readonly NodeObservation[];
  readonly rejected: readonly Rejection[];
}

const byName = (a: NodeObservation, b: NodeObservation) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
const maxLsn = (xs: readonly (Lsn | null)[]): Lsn | null =>
  xs.reduce<Lsn | null>((m, x) => (x === null ? m : m === null || x > m ? x : m), null);

/** A replica whose position we know right now: it answered in time and is in recovery. */
const positioned = (n: NodeObservation): boolean => n.sqlOk && n.inRecovery === true && n.receiveLsn !== null;

function downWhy(n: NodeObservation): string {
  if (!n.hostReachable) return 'is unreachable';
  if (n.postmasterAlive === false) return 'is down (postmaster not running)';
  return 'is not answering';
}

/**
 * Synchronous quorum safety. With `ANY N` over R replicas a commit is
 * acknowledged once N replicas flushed it (receiveLsn is the flushed
 * position). If O replicas are observed and U = R - O are not, an acknowledged
 * commit is on at least N - U observed ones; so when O >= R - N + 1 (N - U >= 1)
 * every acknowledged commit is at or below the (N - U)-th highest observed
 * position, and a candidate at or above it holds them all. With fewer
 * observed, an unobserved replica may hold commits nobody else has: unsafe.
 * R counts every non-primary node that is not fenced (a fenced old primary
 * never streamed from the current one); nofailover replicas count in R and
 * in O, since they acknowledge commits too.
 */
function quorumFloor(others: readonly NodeObservation[], quorum: number): { floor: Lsn | null; unsafe: string | null } {
  const members = others.filter((n) => !n.fenced);
  const observed = members.filter(positioned);
  const R = members.length;
  const O = observed.length;
  const need = Math.max(1, R - quorum + 1);
  if (O < need) {
    const seen = O === 0 ? 'none does' : `only ${listing(observed.map((n) => n.name))} ${O === 1 ? 'does' : 'do'}`;
    return {
      floor: null,
      unsafe: `promotion unsafe: quorum ${quorum} over ${R} replica${R === 1 ? '' : 's'} needs ${need} of them answering to be sure one holds every acknowledged commit, and ${seen}`,
    };
  }
  let k = quorum - (R - O);
  if (k < 1 || k > O) k = 1; // k > O only when quorum > R: be strictest
  const sorted = observed.map((n) => n.receiveLsn as Lsn).sort((a, b) => (a > b ? -1 : a < b ? 1 : 0));
  return { floor: sorted[k - 1], unsafe: null };
}

function assess(nodes: readonly NodeObservation[], policy: HaPolicy, primaryName: string, lastPrimaryLsn: Lsn | null): Assessment {
  const others = nodes.filter((n) => n.name !== primaryName).sort(byName);
  const primary = nodes.find((n) => n.name === primaryName);
  const reference = maxLsn([lastPrimaryLsn, primary?.walLsn ?? null, ...others.filter(positioned).map((n) => n.receiveLsn)]);
  const { floor, unsafe } = policy.synchronous ? quorumFloor(others, policy.synchronous.quorum) : { floor: null, unsafe: null };
  const maxLag = BigInt(policy.maximumLagOnFailoverBytes);

  const eligible: NodeObservation[] = [];
  const rejected: Rejection[] = [];
  const reject = (n: NodeObservation, reason: RejectReason, why: string) => rejected.push({ node: n.name, reason, why });
  for (const n of others) {
    if (n.fenced) reject(n, 'fenced', 'is fenced');
    else if (n.nofailover) reject(n, 'nofailover', 'is tagged nofailover');
    else if (!n.sqlOk) reject(n, 'down', downWhy(n));
    else if (n.inRecovery !== true) reject(n, 'not_replica', n.inRecovery === false ? 'is not in recovery' : 'has an unknown recovery state');
    else if (n.receiveLsn === null) reject(n, 'no_position', 'has received no WAL');
    else if (reference !== null && lsnDiff(reference, n.receiveLsn) > maxLag)
      reject(n, 'lagging', `lags ${bytes(lsnDiff(reference, n.receiveLsn))} behind ${formatLsn(reference)} (maximum ${bytes(maxLag)})`);
    else if (floor !== null && n.receiveLsn < floor)
      reject(n, 'behind_quorum', `is at ${formatLsn(n.receiveLsn)} and may miss commits acknowledged up to ${formatLsn(floor)}`);
    else eligible.push(n);
  }
  return { reference, unsafe, eligible, rejected };
}

const rejections = (rs: readonly Rejection[]): string => rs.map((r) => `${r.node} ${r.why}`).join(', ');

/** How the winner beat replicas at the same position, if any. */
function tieBreak(w: NodeObservation, eligible: readonly NodeObservation[]): string {
  const tied = eligible.filter((n) => n !== w && n.receiveLsn === w.receiveLsn);
  const samePriority = tied.filter((n) => n.priority === w.priority);
  if (samePriority.length > 0) return ` (tied with ${listing(samePriority.map((n) => n.name))} in position and priority, first by name)`;
  if (tied.length > 0) return ` (priority ${w.priority} over ${listing(tied.map((n) => n.name))})`;
  return '';
}

/**
 * Elects the replica to promote. Candidates answer SQL in time, are in
 * recovery, are neither nofailover nor fenced, are within
 * maximumLagOnFailoverBytes of the most advanced known position (the highest
 * of `lastPrimaryLsn`, the primary's walLsn if seen, and every reachable
 * replica's receiveLsn), and in synchronous mode hold every acknowledged
 * commit. The most advanced receiveLsn wins, then the higher priority, then
 * the first name, so the result is deterministic.
 */
export function electCandidate(
  nodes: readonly NodeObservation[],
  policy: HaPolicy,
  primaryName: string,
  lastPrimaryLsn: Lsn | null = null,
): Election {
  const a = assess(nodes, policy, primaryName, lastPrimaryLsn);
  const base = { rejected: a.rejected, reference: a.reference };
  if (a.unsafe !== null) return { ...base, winner: null, reason: a.unsafe, unsafe: true };
  if (a.eligible.length === 0) {
    const reason = a.rejected.length === 0 ? 'no candidate: there is no replica' : `no candidate: ${rejections(a.rejected)}`;
    return { ...base, winner: null, reason, unsafe: false };
  }
  const ranked = [...a.eligible].sort(
    (x, y) => (x.receiveLsn! > y.receiveLsn! ? -1 : x.receiveLsn! < y.receiveLsn! ? 1 : y.priority - x.priority || byName(x, y)),
  );
  const w = ranked[0];
  const best = maxLsn(nodes.filter((n) => n.name !== primaryName && positioned(n)).map((n) => n.receiveLsn));
  const most = best !== null && w.receiveLsn! < best ? 'most advanced eligible' : 'most advanced';
  return { ...base, winner: w, reason: `${w.name} ${most} at ${formatLsn(w.receiveLsn!)}${tieBreak(w, a.eligible)}`, unsafe: false };
}

/**
 * The check made once the old primary is fenced, right before promoting:
 * the election ran on positions seen before the fence, while the old
 * primary might still have been sending WAL (and, in synchronous mode,
 * having commits acknowledged by one replica only). With the old primary
 * stopped the positions are final, so the election runs again on them: the
 * chosen replica stays unless another now holds more (a tie keeps it); in
 * synchronous mode nobody is promoted while too few replicas answer to know
 * who holds every acknowledged commit. Pure.
 */
export function confirmCandidate(nodes: readonly NodeObservation[], policy: HaPolicy, primaryName: string, chosen: string): { readonly to: string | null; readonly sentence: string | null } {
  const e = electCandidate(nodes, policy, primaryName, null);
  if (e.unsafe) return { to: null, sentence: e.reason };
  const c = nodes.find((n) => n.name === chosen);
  const chosenOk = !!c && positioned(c) && !e.rejected.some((r) => r.node === chosen);
  if (!e.winner) return chosenOk ? { to: chosen, sentence: null } : { to: null, sentence: e.reason };
  if (e.winner.name === chosen || (chosenOk && c!.receiveLsn! >= e.winner.receiveLsn!)) return { to: chosen, sentence: null };
  const was = c && c.receiveLsn !== null ? ` (${chosen} is at ${formatLsn(c.receiveLsn)})` : chosenOk ? '' : ` (${chosen} ${e.rejected.find((r) => r.node === chosen)?.why ?? 'does not answer'})`;
  return { to: e.winner.name, sentence: `promoting ${e.winner.name} instead of ${chosen}: once the old primary was fenced, ${e.reason}${was}` };
}

// ---- operator commands -------------------------------------------------------

export type Refusal = 'unknown' | 'primary' | 'primary_down' | 'not_streaming' | 'no_candidate' | 'unsafe' | RejectReason;

/** The answer to "may the operator do this?": a go with what was checked, or a refusal sentence and a hint. */
export type OperatorCheck =
  | { readonly ok: true; readonly target: NodeObservation; readonly sentence: string }
  | { readonly ok: false; readonly refusal: Refusal; readonly sentence: string; readonly hint: string };

function hintFor(r: Rejection, best: string | null): string {
  switch (r.reason) {
    case 'fenced': return `rejoin it first: pgmaestro rejoin ${r.node}`;
    case 'nofailover': return `remove tags.nofailover from ${r.node} in the configuration, or choose another node`;
    case 'down': return `start ${r.node} or choose another node (see pgmaestro status)`;
    case 'not_replica': return 'only a replica can take over; see pgmaestro status';
    case 'no_position': return `wait until ${r.node} has received WAL from the primary`;
    case 'lagging': return `wait until ${r.node} catches up, or raise maximum_lag_on_failover`;
    case 'behind_quorum': return best ? `choose ${best}, which holds every acknowledged commit` : 'choose the most advanced replica';
  }
}

const BRING_BACK = 'bring the unreachable replicas back so that no acknowledged commit can be lost';

/** Unknown or current-primary targets, refused the same way by both commands. */
function refuseName(nodes: readonly NodeObservation[], primaryName: string, target: string, verb: string): OperatorCheck | null {
  const replicas = nodes.filter((n) => n.name !== primaryName).map((n) => n.name).sort();
  const choose = replicas.length > 0 ? `choose one of ${listing(replicas)}` : 'add a replica first';
  if (!nodes.some((n) => n.name === target))
    return { ok: false, refusal: 'unknown', sentence: `cannot ${verb} to ${target}: no node is named ${target}`, hint: choose };
  if (target === primaryName)
    return { ok: false, refusal: 'primary', sentence: `cannot ${verb} to ${target}: it is already the primary`, hint: choose };
  return null;
}

function refuseRejected(a: Assessment, target: string, verb: string, best: string | null): OperatorCheck | null {
  const r = a.rejected.find((x) => x.node === target);
  if (!r) return null;
  return { ok: false, refusal: r.reason, sentence: `cannot ${verb} to ${target}: it ${r.why}`, hint: hintFor(r, best) };
}

/**
 * A planned switchover hands over cleanly: the primary must answer, and the
 * target must be an eligible replica streaming from it (it will replay
 * everything before promotion, so synchronous mode adds no condition).
 */
export function checkSwitchoverTarget(
  nodes: readonly NodeObservation[],
  policy: HaPolicy,
  primaryName: string,
  target: string,
): OperatorCheck {
  const named = refuseName(nodes, primaryName, target, 'switch over');
  if (named) return named;
  const primary = nodes.find((n) => n.name === primaryName);
  if (!primary?.sqlOk)
    return {
      ok: false,
      refusal: 'primary_down',
      sentence: `cannot switch over to ${target}: the primary ${primaryName} is not answering, so it cannot hand over cleanly`,
      hint: `use pgmaestro failover --to ${target}`,
    };
  const a = assess(nodes, { ...policy, synchronous: null }, primaryName, null);
  const refused = refuseRejected(a, target, 'switch over', null);
  if (refused) return refused;
  const t = nodes.find((n) => n.name === target)!;
  if (t.upstreamStreaming !== true)
    return {
      ok: false,
      refusal: 'not_streaming',
      sentence: `cannot switch over to ${target}: it is not streaming from ${primaryName}, so it cannot catch up`,
      hint: `check ${target}'s WAL receiver (pgmaestro status) and retry once it streams`,
    };
  const lag = a.reference !== null ? lsnDiff(a.reference, t.receiveLsn!) : 0n;
  return { ok: true, target: t, sentence: `switchover to ${target} possible: it streams from ${primaryName}, ${lag > 0n ? `${bytes(lag)} behind` : 'caught up'}` };
}

/**
 * A forced failover, with a named target or not. Without one, the election
 * chooses; with one, the target must pass every check the election applies
 * (lag, nofailover, synchronous safety): forcing never loses acknowledged data.
 */
export function checkManualFailover(
  nodes: readonly NodeObservation[],
  policy: HaPolicy,
  primaryName: string,
  target: string | null,
  lastPrimaryLsn: Lsn | null = null,
): OperatorCheck {
  const e = electCandidate(nodes, policy, primaryName, lastPrimaryLsn);
  if (target === null) {
    if (e.winner) return { ok: true, target: e.winner, sentence: `failover to ${e.winner.name} possible: ${e.reason}` };
    return e.unsafe
      ? { ok: false, refusal: 'unsafe', sentence: `cannot fail over: ${e.reason}`, hint: BRING_BACK }
      : { ok: false, refusal: 'no_candidate', sentence: `cannot fail over: ${e.reason}`, hint: 'start a replica, or remove tags.nofailover from one (see pgmaestro status)' };
  }
  const named = refuseName(nodes, primaryName, target, 'fail over');
  if (named) return named;
  const a = assess(nodes, policy, primaryName, lastPrimaryLsn);
  const refused = refuseRejected(a, target, 'fail over', e.winner?.name ?? null);
  if (refused) return refused;
  if (a.unsafe !== null)
    return { ok: false, refusal: 'unsafe', sentence: `cannot fail over to ${target}: ${a.unsafe}`, hint: BRING_BACK };
  const t = nodes.find((n) => n.name === target)!;
  const lag = a.reference !== null ? lsnDiff(a.reference, t.receiveLsn!) : 0n;
  return { ok: true, target: t, sentence: `failover to ${target} possible: it is at ${formatLsn(t.receiveLsn!)}${lag > 0n ? `, ${bytes(lag)} behind` : ', the most advanced known position'}` };
}
