import type { BackupInfo } from './types.js';

export interface ExpiryPlan {
  readonly keep: readonly string[];
  readonly remove: readonly string[];
  /** WAL older than this LSN is needed by no kept backup (null: keep all WAL). */
  readonly walKeepFrom: string | null;
  /** The oldest moment restorable after expiry. */
  readonly windowStart: string;
  readonly reason: string;
}

/**
 * Which backups the recovery window needs. Pure.
 *
 * Restoring to the window's oldest moment needs the newest physical backup
 * consistent at or before it (its "anchor"), with its ancestors. Everything
 * newer is kept (each point of the window may depend on it); everything older
 * than the anchor's chain is removable. Logical backups are kept while inside
 * the window. WAL is kept from the oldest kept physical backup's start.
 */
export function planExpiry(backups: readonly BackupInfo[], now: Date, windowMs: number): ExpiryPlan {
  const windowStart = new Date(now.getTime() - windowMs).toISOString();
  const physical = backups.filter((b) => b.type !== 'logical').sort((a, b) => a.stop_time.localeCompare(b.stop_time));
  const byId = new Map(backups.map((b) => [b.id, b]));
  const keep = new Set<string>();

  const anchor = [...physical].reverse().find((b) => b.stop_time <= windowStart);
  for (const b of physical) if (b.stop_time > windowStart || b === anchor) keep.add(b.id);
  // ancestors of every kept incremental
  for (const id of [...keep]) {
    let cur = byId.get(id);
    while (cur?.type === 'incr' && cur.parent) {
      keep.add(cur.parent);
      cur = byId.get(cur.parent);
    }
  }
  for (const b of backups) if (b.type === 'logical' && b.stop_time > windowStart) keep.add(b.id);

  const kept = physical.filter((b) => keep.has(b.id));
  const oldestKept = kept.sort((a, b) => a.start_time.localeCompare(b.start_time))[0];
  const remove = backups.filter((b) => !keep.has(b.id)).map((b) => b.id);
  const reason = anchor
    ? `window starts ${windowStart}; ${anchor.id} is the newest backup before it, so older backups are not needed`
    : `window starts ${windowStart}; no backup is older than that, so all are kept`;
  return {
    keep: backups.filter((b) => keep.has(b.id)).map((b) => b.id),
    remove,
    walKeepFrom: oldestKept?.start_lsn ?? null,
    windowStart,
    reason,
  };
}
