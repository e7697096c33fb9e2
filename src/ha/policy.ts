import { formatLsn } from '../postgres/lsn.js';
import { electCandidate } from './election.js';
import type { Memory, NodeObservation, RestartMemory, Snapshot } from './observations.js';
import { listing, millis, seconds, symptom } from './policy-format.js';
import { remember, streamingFromPrimary } from './policy-memory.js';

/**
 * The automatic failover decision: one pure function of one snapshot and the
 * memory of previous cycles. The daemon performs the action, logs the
 * sentence, and passes the returned memory to the next call.
 */

export type Action =
  /** The primary is judged alive (healthy, slow, or heard by a replica): nothing to do. */
  | { readonly kind: 'none' }
  /** Something is wrong but it is not time to act, or acting is impossible (the sentence says which). */
  | { readonly kind: 'wait'; readonly node: string }
  /** Start the node's postmaster again in place (pg_ctl start): it crashed on a host that answers. */
  | { readonly kind: 'restart'; readonly node: string }
  /** Fence `from` (stop it if reachable, take it out of the endpoint), then promote `to`. */
  | { readonly kind: 'failover'; readonly from: string; readonly to: string; readonly reason: string }
  /** `node` runs as a primary but is not the cluster's primary: stop it if reachable, keep it out of the endpoint. */
  | { readonly kind: 'fence'; readonly node: string };

export interface Decision {
  readonly action: Action;
  /** One sentence: what was seen and what was done, e.g. "promoted node2: node1 unreachable for 6.0 s, node2 most advanced at 0/3000060". */
  readonly sentence: string;
  /** Pass it to the next call. */
  readonly memory: Memory;
}

/**
 * Decides one monitor cycle. Rules, in order:
 * 1. Another node running as a primary is fenced first: split brain outranks everything.
 * 2. A fenced cluster primary means a failover was interrupted after fencing: finish it.
 * 3. A primary that answers, even late, is alive (a late answer says whether WAL moved).
 * 4. A silent primary that a replica still streams from (last message fresher than
 *    failoverTimeoutMs) is alive: it is our path to it that is broken.
 * 5. A crashed postmaster on a reachable host is restarted in place when restartFirst
 *    is on and it was not restarted within restartWindowMs; a restart gets
 *    restartTimeoutMs to answer again before anything else happens.
 * 6. The primary is dead once its probes failed continuously for failoverTimeoutMs, at
 *    least minFailedProbes times, and neither WAL progress nor a replica heard from it
 *    within failoverTimeoutMs. Then the elected replica is promoted; with no eligible or
 *    no safe candidate nobody is, and a crashed postmaster is restarted in place instead
 *    (whatever restartFirst says) since that is the only way back.
 */
export function decide(snapshot: Snapshot, memory: Memory): Decision {
  const m = remember(snapshot, memory);
  const s = snapshot;
  const p = s.nodes.find((n) => n.name === s.primary);
  if (!p) return { action: { kind: 'wait', node: s.primary }, sentence: `no decision: ${s.primary}, the cluster's primary, is missing from the observations`, memory: m };

  const rogue = s.nodes.filter((n) => n.name !== s.primary && n.inRecovery === false).sort((a, b) => (a.name < b.name ? -1 : 1))[0];
  if (rogue) return { action: { kind: 'fence', node: rogue.name }, sentence: fenceSentence(rogue, p), memory: m };

  if (p.fenced) return promoteOrHold(s, m, p, `${p.name} is fenced`);
  if (p.sqlOk) return healthy(s, m, p);
  if (p.probeMs !== null) return slow(s, m, p);
  return silent(s, m, p);
}

function fenceSentence(rogue: NodeObservation, p: NodeObservation): string {
  const tl = (n: NodeObservation) => (n.timeline !== null ? ` on timeline ${n.timeline}` : '');
  return rogue.fenced
    ? `fenced ${rogue.name} again: it runs as a primary${tl(rogue)} although held fenced until rejoined; ${p.name} is the cluster's primary${tl(p)}`
    : `fenced ${rogue.name}: it runs as a primary${tl(rogue)}, but ${p.name} is the cluster's primary${tl(p)}`;
}

