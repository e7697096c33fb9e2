import { PgmError } from '../errors.js';

/** A file being written into the repository, raw bytes (compression is the caller's, see stored-file.ts). */
export interface RawWriter {
  /** Resolves once the storage has taken the chunk (backpressure); not durable yet. The caller must not change `chunk` afterwards. */
  write(chunk: Buffer): Promise<void>;
  /** Completes the file: it becomes visible under its name, whole, and durable (unless deferred). */
  end(): Promise<void>;
  /** Drops what was written; the name stays as it was. Never throws. */
  abort(): Promise<void>;
}

/**
 * A file that grows in place and is made durable by prefix: what the WAL
 * archiver writes the segment in progress into where the storage can (a
 * local file system). Appends are not durable until `sync()` resolves; a
 * crash keeps at least the bytes up to the last completed sync.
 */
export interface AppendFile {
  /** Bytes appended so far. */
  readonly size: number;
  /** Appends `chunk` (handed to the kernel at once; the caller may reuse its buffer afterwards). */
  append(chunk: Buffer): void;
  /** Makes every byte appended before the call durable; returns how many that is. */
  sync(): Promise<number>;
  /** Makes the whole file durable and gives it the name `rel` (replacing what is there). */
  complete(rel: string): Promise<void>;
  /** Closes it and keeps it as it is (what a record already points at stays readable). Never throws. */
  close(): Promise<void>;
  /** Closes and removes it. Never throws. */
  abort(): Promise<void>;
}

/**
 * Where a repository keeps its bytes: one interface, one implementation per
 * backend (posix directory, S3 bucket). Paths are relative, `/`-separated.
 *
 * Guarantees every implementation gives:
 * - `put` and `writer` files appear only complete: a reader sees the old
 *   content (or nothing) until the new one is whole. There is no rename:
 *   object stores cannot rename, so the repository never relies on one.
 * - `put` and a writer's `end()` return once the bytes are durable, except
 *   writers opened with `deferSync`, which are durable after `syncDeferred()`.
 * - `list` returns the names directly below a folder (files and folders,
 *   sorted); a folder exists as long as something is below it.
 * - Failures are PgmErrors ('repository.write_failed' / 'repository.unreachable'
 *   / 'repository.invalid') with one sentence naming the file and the cause.
 */
export interface Storage {
  /** Where it is, for messages: a directory, or s3://bucket/prefix. */
  readonly location: string;
  /** The local path of `rel` when the storage is a local file system (copy fast paths); null otherwise. */
  localPath(rel: string): string | null;
  exists(rel: string): Promise<boolean>;
  list(rel: string): Promise<string[]>;
  /** A whole small file; throws 'repository.missing' when absent. */
  read(rel: string): Promise<Buffer>;
  put(rel: string, data: Buffer | string): Promise<void>;
  /**
   * `direct`: the name may show the file before it is complete (only for
   * files inside a folder that counts once a marker written later exists).
   */
  writer(rel: string, opts?: { deferSync?: boolean; direct?: boolean }): Promise<RawWriter>;
  /** A new growing file at `rel`, or null where the storage has none (object stores: write whole objects instead). */
  appendFile(rel: string): Promise<AppendFile | null>;
  /** Bytes `offset .. offset+length` of a stored file (a file packed with others), streamed. */
  readRange(rel: string, offset: number, length: number): AsyncIterable<Buffer>;
  /** Makes every file written with `deferSync` durable. */
  syncDeferred(): Promise<void>;
  /** The stored bytes of `rel`, streamed; a missing file fails the iteration with 'repository.missing'. */
  reader(rel: string): AsyncIterable<Buffer>;
  /** Removes a file, or a folder with everything below it. Absent is fine. */
  remove(rel: string): Promise<void>;
  /** Checks that the repository can be reached and written (creating it when allowed); one sentence when not. */
  check(mode: 'read' | 'write'): Promise<void>;
  /** Frees clients and sockets. */
  close(): Promise<void>;
}

/** Why a file-system call failed, in words a DBA acts on. */
export function fsReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOSPC' ? 'the disk is full' : code === 'EROFS' ? 'the file system is read-only' : code === 'EACCES' || code === 'EPERM' ? 'permission is denied' : (err as Error).message;
}

export function missingFile(location: string, rel: string, cause?: unknown): PgmError {
  return new PgmError('repository.missing', `${location}/${rel} is missing from the backup repository.`, {
    hint: 'run pgmaestro backup verify to see what the repository lacks; restore from a backup that verifies.',
    cause,
    data: { file: rel },
  });
}

export function writeFailed(where: string, why: string, cause?: unknown): PgmError {
  return new PgmError('repository.write_failed', `cannot write ${where} in the backup repository: ${why}.`, {
    hint: 'free space or fix the repository (backup.repository) and run the command again; nothing incomplete is kept.',
    cause,
  });
}

/** Runs `f` over `items`, `limit` at a time; throws the first failure after all running calls ended. */
export async function eachLimited<T>(items: readonly T[], limit: number, f: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown = null;
  const worker = async () => {
    while (next < items.length && failure === null) {
      try {
        await f(items[next++]);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== null) throw failure;
}
