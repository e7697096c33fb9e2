import fs from 'node:fs';
import path from 'node:path';
import type { ClusterContext } from '../cluster/context.js';

export interface EventRecord {
  readonly at: string;
  readonly sentence: string;
}

export function eventsFile(ctx: ClusterContext): string {
  return path.join(ctx.paths.stateDir, 'events.jsonl');
}

/** Appends one sentence to the cluster's event log (and returns the record). */
export function recordEvent(ctx: ClusterContext, sentence: string): EventRecord {
  const rec = { at: new Date().toISOString(), sentence };
  fs.appendFileSync(eventsFile(ctx), JSON.stringify(rec) + '\n', { mode: 0o644 });
  return rec;
}

export function readEvents(ctx: ClusterContext, last = 50): EventRecord[] {
  let text = '';
  try {
    text = fs.readFileSync(eventsFile(ctx), 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .slice(-last)
    .map((l) => JSON.parse(l) as EventRecord);
}
