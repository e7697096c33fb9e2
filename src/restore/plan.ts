import { PgmError } from '../errors.js';
import { parseLsn } from '../postgres/lsn.js';
import type { BackupInfo } from '../backup/types.js';

export type RestoreTarget =
  | { readonly kind: 'latest' }
  | { readonly kind: 'time'; readonly time: Date }
  | { readonly kind: 'lsn'; readonly lsn: string }
  | { readonly kind: 'xid'; readonly xid: string }
  | { readonly kind: 'name'; readonly name: string };

/** How far the WAL archive reaches: the end of its newest segment, and when that was archived. */
export interface ArchiveReach {
  readonly endLsn: string | null;
  readonly endTime: string | null;
}

export interface RestorePlan {
  /** Oldest (a full or cold backup) to newest. */
  readonly chain: readonly BackupInfo[];
  readonly target: RestoreTarget;
  /** Human sentence: what will be restored from what. */
  readonly summary: string;
}

/**
 * Which backups restoring to `target` needs: the newest physical backup that
 * is consistent before the target, its ancestors back to a full (or cold)
 * backup, and the WAL from there to the target. Pure: no I/O. A target the
 * repository cannot reach is refused with the range it can reach.
 */
export function planRestore(backups: readonly BackupInfo[], archive: ArchiveReach, target: RestoreTarget): RestorePlan {
  const physical = backups.filter((b) => b.type !== 'logical').sort((a, b) => a.stop_time.localeCompare(b.stop_time));
  if (physical.length === 0) {
    throw new PgmError('restore.out_of_range', 'the repository has no physical backup to restore from.', { hint: 'take one with pgmaestro backup full.' });
  }
  const oldest = physical[0];
  const newest = physical[physical.length - 1];
  const byLsn = [...physical].sort((a, b) => (parseLsn(a.stop_lsn!) < parseLsn(b.stop_lsn!) ? -1 : 1));
  const lowLsn = byLsn[0].stop_lsn!;
  const highLsn = byLsn[byLsn.length - 1].stop_lsn!;
  const reachTime = archive.endTime && archive.endTime > newest.stop_time ? archive.endTime : newest.stop_time;
  const reachLsn = archive.endLsn && parseLsn(archive.endLsn) > parseLsn(highLsn) ? archive.endLsn : highLsn;
  const range = `from ${oldest.stop_time} (LSN ${lowLsn}) to ${reachTime} (LSN ${reachLsn})`;
  const outOfRange = (what: string) =>
    new PgmError('restore.out_of_range', `${what} is outside what the repository can reach, which is ${range}.`, {
      hint: 'choose a target inside that range; backup list shows every backup.',
      data: { oldest: oldest.stop_time, newest: reachTime },
    });

  let base: BackupInfo;
  switch (target.kind) {
    case 'latest':
      base = newest;
      break;
    case 'time': {
      const t = target.time.toISOString();
      if (t < oldest.stop_time || t > reachTime) throw outOfRange(`the time ${t}`);
      base = [...physical].reverse().find((b) => b.stop_time <= t)!;
      break;
    }
    case 'lsn': {
      const l = parseLsn(target.lsn);
      if (l < parseLsn(lowLsn) || l > parseLsn(reachLsn)) throw outOfRange(`the LSN ${target.lsn}`);
      base = [...byLsn].reverse().find((b) => parseLsn(b.stop_lsn!) <= l)!;
      break;
    }
    case 'xid':
    case 'name':
      // Where a transaction id or a restore point lies is only known by
      // replaying WAL, so start from the oldest backup: slower, never too late.
      base = oldest;
      break;
  }
  const chain = chainOf(backups, base);
  const what = target.kind === 'latest' ? 'the end of the archive' : target.kind === 'time' ? target.time.toISOString() : `${target.kind} ${'lsn' in target ? target.lsn : 'xid' in target ? target.xid : target.name}`;
  return { chain, target, summary: `restore ${chain.map((b) => `${b.id} (${b.type})`).join(' + ')}, then WAL from ${chain[chain.length - 1].start_lsn} to ${what}` };
}

/** `b` and its ancestors, oldest first; refuses a broken chain. */
export function chainOf(backups: readonly BackupInfo[], b: BackupInfo): BackupInfo[] {
  const byId = new Map(backups.map((x) => [x.id, x]));
  const chain: BackupInfo[] = [b];
  let cur = b;
  while (cur.type === 'incr') {
    const p = cur.parent ? byId.get(cur.parent) : undefined;
    if (!p) {
      throw new PgmError('backup.corrupt', `incremental backup ${cur.id} needs its parent ${cur.parent}, which is not in the repository.`, {
        hint: 'restore to a point covered by another full backup, or take a new full backup.',
      });
    }
    chain.unshift(p);
    cur = p;
  }
  return chain;
}
