import path from 'node:path';
import { PgmError } from '../errors.js';
import { baseBackup } from './basebackup.js';
import type { BaseBackupOptions, BaseBackupResult, BaseBackupSink, ByteSink } from './basebackup.js';
import type { ReplicationConnection } from './connection.js';
import { tarSink } from './tar-extract.js';
import { WrittenTree } from './written-tree.js';

export interface CloneOptions {
  /** Must be missing or empty; becomes the data directory. */
  targetDir: string;
  /**
   * Where tablespace `oid` (at `originalLocation` on the source) goes. Called
   * once per tablespace; the directory must be missing or empty.
   */
  tablespaceTarget(oid: number, originalLocation: string): string;
  /** Owner for everything created (lchown for symlinks). */
  uid?: number;
  gid?: number;
  /** Bytes written so far against the server's size estimate (null if unknown). Called often: throttle on your side. */
  onProgress?: (doneBytes: number, totalBytes: number | null) => void;
  label?: string;
  checkpoint?: 'fast' | 'spread';
  /** Include the WAL that makes the copy consistent. Default true. */
  wal?: boolean;
  /**
   * Checksums in the backup_manifest. Default 'CRC32C', as pg_basebackup's:
   * it detects damage, and costs the server far less than a SHA-2 of every
   * byte (SHA256 slows a fast clone by a third).
   */
  manifestChecksums?: BaseBackupOptions['manifestChecksums'];
}

export interface CloneResult extends BaseBackupResult {
  /** File content bytes written, manifest included. */
  bytes: number;
}

/**
 * Takes a base backup over `conn` and unpacks it as a ready-to-start data
 * directory: base.tar into `targetDir`, each `<oid>.tar` into its tablespace
 * target, with the pg_tblspc/<oid> symlinks pointing at those targets and the
 * manifest in `targetDir/backup_manifest`. Returns only after every written
 * file and directory has been fsynced. On failure, what was written is left
 * for the caller to remove; a failure while streaming leaves `conn` destroyed.
 * File-system errors are raised as 'clone.failed'.
 */
export async function cloneInto(conn: ReplicationConnection, opts: CloneOptions): Promise<CloneResult> {
  let totalBytes: number | null = null;
  const tree = new WrittenTree({ uid: opts.uid, gid: opts.gid }, (done) => opts.onProgress?.(done, totalBytes));
  const targetDir = path.resolve(opts.targetDir);
  const tablespaceDirs = new Map<number, string>();
  const tablespaceDir = (oid: number, location: string): string => {
    let dir = tablespaceDirs.get(oid);
    if (dir === undefined) {
      dir = path.resolve(opts.tablespaceTarget(oid, location));
      tablespaceDirs.set(oid, dir);
    }
    return dir;
  };

  // Prepare the data directory.
  await tree.prepareRoot(targetDir);

  // Stream the backup: every archive straight into its directory.
  const sink: BaseBackupSink = {
    start(info) {
      const kb = info.tablespaces.map((t) => t.sizeKb);
      totalBytes = kb.every((k) => k !== null) ? kb.reduce<number>((n, k) => n + (k ?? 0), 0) * 1024 : null;
      for (const t of info.tablespaces) if (t.oid !== null) tablespaceDir(t.oid, t.location ?? '');
    },
    async archive(name, tablespacePath) {
      if (name === 'base.tar') return tarSink(targetDir, tree, (rel, original) => rewriteTablespaceLink(rel, original, tablespaceDir));
      const m = /^(\d+)\.tar$/.exec(name);
      if (!m) throw cloneFailed(`the server sent an archive named ${JSON.stringify(name)}, which is not an uncompressed tablespace archive`);
      const dir = tablespaceDir(Number(m[1]), tablespacePath);
      await tree.prepareRoot(dir);
      return tarSink(dir, tree, (_rel, original) => original);
    },
    async manifest() {
      const file = await tree.openFile(path.join(targetDir, 'backup_manifest'));
      return { write: (chunk) => file.write(chunk), end: () => file.close(), abort: () => void file.close().catch(() => {}) } satisfies ByteSink;
    },
  };
  try {
    const result = await baseBackup(
      conn,
      {
        label: opts.label ?? 'pgmaestro clone',
        checkpoint: opts.checkpoint ?? 'fast',
        wal: opts.wal ?? true,
        progress: true,
        manifest: true,
        manifestChecksums: opts.manifestChecksums ?? 'CRC32C',
      },
      sink,
    );

    // Make it durable before anyone relies on it.
    await tree.syncAll(16);
    return { ...result, bytes: tree.bytes };
  } catch (err) {
    if (err instanceof PgmError) throw err;
    const e = err as NodeJS.ErrnoException;
    throw new PgmError('clone.failed', `Cloning into ${targetDir} failed: ${e.message}.`, {
      hint: 'Check free space, permissions and ownership of the target directories.',
      cause: err,
      data: { targetDir, errno: e.code, path: e.path },
    });
  }
}

/** pg_tblspc/<oid> must point at where the tablespace was put, not where it was on the source. */
function rewriteTablespaceLink(rel: string, original: string, tablespaceDir: (oid: number, location: string) => string): string {
  const m = /^pg_tblspc\/(\d+)$/.exec(rel);
  return m ? tablespaceDir(Number(m[1]), original) : original;
}

function cloneFailed(what: string): PgmError {
  return new PgmError('clone.failed', `Cloning failed: ${what}.`, { hint: 'Check the source server version (15 or later) and the backup options.' });
}
