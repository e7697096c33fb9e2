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
