import { PgmError } from '../errors.js';
import { formatLsn, parseLsn } from '../postgres/lsn.js';
import type { Lsn } from '../postgres/lsn.js';

/** What the chain check needs from a backup_label. */
export interface BackupLabel {
  readonly startLsn: Lsn;
  readonly startTimeline: number;
  /** The parent backup's start, for an incremental backup (PostgreSQL 17+); null for a full one. */
  readonly incrementalFrom: { readonly lsn: Lsn; readonly timeline: number } | null;
}

const INCREMENTAL_LINE = /^INCREMENTAL FROM (LSN|TLI):/;

/** The label of the combined directory: a full backup's, i.e. without the INCREMENTAL FROM lines. */
export function rewriteBackupLabel(text: string): string {
  return text
    .split('\n')
    .filter((line) => !INCREMENTAL_LINE.test(line))
    .join('\n');
}

/** Parses a backup_label; `where` names it in errors. Throws 'backup.corrupt'. */
export function parseBackupLabel(text: string, where: string): BackupLabel {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Z][A-Z ]*): (.*)$/.exec(line);
    if (m) fields.set(m[1], m[2]);
  }
  const field = (name: string): string => {
    const v = fields.get(name);
    if (v === undefined) throw badLabel(where, `has no "${name}" line`);
    return v;
  };
  const lsn = (name: string, text: string): Lsn => {
    try {
      return parseLsn(text.split(' ')[0]);
    } catch (err) {
      throw badLabel(where, `has "${name}: ${text}", which is not a WAL position`, err);
    }
  };
  const tli = (name: string, text: string): number => {
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < 1 || n > 0xffffffff) throw badLabel(where, `has "${name}: ${text}", which is not a timeline`);
    return n;
  };

  const fromLsn = fields.get('INCREMENTAL FROM LSN');
  const fromTli = fields.get('INCREMENTAL FROM TLI');
  if ((fromLsn === undefined) !== (fromTli === undefined)) throw badLabel(where, 'has only one of the INCREMENTAL FROM LSN and TLI lines');
  return {
    startLsn: lsn('START WAL LOCATION', field('START WAL LOCATION')),
    startTimeline: tli('START TIMELINE', field('START TIMELINE')),
    incrementalFrom:
      fromLsn === undefined || fromTli === undefined
        ? null
        : { lsn: lsn('INCREMENTAL FROM LSN', fromLsn), timeline: tli('INCREMENTAL FROM TLI', fromTli) },
  };
}

/**
 * Checks that labels (oldest first) form one chain: the first is a full
 * backup, and each other one is incremental from exactly where its parent
 * started. Throws 'backup.corrupt' naming both backups.
 */
export function checkLabelChain(labels: readonly { readonly id: string; readonly label: BackupLabel }[]): void {
  for (const [i, { id, label }] of labels.entries()) {
    const from = label.incrementalFrom;
    if (i === 0) {
      if (from !== null) {
        throw chainError(`backup ${id}, the oldest of the chain, is incremental (from ${formatLsn(from.lsn)} on timeline ${from.timeline})`, 'Start the chain with the full backup it was taken against.', { backup: id });
      }
      continue;
    }
    const parent = labels[i - 1];
    if (from === null) {
      throw chainError(`backup ${id} is a full backup but follows backup ${parent.id} in the chain`, 'A chain has one full backup, first; restore from the later full backup alone.', { backup: id, parent: parent.id });
    }
    if (from.lsn !== parent.label.startLsn || from.timeline !== parent.label.startTimeline) {
      throw chainError(
        `backup ${id} is incremental from ${formatLsn(from.lsn)} on timeline ${from.timeline}, but backup ${parent.id} before it started at ${formatLsn(parent.label.startLsn)} on timeline ${parent.label.startTimeline}`,
        `Backup ${id} was not taken against backup ${parent.id}; use the backups it was taken against, in order.`,
        { backup: id, parent: parent.id },
      );
    }
  }
}

function badLabel(where: string, what: string, cause?: unknown): PgmError {
  return new PgmError('backup.corrupt', `The backup_label of ${where} ${what}.`, {
    hint: 'The backup is damaged or was not taken with BASE_BACKUP; verify the repository and take a new full backup.',
    cause,
    data: { where },
  });
}

function chainError(what: string, hint: string, data: Record<string, unknown>): PgmError {
  return new PgmError('backup.corrupt', `The backup chain is broken: ${what}.`, { hint, data });
}
