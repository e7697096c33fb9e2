import { chooseReadReplica } from './balance.js';
import type { Classification, RouteSetting } from './classify.js';

/**
 * Where the auto endpoint sends a unit of work (a transaction, or a
 * statement outside one) that starts a new server assignment. Pure.
 */
export interface RouteInput {
  readonly cls: Classification;
  /** A function the text calls is volatile, or unknown to the catalog. */
  readonly volatile: boolean;
  /** The session's `SET pgmaestro.route`. */
  readonly setting: RouteSetting;
  /** The unit follows a deferred plain BEGIN (it runs inside that transaction). */
  readonly inDeferredBegin: boolean;
  /** Replicas that may take reads now (eligibility), in configuration order. */
  readonly replicas: readonly string[];
  readonly replayLsn: (node: string) => bigint | null;
  /** The client's last commit on the primary (read-your-writes); null before any. */
  readonly lastCommit: bigint | null;
  readonly connections: (node: string) => number;
  readonly turn: number;
}

export type Route = { readonly target: 'primary'; readonly reason: string } | { readonly target: 'replica'; readonly node: string; readonly reason: string };

export function routeUnit(i: RouteInput): Route {
  const primary = (reason: string): Route => ({ target: 'primary', reason });
  const anyReplica = (reason: string): Route => {
    const node = chooseReadReplica(i.replicas, i.replayLsn, null, i.connections, i.turn);
    return node ? { target: 'replica', node, reason } : primary(`${reason}, but no replica is eligible`);
  };
  const read = (reason: string): Route => {
    if (i.volatile) return primary(`${reason} calling a volatile function`);
    const node = chooseReadReplica(i.replicas, i.replayLsn, i.lastCommit, i.connections, i.turn);
    if (node) return { target: 'replica', node, reason };
    if (i.replicas.length === 0) return primary(`${reason}, but no replica is eligible`);
    return primary(`${reason}, but no eligible replica has replayed the session's last commit yet`);
  };

  const { cls } = i;
  if (cls.hint === 'primary') return primary('hint /* pgmaestro:primary */');
  if (cls.hint === 'replica') return anyReplica('hint /* pgmaestro:replica */');
  if (cls.pin) return primary(`session state: ${cls.pin}`);
  if (i.setting === 'primary') return primary('SET pgmaestro.route = primary');
  if (i.setting === 'replica') return anyReplica('SET pgmaestro.route = replica');
  if (i.inDeferredBegin) return cls.tx === 'set_read_only' ? read('a READ ONLY transaction') : primary('a read-write transaction');
  if (cls.tx === 'begin_read_only') return read('BEGIN READ ONLY');
  if (cls.tx === 'begin' || cls.tx === 'begin_read_write') return primary('a read-write transaction');
  if (cls.write) return primary(cls.reason);
  return read(cls.reason);
}
