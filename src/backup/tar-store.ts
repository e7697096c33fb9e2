import path from 'node:path';
import type { ByteSink } from '../protocol/basebackup.js';
import { safeRelativePath } from '../protocol/tar-extract.js';
import { UstarParser } from '../protocol/ustar.js';
import { PgmError } from '../errors.js';
import type { Repository } from './repository.js';
import { storedWriter, type StoredWriter } from './stored-file.js';
import type { StoredEntry } from './types.js';

/**
 * A ByteSink that stores a ustar stream into a backup's folder file by file
 * (each compressed as the repository asks and checksummed as stored), so the
 * repository holds individually verifiable files and restore can read any
 * one of them. `prefix` is `data` for base.tar, `tblspc/<oid>` for a tablespace.
 * Backpressure: `write` resolves once the chunk's bytes are handed to the files.
 */
export function tarStoreSink(repo: Repository, backupDir: string, prefix: string, entries: StoredEntry[], onBytes: (n: number) => void, ending: FileEnds): ByteSink {
  const parser = new UstarParser();
  let file: { writer: StoredWriter; logical: string; index: number } | null = null;
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
              const writer = await storedWriter(repo.storage, repo.codecPool(), path.posix.join(backupDir, logical), repo.codec, { deferSync: true });
              entries.push({ kind: 'dir', path: '' }); // placeholder, filled once the file is complete
              file = { writer, logical, index: entries.length - 1 };
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
            const { writer, logical, index } = file;
            file = null;
            await ending.add(async () => {
              const r = await writer.end();
              entries[index] = { kind: 'file', path: logical, size: r.size, stored: path.posix.relative(backupDir, r.stored), stored_size: r.storedSize, sha256: r.sha256, crc32c: r.crc32c };
            });
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

/**
 * Files being completed while the stream goes on (their last blocks still
 * compressing, an upload finishing), at most `limit` at a time. `add` waits
 * while the limit is reached; `done` waits for all and throws the first failure.
 */
export class FileEnds {
  private readonly running = new Set<Promise<void>>();
  private failure: unknown = null;

  constructor(private readonly limit = 16) {}

  async add(f: () => Promise<void>): Promise<void> {
    if (this.failure) throw this.failure;
    while (this.running.size >= this.limit) await Promise.race(this.running);
    const p: Promise<void> = f()
      .catch((err: unknown) => void (this.failure ??= err))
      .finally(() => this.running.delete(p));
    this.running.add(p);
    if (this.failure) throw this.failure;
  }

  async done(): Promise<void> {
    await Promise.all(this.running);
    if (this.failure) throw this.failure;
  }
}
