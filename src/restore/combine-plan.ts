import { PgmError } from '../errors.js';
import type { ChainMember } from './chain.js';
import type { IncrementalHeader } from './incremental-file.js';
import { incrementalName, incrementalTarget, isIncrementalName } from './incremental-file.js';

/** What an older backup of the chain holds for the file being reconstructed. */
export type OlderVersion =
  | ({ readonly kind: 'incremental' } & IncrementalHeader)
  /** `sizeBlocks` undefined: unknown until read; blocks the file turns out not to have are then zero-filled. */
  | { readonly kind: 'full'; readonly sizeBlocks?: number }
  /** The backup has neither the file nor an INCREMENTAL of it. */
  | undefined;

/** `sources[b]` for output block b. */
export const ZERO = -1;
export const NEWEST = 0;
/** older[k] of planReconstruction is source k + 1. */
export const olderSource = (k: number): number => k + 1;

export interface BlockPlan {
  readonly lengthBlocks: number;
  /** Per output block: ZERO, NEWEST, or olderSource(k). */
  readonly sources: Int32Array;
}

/**
 * Which source supplies each block of a file reconstructed from the newest
 * backup's INCREMENTAL file and `older` (the same file in the older backups,
 * newest to oldest):
 *
 * - length = max(newest truncation length, highest newest block + 1);
 * - the newest incremental's blocks win;
 * - walking older backups, an incremental supplies the missing blocks it has
 *   and a whole file every missing block it has, then ends the walk;
 * - an older source supplies only blocks below the truncation length of
 *   every incremental newer than it: at or above that length the relation
 *   was cut off in between, so what an older backup still held there is
 *   stale (pg_combinebackup applies only the newest's limit);
 * - everything else is zeros (blocks extended without WAL).
 *
 * Throws 'backup.corrupt' when the walk meets a backup without the file, or
 * ends without a whole file.
 */
export function planReconstruction(newest: IncrementalHeader, older: readonly OlderVersion[]): BlockPlan {
  let lengthBlocks = newest.truncationBlockLength;
  for (const b of newest.blocks) lengthBlocks = Math.max(lengthBlocks, b + 1);
  const sources = new Int32Array(lengthBlocks).fill(ZERO);
  for (const b of newest.blocks) sources[b] = NEWEST;

  let limit = newest.truncationBlockLength;
  for (const [k, version] of older.entries()) {
    if (version === undefined) throw brokenChain(`older backup #${k + 1} has neither the file nor an INCREMENTAL version of it`);
    if (version.kind === 'full') {
      const end = Math.min(limit, version.sizeBlocks ?? limit);
      for (let b = 0; b < end; b++) if (sources[b] === ZERO) sources[b] = olderSource(k);
      return { lengthBlocks, sources };
    }
    for (const b of version.blocks) {
      if (b >= limit) break;
      if (sources[b] === ZERO) sources[b] = olderSource(k);
    }
    limit = Math.min(limit, version.truncationBlockLength);
  }
  throw brokenChain('no older backup has the whole file');
}

/** The plan as ranges, e.g. '0-3:2 4:0 5-7:zero' (source numbers as in BlockPlan; '' for an empty file). */
export function describePlan(plan: BlockPlan): string {
  const out: string[] = [];
  for (let start = 0; start < plan.lengthBlocks; ) {
    const s = plan.sources[start];
    let end = start;
    while (end + 1 < plan.lengthBlocks && plan.sources[end + 1] === s) end++;
    out.push(`${start === end ? start : `${start}-${end}`}:${s === ZERO ? 'zero' : s}`);
    start = end + 1;
  }
  return out.join(' ');
}

export type CombineStep =
  /** Taken whole from the newest backup. */
  | { readonly kind: 'copy'; readonly rel: string }
  /** Rebuilt from `from` (the newest backup's INCREMENTAL file) and the older backups. */
  | { readonly kind: 'reconstruct'; readonly rel: string; readonly from: string }
  /** The newest backup's backup_label without its INCREMENTAL FROM lines. */
  | { readonly kind: 'label'; readonly rel: 'backup_label' };

export interface CombinePlan {
  /** Sorted by `rel`. */
  readonly steps: readonly CombineStep[];
  /**
   * Files of the newest backup left out of the result: its backup_manifest
   * describes INCREMENTAL files, not the reconstructed ones.
   */
  readonly omitted: readonly string[];
}

const OMITTED = new Set(['backup_manifest']);

/**
 * The files of the combined data directory: exactly the newest backup's,
 * INCREMENTAL ones reconstructed. Files only older backups have were dropped
 * in between and are not part of the result.
 */
export function combinePlan(chain: readonly Pick<ChainMember, 'id' | 'files'>[]): CombinePlan {
  const newest = chain.at(-1);
  if (newest === undefined) throw new PgmError('restore.failed', 'Cannot combine an empty chain of backups.', { hint: 'Pass at least a full backup.' });
  const steps: CombineStep[] = [];
  const omitted: string[] = [];
  for (const rel of newest.files) {
    if (OMITTED.has(rel)) omitted.push(rel);
    else if (rel === 'backup_label') steps.push({ kind: 'label', rel });
    else if (!isIncrementalName(rel)) steps.push({ kind: 'copy', rel });
    else {
      const target = incrementalTarget(rel);
      if (newest.files.has(target)) throw brokenChain(`backup ${newest.id} has both ${target} and ${incrementalName(target)}`);
      steps.push({ kind: 'reconstruct', rel: target, from: rel });
    }
  }
  steps.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  return { steps, omitted: omitted.sort() };
}

function brokenChain(what: string): PgmError {
  return new PgmError('backup.corrupt', `The backup chain is inconsistent: ${what}.`, {
    hint: 'Restore from a chain whose backups were each taken against the previous one, or take a new full backup.',
  });
}
