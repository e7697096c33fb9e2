import path from 'node:path';
import type { ByteSink } from '../protocol/basebackup.js';
import { safeRelativePath } from '../protocol/tar-extract.js';
import { UstarParser } from '../protocol/ustar.js';
import { PgmError } from '../errors.js';
import type { Repository } from './repository.js';
import type { StoredWriter } from './storage.js';
import type { StoredEntry } from './types.js';

/**
 * A ByteSink that stores a ustar stream into a backup's folder file by file
 * (each compressed as the repository asks and checksummed as stored), so the
 * repository holds individually verifiable files and restore can read any
 * one of them. `prefix` is `data` for base.tar, `tblspc/<oid>` for a tablespace.
 * Backpressure: `write` resolves once the chunk's bytes are handed to the files.
 */
export function tarStoreSink(repo: Repository, backupDir: string, prefix: string, entries: StoredEntry[], onBytes: (n: number) => void): ByteSink {
  const parser = new UstarParser();
  let file: { writer: StoredWriter; logical: string } | null = null;
  let failure: Error | null = null;

  const fail = async (err: Error): Promise<never> => {
    failure ??= err;
    await file?.writer.abort();
    file = null;
    throw err;
  };

  return {
    async write(chunk) {
      if (failure) throw failure;
      try {
        for (const ev of parser.parse(chunk)) {
          if (ev.kind === 'entry') {
            const rel = safeRelativePath(ev.header.name);
            const logical = rel === '' ? prefix : `${prefix}/${rel}`;
            if (ev.header.type === 'directory') entries.push({ kind: 'dir', path: logical });
            else if (ev.header.type === 'symlink') entries.push({ kind: 'link', path: logical, target: ev.header.linkname });
            else if (ev.header.type === 'file' || ev.header.type === 'contiguous-file') {
              file = { writer: await repo.storage.writer(path.posix.join(backupDir, logical), repo.compression, { deferSync: true }), logical };
            } else {
              throw new PgmError('backup.failed', `the backup archive has an entry ${JSON.stringify(ev.header.name)} of type ${ev.header.type}, which pgmaestro does not store.`, {
                hint: 'the source sent an unexpected archive; check that it is a genuine PostgreSQL 15+ server.',
              });
            }
          } else if (ev.kind === 'data') {
            if (file) {
              await file.writer.write(ev.data);
              onBytes(ev.data.length);
            }
          } else if (file) {
            const { writer, logical } = file;
            file = null;
            const r = await writer.end();
            entries.push({ kind: 'file', path: logical, size: r.size, stored: path.posix.relative(backupDir, r.stored), stored_size: r.storedSize, sha256: r.sha256 });
          }
        }
      } catch (err) {
        await fail(err as Error);
      }
    },
    async end() {
      if (failure) throw failure;
      try {
        parser.end();
      } catch (err) {
        await fail(err as Error);
      }
    },
    abort(err) {
      void fail(err).catch(() => undefined);
    },
  };
}
