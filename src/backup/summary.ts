import { Cron } from 'croner';
import { formatBytes } from '../util/format.js';
import type { BackupConfig } from '../config/types.js';
import type { BackupInfo, WalEntry } from './types.js';

export interface StorageSummary {
  readonly backups_bytes: number;
  readonly wal_bytes: number;
  readonly total_bytes: number;
  readonly wal_segments: number;
  /** Average stored WAL per day over the days the archive has seen. */
  readonly wal_bytes_per_day: number;
  readonly window: string;
  /** What the policy costs at steady state: fulls and incrementals in the window plus its WAL. */
  readonly projected_bytes: number;
  readonly projection: string;
}

/**
 * What the policy costs. Pure: from the catalog, the WAL records and the
 * policy, the stored size now and the projected size once the window is full
 * (the schedule's fulls and incrementals over the window plus one full cycle
 * kept as anchor, and the window's WAL at the observed daily rate).
 */
export function storageSummary(backups: readonly BackupInfo[], wal: readonly WalEntry[], policy: BackupConfig, now = new Date()): StorageSummary {
  const backupsBytes = backups.reduce((n, b) => n + b.stored_bytes, 0);
  const segments = wal.filter((e) => !e.name.includes('.'));
  const walBytes = wal.reduce((n, e) => n + e.size, 0);
  const days = new Set(segments.map((e) => e.archived_at.slice(0, 10)));
  const walPerDay = days.size > 0 ? segments.reduce((n, e) => n + e.size, 0) / days.size : 0;

  const windowDays = policy.retentionMs / 86400_000;
  const runs = (expr: string) => countRuns(expr, now, policy.retentionMs);
  const fullsInWindow = runs(policy.schedule.full) + 1; // +1: the anchor before the window
  const incrsInWindow = runs(policy.schedule.incr);
  const avg = (type: string) => {
    const xs = backups.filter((b) => b.type === type).map((b) => b.stored_bytes);
    return xs.length > 0 ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
  };
  const full = avg('full') || avg('cold');
  const incr = avg('incr');
  const walWindow = walPerDay * (windowDays + 7);
  const projected = Math.round(fullsInWindow * full + incrsInWindow * incr + walWindow);
  return {
    backups_bytes: backupsBytes,
    wal_bytes: walBytes,
    total_bytes: backupsBytes + walBytes,
    wal_segments: segments.length,
    wal_bytes_per_day: Math.round(walPerDay),
    window: policy.retention,
    projected_bytes: projected,
    projection: `${fullsInWindow} fulls x ${formatBytes(full)} + ${incrsInWindow} incrementals x ${formatBytes(incr)} + WAL ${formatBytes(walPerDay)}/day x ${Math.round(windowDays + 7)} days`,
  };
}

/** How many times a cron expression fires over `spanMs` starting at `from`. */
function countRuns(expr: string, from: Date, spanMs: number): number {
  const job = new Cron(expr, { paused: true });
  const end = from.getTime() + spanMs;
  let n = 0;
  for (let t = job.nextRun(from); t && t.getTime() <= end && n < 100_000; t = job.nextRun(t)) n++;
  return n;
}
