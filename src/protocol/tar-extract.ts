import path from 'node:path';
import { PgmError } from '../errors.js';
import type { ByteSink } from './basebackup.js';
import { UstarParser } from './ustar.js';
import type { TarHeader } from './ustar.js';
import type { TreeFile, WrittenTree } from './written-tree.js';

/** File data is written in batches of about this size (one writev each). */
const WRITE_BATCH = 1 << 20;
/** `write` holds the caller back while this many bytes wait for the file system… */
const HIGH_WATER = 8 << 20;
/** …until they are down to this. */
const LOW_WATER = 4 << 20;

/**
 * A ByteSink that unpacks a ustar stream under `root` as bytes arrive. Only
 * directories, regular files and symlinks are accepted; a name that is
 * absolute, contains '..', or passes through a symlink from the same archive
 * fails the extraction with 'clone.failed'. `linkTarget` decides what each
 * symlink points to (given its archive-relative name and original target).
 *
 * Entries are parsed as soon as bytes arrive and the file-system work is
 * queued and done in archive order, file data in large writes. Backpressure:
 * `write` resolves once fewer than HIGH_WATER bytes are queued, so memory
 * stays bounded whatever the archive size.
 */
export function tarSink(root: string, tree: WrittenTree, linkTarget: (name: string, original: string) => string): ByteSink {
  const parser = new UstarParser();
  const queue = new WorkQueue();
  /** The regular file whose data is arriving, if any. */
  let file: { handle: Promise<TreeFile>; batch: Buffer[]; batchBytes: number } | null = null;
  /** Files opened and not yet closed, to release on failure. */
  const open = new Set<Promise<TreeFile>>();
  /** Symlinks of this archive, known as soon as their header is read (before they exist). */
  const links = new Set<string>();

  const flush = () => {
    if (!file || file.batchBytes === 0) return;
    const { handle, batch, batchBytes } = file;
    file.batch = [];
    file.batchBytes = 0;
    queue.add(async () => (await handle).writev(batch), batchBytes);
  };

  const entry = (header: TarHeader) => {
    const rel = safeRelativePath(header.name);
    if (rel === '') return; // './' names the root itself, which exists
    const abs = path.join(root, rel);
    for (let dir = path.dirname(abs); dir.length > root.length; dir = path.dirname(dir)) {
      if (links.has(dir) || tree.isLink(dir)) throw badEntry(header.name, 'it lies below a symlink of the same archive');
    }
    switch (header.type) {
      case 'directory':
        queue.add(() => tree.mkdir(abs));
        break;
      case 'file':
      case 'contiguous-file': {
        const handle = queue.run(() => tree.createFile(abs));
        handle.catch(() => {}); // the queue reports it
        open.add(handle);
        file = { handle, batch: [], batchBytes: 0 };
        break;
      }
      case 'symlink': {
        const target = linkTarget(rel, header.linkname);
        links.add(abs);
        const made = queue.run(() => tree.symlink(target, abs));
        made.catch(() => {}); // the queue reports it
        break;
      }
      default:
        throw badEntry(header.name, `its type "${header.type}" is not a directory, regular file or symlink`);
    }
  };

  const consume = (chunk: Buffer) => {
    for (const ev of parser.parse(chunk)) {
      if (ev.kind === 'entry') {
        entry(ev.header);
      } else if (ev.kind === 'data') {
        if (!file) continue; // data of an entry that has none to write
        file.batch.push(ev.data);
        file.batchBytes += ev.data.length;
        if (file.batchBytes >= WRITE_BATCH) flush();
      } else if (file) {
        flush();
        const { handle } = file;
        file = null;
        queue.add(async () => {
          await (await handle).close();
          open.delete(handle);
        });
      }
    }
  };

  /** After a failure: once the queue has stopped, close the files it left open. */
  const release = () => {
    void queue.idle().then(() => {
      for (const handle of open) handle.then((f) => f.discard(), () => {});
      open.clear();
    });
  };
  const failed = (err: unknown): never => {
    queue.fail(err as Error);
    release();
    throw err;
  };

  return {
    async write(chunk) {
      try {
        queue.check();
        consume(chunk);
        await queue.belowHighWater();
        queue.check();
      } catch (err) {
        failed(err);
      }
    },
    async end() {
      try {
        queue.check();
        parser.end();
        await queue.idle();
        queue.check();
      } catch (err) {
        failed(err);
      }
    },
    abort(err) {
      queue.fail(err);
      release();
    },
  };
}

/**
 * File-system steps run one after another in the order added. After the
 * first failure the remaining steps are skipped and every later check
 * throws it. Counts the data bytes of queued steps for backpressure.
 */
class WorkQueue {
  private tail: Promise<void> = Promise.resolve();
  private queuedBytes = 0;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;

  add(step: () => Promise<void>, bytes = 0): void {
    void this.run(step, bytes).catch(() => {});
  }

  /** Like `add`, and also gives the step's result to the caller. */
  run<T>(step: () => Promise<T>, bytes = 0): Promise<T> {
    this.queuedBytes += bytes;
    const result = this.tail.then(() => {
      if (this.failure) throw this.failure;
      return step();
    });
    this.tail = result.then(
      () => this.done(bytes),
      (err: Error) => {
        this.fail(err);
        this.done(bytes);
      },
    );
    return result;
  }

  fail(err: Error): void {
    this.failure ??= err;
    this.wakeUp();
  }

  check(): void {
    if (this.failure) throw this.failure;
  }

  async belowHighWater(): Promise<void> {
    if (this.queuedBytes <= HIGH_WATER) return;
    while (this.queuedBytes > LOW_WATER && !this.failure) await new Promise<void>((resolve) => (this.wake = resolve));
  }

  /** Resolves once every step added so far has finished or been skipped. */
  async idle(): Promise<void> {
    let tail: Promise<void>;
    do {
      tail = this.tail;
      await tail;
    } while (tail !== this.tail);
  }

  private done(bytes: number): void {
    this.queuedBytes -= bytes;
    if (this.queuedBytes <= LOW_WATER) this.wakeUp();
  }

  private wakeUp(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }
}

/**
 * The archive name as a relative path with '/' separators and no trailing
 * slash ('' for the root itself). Throws 'clone.failed' for absolute names and
 * any '..' component, so nothing is written outside the target directory.
 */
export function safeRelativePath(name: string): string {
  if (name.startsWith('/') || name.includes('\0')) throw badEntry(name, 'it is absolute');
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw badEntry(name, 'it contains ".."');
  return parts.join('/');
}

function badEntry(name: string, why: string): PgmError {
  return new PgmError('clone.failed', `The backup archive has an entry ${JSON.stringify(name)} that pgmaestro refuses to extract because ${why}.`, {
    hint: 'The source server sent an unexpected archive; check its version and that it is a genuine PostgreSQL server.',
    data: { entry: name },
  });
}