function healthy(s: Snapshot, m: Memory, p: NodeObservation): Decision {
  if (p.inRecovery === true)
    return { action: { kind: 'wait', node: p.name }, sentence: `no writable primary: ${p.name}, the cluster's primary, answers but is in recovery`, memory: m };
  const replicas = s.nodes.filter((n) => n.name !== p.name && !n.fenced).map((n) => n.name).sort();
  const streaming = new Set(streamingFromPrimary(s).map((n) => n.name));
  const on = replicas.filter((n) => streaming.has(n));
  const off = replicas.filter((n) => !streaming.has(n));
  const parts = [`${p.name} answered${p.probeMs !== null ? ` in ${millis(p.probeMs)}` : ''}${p.walLsn !== null ? ` at ${formatLsn(p.walLsn)}` : ''}`];
  if (on.length > 0) parts.push(`${listing(on)} streaming`);
  if (off.length > 0) parts.push(`${listing(off)} not streaming`);
  if (replicas.length === 0) parts.push('no replica');
  return { action: { kind: 'none' }, sentence: `${off.length === 0 ? 'all well' : 'primary alive'}: ${parts.join(', ')}`, memory: m };
}

function slow(s: Snapshot, m: Memory, p: NodeObservation): Decision {
  const T = s.policy.failoverTimeoutMs;
  const advanced = m.wal?.advancedAt ?? null;
  const why = advanced !== null && s.at - advanced < T ? ` but WAL advanced ${seconds(s.at - advanced)} ago` : ', so it is alive';
  return { action: { kind: 'none' }, sentence: `no failover: ${p.name} answered slowly (${seconds(p.probeMs!)})${why}`, memory: m };
}

function silent(s: Snapshot, m: Memory, p: NodeObservation): Decision {
  const { policy, at } = s;
  const T = policy.failoverTimeoutMs;
  const wait = (sentence: string): Decision => ({ action: { kind: 'wait', node: p.name }, sentence, memory: m });

  // A replica still hears it: our path to it is what is broken.
  const fresh = streamingFromPrimary(s)
    .filter((r) => r.lastMsgAgeMs! < T)
    .sort((a, b) => a.lastMsgAgeMs! - b.lastMsgAgeMs! || (a.name < b.name ? -1 : 1))[0];
  if (fresh) {
    const us = p.hostReachable ? 'not answering us' : 'unreachable for us';
    return {
      action: { kind: 'none' },
      sentence: `no failover: ${p.name} ${us}, but ${fresh.name} still streams from it (last message ${seconds(fresh.lastMsgAgeMs!)} ago)`,
      memory: m,
    };
  }

  // Restart in place: pending, or due.
  const r = m.restart?.node === p.name ? m.restart : null;
  if (r && r.backAt === null && at - r.at < policy.restartTimeoutMs)
    return wait(`no failover: restarted ${p.name} in place ${seconds(at - r.at)} ago, waiting up to ${seconds(policy.restartTimeoutMs)} for it to answer`);
  if (policy.restartFirst && crashed(p) && (r === null || at - r.at >= policy.restartWindowMs))
    return restart(s, m, p, 'its postmaster was down while its host answered');

  // Dead yet?
  const nm = m.nodes[p.name];
  const failingFor = at - nm.failingSince!;
  const what = `${p.name} ${symptom(p)} for ${seconds(failingFor)}`;
  const history = restartHistory(s, r, nm.failingSince!);
  if (failingFor < T) return wait(`no failover: ${what} of ${seconds(T)}${history}`);
  const signs = [
    { at: m.wal?.advancedAt ?? null, text: (ago: number) => `WAL advanced ${seconds(ago)} ago` },
    { at: m.heard?.at ?? null, text: (ago: number) => `${m.heard?.by} heard from it ${seconds(ago)} ago` },
  ].filter((x) => x.at !== null && at - x.at < T);
  signs.sort((a, b) => b.at! - a.at!);
  if (signs.length > 0) return { action: { kind: 'none' }, sentence: `no failover: ${what}, but ${signs[0].text(at - signs[0].at!)}`, memory: m };
  if (nm.failures < policy.minFailedProbes)
    return wait(`no failover: ${what}, but only ${nm.failures} of ${policy.minFailedProbes} probes failed`);

  return promoteOrHold(s, m, p, `${what}${history}`);
}

