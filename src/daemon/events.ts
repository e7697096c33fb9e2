import type { ClusterContext } from '../cluster/context.js';
import type { EventRecord } from '../dcs/store.js';

export type { EventRecord };

/** Appends one sentence to the cluster's event log (in the state store) and returns the record. */
export function recordEvent(ctx: ClusterContext, sentence: string): Promise<EventRecord> {
  return ctx.store.appendEvent(sentence);
}

export function readEvents(ctx: ClusterContext, last = 50): Promise<EventRecord[]> {
  return ctx.store.events(last);
}
