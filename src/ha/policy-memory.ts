import type { Lsn } from '../postgres/lsn.js';
import type { Memory, NodeMemory, NodeObservation, Snapshot } from './observations.js';

/**
 * The bookkeeping half of a cycle: folds one snapshot into the memory, before
 * any decision is taken. Pure; `decide()` then reads only the result.
 */

/** The SQL probe answered, in time or late: the node was alive when it did. */
export const answered = (n: NodeObservation): boolean => n.sqlOk || n.probeMs !== null;

/**
 * Replicas that report, right now, a WAL receiver streaming from the cluster's
 * primary with a known last-message age. Their word is taken only when they
 * answered in time themselves (otherwise it is stale).
 */
export function streamingFromPrimary(s: Snapshot): NodeObservation[] {
  return s.nodes.filter(
    (n) =>
      n.name !== s.primary &&
      n.sqlOk &&
      n.inRecovery === true &&
      n.upstreamStreaming === true &&
      (n.upstream === null || n.upstream === s.primary) &&
      n.lastMsgAgeMs !== null,
  );
}

const FRESH_NODE: NodeMemory = { failingSince: null, failures: 0, lastAnswerAt: null };

/**
 * Per node: extend or end the run of unanswered probes. For the primary: note
 * WAL progress (its own walLsn, or a higher position received by a replica
 * streaming from it) and the latest message a replica got from it. For a
 * pending restart in place: note when the node answered again. Facts about
 * "the primary" are dropped when the cluster's primary changed.
 */
export function remember(s: Snapshot, m: Memory): Memory {
  const nodes: Record<string, NodeMemory> = {};
  for (const n of s.nodes) {
    const prev = m.nodes[n.name] ?? FRESH_NODE;
    nodes[n.name] = answered(n)
      ? { failingSince: null, failures: 0, lastAnswerAt: s.at }
      : { failingSince: prev.failingSince ?? s.at, failures: prev.failures + 1, lastAnswerAt: prev.lastAnswerAt };
  }

  const same = m.primary === s.primary;
  const primary = s.nodes.find((n) => n.name === s.primary);
  const streams = streamingFromPrimary(s);

  let wal = same ? m.wal : null;
  const seen = [primary?.walLsn ?? null, ...streams.map((r) => r.receiveLsn)].reduce<Lsn | null>(
    (a, x) => (x === null ? a : a === null || x > a ? x : a),
    null,
  );
  if (seen !== null) {
    if (wal === null) wal = { lsn: seen, advancedAt: null }; // a first sight is not progress
    else if (seen > wal.lsn) wal = { lsn: seen, advancedAt: s.at };
  }

  let heard = same ? m.heard : null;
  for (const r of streams) {
    const at = s.at - Math.max(0, r.lastMsgAgeMs!);
    if (heard === null || at > heard.at) heard = { by: r.name, at };
  }

  let restart = m.restart;
  if (restart !== null && restart.backAt === null) {
    const n = s.nodes.find((x) => x.name === restart!.node);
    if (n && answered(n)) restart = { ...restart, backAt: s.at };
  }

  return { primary: s.primary, nodes, wal, heard, restart };
}

/**
 * The memory as another process can take it over: every moment as an age at
 * the time it was written. A controller that takes over reads the ages as of
 * its own now, so the time that passed between the two is never counted —
 * a failure seems to have begun later, a sign of life to be fresher, than
 * they were. That delays a failover a little and never hastens one, and it
 * needs no agreement between the hosts' clocks.
 */
export interface PortableMemory {
  readonly primary: string | null;
  readonly nodes: Readonly<Record<string, { readonly failingForMs: number | null; readonly failures: number; readonly lastAnswerAgoMs: number | null }>>;
  readonly wal: { readonly lsn: string; readonly advancedAgoMs: number | null } | null;
  readonly heard: { readonly by: string; readonly agoMs: number } | null;
  readonly restart: { readonly node: string; readonly agoMs: number; readonly backAgoMs: number | null } | null;
}

export function portableMemory(m: Memory, now: number): PortableMemory {
  const ago = (t: number | null) => (t === null ? null : Math.max(0, now - t));
  const nodes: Record<string, PortableMemory['nodes'][string]> = {};
  for (const [name, n] of Object.entries(m.nodes)) nodes[name] = { failingForMs: ago(n.failingSince), failures: n.failures, lastAnswerAgoMs: ago(n.lastAnswerAt) };
  return {
    primary: m.primary,
    nodes,
    wal: m.wal && { lsn: m.wal.lsn.toString(), advancedAgoMs: ago(m.wal.advancedAt) },
    heard: m.heard && { by: m.heard.by, agoMs: ago(m.heard.at)! },
    restart: m.restart && { node: m.restart.node, agoMs: ago(m.restart.at)!, backAgoMs: ago(m.restart.backAt) },
  };
}

export function adoptMemory(p: PortableMemory, now: number): Memory {
  const at = (ago: number | null) => (ago === null ? null : now - ago);
  const nodes: Record<string, NodeMemory> = {};
  for (const [name, n] of Object.entries(p.nodes)) nodes[name] = { failingSince: at(n.failingForMs), failures: n.failures, lastAnswerAt: at(n.lastAnswerAgoMs) };
  return {
    primary: p.primary,
    nodes,
    wal: p.wal && { lsn: BigInt(p.wal.lsn), advancedAt: at(p.wal.advancedAgoMs) },
    heard: p.heard && { by: p.heard.by, at: now - p.heard.agoMs },
    restart: p.restart && { node: p.restart.node, at: now - p.restart.agoMs, backAt: at(p.restart.backAgoMs) },
  };
}

/** Whether the memory holds anything a controller taking over needs: a failure under way or a restart awaited. */
export function worthHandingOver(m: Memory): boolean {
  return Object.values(m.nodes).some((n) => n.failingSince !== null) || (m.restart !== null && m.restart.backAt === null);
}
