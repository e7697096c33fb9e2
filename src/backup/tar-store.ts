import path from 'node:path';
import tarStream from 'tar-stream';
import type { ByteSink } from '../protocol/basebackup.js';
import { safeRelativePath } from '../protocol/tar-extract.js';
import type { Repository } from './repository.js';
import type { StoredEntry } from './types.js';

/**
 * A ByteSink that stores a ustar stream into a backup's folder file by file
 * (each compressed as the repository asks and checksummed as stored), so the
 * repository holds individually verifiable files and restore can read any
 * one of them. `prefix` is `data` for base.tar, `tblspc/<oid>` for a tablespace.
 */
export function tarStoreSink(repo: Repository, backupDir: string, prefix: string, entries: StoredEntry[], onBytes: (n: number) => void): ByteSink {
  const extract = tarStream.extract();
  let failure: Error | null = null;
  const done = (async () => {
    for await (const entry of extract) {
      const { name, type, linkname } = entry.header;
      const rel = safeRelativePath(name);
      const logical = rel === '' ? prefix : `${prefix}/${rel}`;
      if (type === 'directory') {
        entry.resume();
        entries.push({ kind: 'dir', path: logical });
      } else if (type === 'symlink') {
        entry.resume();
        entries.push({ kind: 'link', path: logical, target: linkname ?? '' });
      } else if (type === 'file' || type === 'contiguous-file') {
        const w = await repo.storage.writer(path.posix.join(backupDir, logical), repo.compression, { deferSync: true });
        try {
          for await (const chunk of entry as AsyncIterable<Buffer>) {
            await w.write(chunk);
            onBytes(chunk.length);
          }
        } catch (err) {
          await w.abort();
          throw err;
        }
        const r = await w.end();
        entries.push({ kind: 'file', path: logical, size: r.size, stored: path.posix.relative(backupDir, r.stored), stored_size: r.storedSize, sha256: r.sha256 });
      } else {
        entry.resume();
        throw new Error(`unexpected tar entry type ${type} for ${name}`);
      }
    }
  })().catch((err: Error) => {
    failure = err;
    extract.destroy(err);
    throw err;
  });
  done.catch(() => undefined);
  return {
    async write(chunk) {
      if (failure) throw failure;
      if (!extract.write(chunk)) await Promise.race([new Promise<void>((r) => extract.once('drain', () => r())), done]);
      if (failure) throw failure;
    },
    async end() {
      if (failure) throw failure;
      extract.end(undefined);
      await done;
    },
    abort(err) {
      failure ??= err;
      extract.destroy(err);
    },
  };
}
