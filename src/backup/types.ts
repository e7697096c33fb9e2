import type { CompressionKind } from './codec.js';

/**
 * The repository's records. A backup exists only once its `backup.json`
 * (a BackupInfo) is written, last: an interrupted backup leaves a folder
 * without one, which never counts and is removed by the next backup or expire.
 */

export type BackupType = 'full' | 'incr' | 'cold' | 'logical';
export type Compression = CompressionKind;

export interface BackupInfo {
  readonly id: string;
  readonly type: BackupType;
  /** The backup an incremental is relative to; null otherwise. */
  readonly parent: string | null;
  readonly node: string;
  readonly start_time: string;
  readonly stop_time: string;
  /** Physical backups: the WAL range that makes the copy consistent. Null for logical. */
  readonly start_lsn: string | null;
  readonly stop_lsn: string | null;
  readonly timeline: number | null;
  /** Bytes of the original files. */
  readonly size_bytes: number;
  /** Bytes as stored (after compression). */
  readonly stored_bytes: number;
  readonly compression: Compression;
  readonly pg_version: string;
  readonly system_identifier: string | null;
  /** Logical backups: what was dumped and how. */
  readonly logical?: { readonly databases: readonly string[]; readonly tables: readonly string[]; readonly format: 'plain' | 'custom' | 'directory' | 'dumpall'; readonly tool: string };
  /** SHA-256 of the backup's files.json as stored. */
  readonly catalog_sha256: string;
  /** SHA-256 of the backup's backup_manifest as stored (hot physical backups), else null. */
  readonly manifest_sha256: string | null;
  /** SHA-256 of this record's canonical JSON without this field: a flipped byte in backup.json is noticed. */
  readonly checksum: string;
}

/** One entry of a backup's `files.json`: what was stored and how to check it. */
export type StoredEntry =
  | {
      readonly kind: 'file';
      readonly path: string;
      readonly size: number;
      /** The stored object holding it, relative to the backup's folder: its own file, or a pack (`packs/<n>[.gz|.lz4|.zst]`). */
      readonly stored: string;
      /** Packed files only: where its stored bytes start in the pack. */
      readonly offset?: number;
      readonly stored_size: number;
      /** CRC-32C of the original bytes, as PostgreSQL's manifest writes it. */
      readonly crc32c: string;
      /** CRC-32C of each 1 MiB block of the stored bytes (8 hex digits each), see stored-file.ts. */
      readonly blocks: string;
    }
  | { readonly kind: 'dir'; readonly path: string }
  | { readonly kind: 'link'; readonly path: string; readonly target: string };

export type FileEntry = Extract<StoredEntry, { kind: 'file' }>;

/**
 * `path` is relative to the restored instance: `data/...` for the data
 * directory, `tblspc/<oid>/...` for a tablespace. Files smaller than a block
 * are packed together (one object per few hundred of them instead of one
 * each: an object store charges per request); larger ones are stored on
 * their own, so a rebuild can copy or read any block of them directly.
 * Version 3; versions 1 (no catalog checksums) and 2 are refused with the
 * sentence saying what to do (catalog.ts).
 */
export interface FileList {
  readonly version: 3;
  readonly entries: readonly StoredEntry[];
}

/** A completed WAL segment or history file in the archive. */
export interface WalEntry {
  /** e.g. 000000010000000000000003 or 00000002.history */
  readonly name: string;
  readonly stored: string;
  readonly sha256: string;
  readonly size: number;
  /** When the archiver finished storing it (ISO). */
  readonly archived_at: string;
}
