import type { NodeObservation } from './observations.js';

/**
 * The few formats every HA sentence uses, so that sentences read the same
 * everywhere and tests can spell them: durations "6.0 s", bytes "1.5 MB"
 * (1024-based, as PostgreSQL prints them), LSNs via formatLsn.
 */

export function seconds(ms: number): string {
  return `${(Math.max(0, ms) / 1000).toFixed(1)} s`;
}

export function millis(ms: number): string {
  return `${Math.round(ms)} ms`;
}

export function bytes(n: bigint | number): string {
  const v = Number(n);
  if (v < 1024) return `${v} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let x = v / 1024;
  let u = 0;
  while (x >= 1024 && u < units.length - 1) {
    x /= 1024;
    u++;
  }
  return `${x.toFixed(1)} ${units[u]}`;
}

/** "a", "a and b", "a, b and c". */
export function listing(items: readonly string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

/**
 * How a node that did not answer SQL failed, in the words of the sentences:
 * its host is gone, its postmaster is gone, or it is there but silent.
 */
export function symptom(n: NodeObservation): string {
  if (!n.hostReachable) return 'unreachable';
  if (n.postmasterAlive === false) return 'postmaster down';
  return 'not answering';
}