/**
 * Multi-host: a primary whose agent we cannot ask (its host is not
 * inspectable) may still be serving clients on its side of a partition. Its
 * lease says until when: nobody is promoted while it is held, nor while its
 * agent still reaches the other agents directly (failsafe). A reachable agent
 * is told to fence and releases the lease itself, so it is no reason to wait.
 */
function leaseHold(s: Snapshot, p: NodeObservation, reason: string): string | null {
  const l = s.leases;
  if (!l) return null;
  if (l.failsafeAgeMs !== null && l.failsafeAgeMs < l.ttlMs)
    return `no failover: ${reason}, but its agent reached every other agent ${seconds(l.failsafeAgeMs)} ago while cut off from etcd (failsafe)`;
  if (l.primaryHolder === p.name && p.postmasterAlive === null)
    return `no failover: ${reason}, but it still holds its primary lease; its agent fences it before the lease can expire`;
  if (l.primaryHolder !== null && l.primaryHolder !== p.name)
    return `no failover: ${reason}, but ${l.primaryHolder} holds the primary lease`;
  return null;
}

/** A postmaster known dead on a host that answers: restarting in place is possible. */
const crashed = (p: NodeObservation): boolean => p.hostReachable && p.postmasterAlive === false;

/** What the last restart in place (within the window) tells about this outage, as a parenthesis. */
function restartHistory(s: Snapshot, r: RestartMemory | null, failingSince: number): string {
  if (r === null || s.at - r.at >= s.policy.restartWindowMs) return '';
  if (r.backAt === null) return ` (its restart ${seconds(s.at - r.at)} ago did not bring it back)`;
  if (failingSince >= r.backAt) return ` (failed again ${seconds(failingSince - r.at)} after its restart)`;
  return '';
}

function restart(s: Snapshot, m: Memory, p: NodeObservation, why: string): Decision {
  return {
    action: { kind: 'restart', node: p.name },
    sentence: `restarted ${p.name} in place: ${why}`,
    memory: { ...m, restart: { node: p.name, at: s.at, backAt: null } },
  };
}

/** The primary is gone (`reason`): promote the elected replica, or say why nobody can take over. */
function promoteOrHold(s: Snapshot, m: Memory, p: NodeObservation, reason: string): Decision {
  const held = leaseHold(s, p, reason);
  if (held) return { action: { kind: 'wait', node: p.name }, sentence: held, memory: m };
  const e = electCandidate(s.nodes, s.policy, p.name, m.wal?.lsn ?? null);
  if (e.winner)
    return {
      action: { kind: 'failover', from: p.name, to: e.winner.name, reason },
      sentence: `promoted ${e.winner.name}: ${reason}, ${e.reason}`,
      memory: m,
    };
  // Nobody can take over: restarting in place is the only way back, whatever restartFirst
  // says. A pending restart never gets here (silent() waits for it), so this retries at
  // most once per restartTimeoutMs, or once per outage after the node came back.
  if (!p.fenced && crashed(p)) return restart(s, m, p, `its postmaster was down and no replica can take over (${e.reason})`);
  return { action: { kind: 'wait', node: p.name }, sentence: `no failover: ${reason}, but ${e.reason}`, memory: m };
}
