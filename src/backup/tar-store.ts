import type { ByteSink } from '../protocol/basebackup.js';
import { safeRelativePath } from '../protocol/tar-extract.js';
import { UstarParser } from '../protocol/ustar.js';
import { PgmError } from '../errors.js';
import type { BackupFiles, FileSink } from './backup-files.js';
import type { StoredEntry } from './types.js';

/**
 * A ByteSink that stores a ustar stream into a backup's folder file by file
 * (through BackupFiles: small files packed, large ones on their own, each
 * checksummed by blocks), so the repository holds individually verifiable
 * files and restore can read any one of them. `prefix` is `data` for
 * base.tar, `tblspc/<oid>` for a tablespace. Entries are pushed in stream
 * order (a file's entry is filled in once it is stored). Backpressure:
 * `write` resolves once the chunk's bytes are handed to the files.
 */
export function tarStoreSink(files: BackupFiles, prefix: string, entries: StoredEntry[], onBytes: (n: number) => void): ByteSink {
  const parser = new UstarParser();
  let file: FileSink | null = null;
  let failure: Error | null = null;

  const fail = async (err: Error): Promise<never> => {
    failure ??= err;
    await file?.abort();
    file = null;
    throw err;
  };

  return {
    async write(chunk) {
      if (failure) throw failure;
      try {
        for (const ev of parser.parse(chunk)) {
          if (ev.kind === 'data') {
            if (file) {
              await file.write(ev.data);
              onBytes(ev.data.length);
            }
          } else if (ev.kind === 'entry') {
            const rel = safeRelativePath(ev.header.name);
            const logical = rel === '' ? prefix : `${prefix}/${rel}`;
            if (ev.header.type === 'directory') entries.push({ kind: 'dir', path: logical });
            else if (ev.header.type === 'symlink') entries.push({ kind: 'link', path: logical, target: ev.header.linkname });
            else if (ev.header.type === 'file' || ev.header.type === 'contiguous-file') {
              const index = entries.push({ kind: 'dir', path: '' }) - 1; // placeholder, filled once the file is stored
              file = await files.open(logical, ev.header.size, (e) => void (entries[index] = e));
            } else {
              throw new PgmError('backup.failed', `the backup archive has an entry ${JSON.stringify(ev.header.name)} of type ${ev.header.type}, which pgmaestro does not store.`, {
                hint: 'the source sent an unexpected archive; check that it is a genuine PostgreSQL 15+ server.',
              });
            }
          } else if (file) {
            const done = file;
            file = null;
            await done.end();
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
