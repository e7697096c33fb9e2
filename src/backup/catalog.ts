import crypto from 'node:crypto';
import { z } from 'zod';
import { PgmError } from '../errors.js';
import { BLOCK } from './codec.js';
import type { BackupInfo, FileList } from './types.js';

/**
 * Strict reading of a backup's records. A record that does not parse, has
 * an unknown field or kind, lacks a checksum, or does not match the
 * checksum that covers it is damage, reported naming the file — never
 * guessed around. Pure: bytes in, records (or a `backup.corrupt`) out.
 */

const sha = z.string().regex(/^[0-9a-f]{64}$/);
const fileEntry = z
  .object({
    kind: z.literal('file'),
    path: z.string().min(1),
    size: z.number().int().min(0),
    stored: z.string().min(1),
    offset: z.number().int().min(0).optional(),
    stored_size: z.number().int().min(0),
    crc32c: z.string().regex(/^[0-9a-f]{8}$/),
    blocks: z.string().regex(/^(?:[0-9a-f]{8})*$/),
  })
  .strict()
  .refine((e) => e.blocks.length / 8 === Math.ceil(e.stored_size / BLOCK), { message: 'the block checksums do not cover the stored size' });
const dirEntry = z.object({ kind: z.literal('dir'), path: z.string().min(1) }).strict();
const linkEntry = z.object({ kind: z.literal('link'), path: z.string().min(1), target: z.string().min(1) }).strict();
const fileListSchema = z.object({ version: z.literal(3), entries: z.array(z.discriminatedUnion('kind', [fileEntry, dirEntry, linkEntry])) }).strict();

const lsn = z.string().regex(/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/).nullable();
const infoSchema = z
  .object({
    id: z.string().regex(/^[0-9TZ]+[FICL](-\d+)?$/),
    type: z.enum(['full', 'incr', 'cold', 'logical']),
    parent: z.string().nullable(),
    node: z.string(),
    start_time: z.string(),
    stop_time: z.string(),
    start_lsn: lsn,
    stop_lsn: lsn,
    timeline: z.number().int().min(1).nullable(),
    size_bytes: z.number().int().min(0),
    stored_bytes: z.number().int().min(0),
    compression: z.enum(['none', 'gzip', 'lz4', 'zstd']),
    pg_version: z.string(),
    system_identifier: z.string().nullable(),
    logical: z
      .object({ databases: z.array(z.string()), tables: z.array(z.string()), format: z.enum(['plain', 'custom', 'directory', 'dumpall']), tool: z.string() })
      .strict()
      .optional(),
    catalog_sha256: sha,
    manifest_sha256: sha.nullable(),
    checksum: sha,
  })
  .strict();

export function sha256(data: Buffer | string): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

/** The marker's checksum: over its JSON without the `checksum` field, keys in the order written. */
function markerChecksum(info: Omit<BackupInfo, 'checksum'>): string {
  const { checksum: _ignored, ...rest } = info as BackupInfo;
  return sha256(JSON.stringify(rest));
}

/** backup.json's bytes for `info` (its checksum filled in). */
export function encodeMarker(info: Omit<BackupInfo, 'checksum'>): { info: BackupInfo; bytes: string } {
  const full = { ...info, checksum: markerChecksum(info) } as BackupInfo;
  return { info: full, bytes: JSON.stringify(full, null, 2) + '\n' };
}

export function encodeFileList(list: FileList): { bytes: string; sha256: string } {
  const bytes = JSON.stringify(list) + '\n';
  return { bytes, sha256: sha256(bytes) };
}

/** Parses backup.json of backup `id`; throws backup.corrupt naming it. */
export function parseMarker(id: string, bytes: Buffer): BackupInfo {
  const where = `backups/${id}/backup.json`;
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw damaged(id, where, 'is not valid JSON');
  }
  if (isLegacyMarker(raw)) throw legacy(id);
  const r = infoSchema.safeParse(raw);
  if (!r.success) throw damaged(id, where, `does not have the form of a completion marker (${r.error.issues[0]?.path.join('.') || 'top'}: ${r.error.issues[0]?.message})`);
  const info = r.data as BackupInfo;
  if (info.id !== id) throw damaged(id, where, `names backup ${info.id}`);
  if (markerChecksum(raw as BackupInfo) !== info.checksum) throw damaged(id, where, 'does not match its own checksum');
  return info;
}

/** Parses files.json of `info`, checked against the checksum its marker records. */
export function parseFileList(info: BackupInfo, bytes: Buffer): FileList {
  const where = `backups/${info.id}/files.json`;
  if (sha256(bytes) !== info.catalog_sha256) throw damaged(info.id, where, 'does not match the checksum recorded in backup.json');
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw damaged(info.id, where, 'is not valid JSON');
  }
  if (typeof raw === 'object' && raw !== null && (raw as { version?: unknown }).version === 2) throw legacy(info.id, 2);
  const r = fileListSchema.safeParse(raw);
  if (!r.success) throw damaged(info.id, where, `has an entry pgmaestro does not know (${r.error.issues[0]?.path.join('.')}: ${r.error.issues[0]?.message})`);
  return r.data as FileList;
}

export function damaged(id: string, file: string, why: string): PgmError {
  return new PgmError('backup.corrupt', `backup ${id} is damaged: ${file} ${why}.`, {
    hint: `run pgmaestro backup verify ${id}; restore from another backup, or undo the damage.`,
    data: { backup: id, file },
  });
}

/**
 * A marker of the first repository format (pgmaestro before self-checking
 * catalogs): no checksum over itself or its catalog, so nothing proves its
 * files.json is whole. It is not read; the sentence says what to do.
 */
function isLegacyMarker(raw: unknown): boolean {
  if (typeof raw !== 'object' || raw === null) return false;
  const r = raw as Record<string, unknown>;
  return typeof r.id === 'string' && typeof r.type === 'string' && !('checksum' in r) && !('catalog_sha256' in r);
}

function legacy(id: string, version = 1): PgmError {
  return new PgmError('backup.unsupported', `backup ${id} was written by an earlier pgmaestro (repository format ${version}, ${version === 1 ? 'without catalog checksums' : 'files checked by SHA-256 each, not packed'}), which this version does not read.`, {
    hint: `take a new full backup now (pgmaestro backup full); restore moments before it with the pgmaestro version that wrote ${id}, and remove backups/${id} from the repository once the recovery window no longer needs it.`,
    data: { backup: id, file: `backups/${id}/backup.json`, legacy: version },
  });
}
