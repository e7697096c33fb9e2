import fs from 'node:fs/promises';
import path from 'node:path';
import { PgmError } from '../errors.js';

/** A file being written by WrittenTree; see `createFile`. */
export interface TreeFile {
  /** Appends `chunks` in order; resolves once all of them are written. */
  writev(chunks: Buffer[]): Promise<void>;
  /**
   * Ends the file and hands it to the background syncer. Resolves once the
   * syncer has room for it (it keeps at most a few dozen files open), not
   * when the file is durable: `syncAll()` waits for that.
   */
  close(): Promise<void>;
  /** Closes without syncing, after a failure; never throws. */
  discard(): Promise<void>;
}

/** fsyncs running at once; the rest of the thread pool stays free for writes. */
const SYNC_CONCURRENCY = 2;
/** Written files waiting for their fsync, each holding its descriptor. */
const SYNC_BACKLOG = 64;

/**
 * Creates the files, directories and symlinks of a restored data directory
 * the way PostgreSQL wants them (dirs 0700, files 0600, optional owner), and
 * makes them durable: each file is fsynced in the background as soon as it is
 * closed, so the data reaches the disk while later files are still arriving,
 * and `syncAll()` waits for those and then fsyncs every directory.
 * Refuses to overwrite anything: every path it creates must not exist yet.
 */
export class WrittenTree {
  /** File content bytes written so far. */
  bytes = 0;
  private readonly dirs = new Set<string>();
  private readonly links = new Set<string>();
  private readonly syncer = new BackgroundSyncer();

  constructor(
    private readonly owner: { uid?: number; gid?: number },
    private readonly onBytes?: (total: number) => void,
  ) {}

  /**
   * Makes `dir` an empty 0700 directory owned by the owner; refuses a
   * non-empty one. Missing parents are created the same way (0700, owned), so
   * the server can reach it.
   */
  async prepareRoot(dir: string): Promise<void> {
    const first = await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    if (first !== undefined) {
      for (let p = path.dirname(dir); p.length >= first.length; p = path.dirname(p)) await this.chown(p, false);
    }
    const entries = await fs.readdir(dir);
    if (entries.length > 0) {
      throw new PgmError('clone.failed', `${dir} is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', …' : ''}).`, {
        hint: 'Clone into an empty or missing directory; remove the leftovers of an earlier attempt first.',
        data: { dir },
      });
    }
    await fs.chmod(dir, 0o700);
    await this.chown(dir, false);
    this.dirs.add(dir);
    this.dirs.add(path.dirname(dir)); // so the new entry in the parent is synced too
  }

  /** Creates `dir` and any missing parents, each 0700. An existing directory is fine; anything else there is not. */
  async mkdir(dir: string): Promise<void> {
    if (this.dirs.has(dir)) return;
    try {
      await fs.mkdir(dir, { mode: 0o700 });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        await this.mkdir(path.dirname(dir));
        return this.mkdir(dir);
      }
      if (code !== 'EEXIST' || !(await fs.lstat(dir)).isDirectory()) throw err;
      this.dirs.add(dir);
      return;
    }
    await this.chown(dir, false);
    this.dirs.add(dir);
  }

  /**
   * A new 0600 file (refused if `file` exists), written with `writev` and
   * ended with `close` (or `discard`). Missing parent directories are created.
   */
  async createFile(file: string): Promise<TreeFile> {
    await this.mkdir(path.dirname(file));
    const fh = await fs.open(file, 'wx', 0o600);
    try {
      if (this.owner.uid !== undefined || this.owner.gid !== undefined) await fh.chown(this.owner.uid ?? -1, this.owner.gid ?? -1);
    } catch (err) {
      await fh.close().catch(() => {});
      throw err;
    }
    let open = true;
    return {
      writev: async (chunks) => {
        let total = 0;
        for (const c of chunks) total += c.length;
        await writeAll(fh, chunks, total);
        this.bytes += total;
        this.onBytes?.(this.bytes);
      },
      close: async () => {
        if (!open) return;
        open = false;
        await this.syncer.add(fh);
      },
      discard: async () => {
        if (!open) return;
        open = false;
        await fh.close().catch(() => {});
      },
    };
  }

  /** Writes a new 0600 file from `content`, one chunk at a time. */
  async writeFile(file: string, content: AsyncIterable<Buffer>): Promise<void> {
    const f = await this.createFile(file);
    try {
      for await (const chunk of content) await f.writev([chunk]);
    } catch (err) {
      await f.discard();
      throw err;
    }
    await f.close();
  }

  /** A new 0600 file to be written chunk by chunk; the caller must call `close()`. */
  async openFile(file: string): Promise<{ write(chunk: Buffer): Promise<void>; close(): Promise<void> }> {
    const f = await this.createFile(file);
    return { write: (chunk) => f.writev([chunk]), close: () => f.close() };
  }

  async symlink(target: string, link: string): Promise<void> {
    this.links.add(link); // at once: a later entry must not pass through it even before it exists
    await this.mkdir(path.dirname(link));
    await fs.symlink(target, link);
    await this.chown(link, true);
  }

  /** True if `p` is a symlink this tree created or is creating (writing below it would leave the tree). */
  isLink(p: string): boolean {
    return this.links.has(p);
  }

  /**
   * Returns once every closed file and then every directory is fsynced;
   * throws the first fsync failure. Directories are synced at most
   * `concurrency` at a time.
   */
  async syncAll(concurrency = 16): Promise<void> {
    await this.syncer.idle();
    await eachLimited([...this.dirs], concurrency, syncPath);
  }

  private async chown(p: string, isLink: boolean): Promise<void> {
    const { uid, gid } = this.owner;
    if (uid === undefined && gid === undefined) return;
    if (isLink) await fs.lchown(p, uid ?? -1, gid ?? -1);
    else await fs.chown(p, uid ?? -1, gid ?? -1);
  }
}

/**
 * fsyncs and closes handed-over files, SYNC_CONCURRENCY at a time, in the
 * order they were closed. `add` waits while SYNC_BACKLOG files are queued,
 * which bounds the open descriptors; the first failure is kept for `idle`.
 */
class BackgroundSyncer {
  private readonly queue: fs.FileHandle[] = [];
  private running = 0;
  private failure: Error | null = null;
  private readonly waiters: (() => void)[] = [];

  async add(fh: fs.FileHandle): Promise<void> {
    while (this.queue.length >= SYNC_BACKLOG) await this.wait();
    this.queue.push(fh);
    this.pump();
  }

  /** Resolves when nothing is queued or running; throws the first fsync failure. */
  async idle(): Promise<void> {
    while (this.running > 0 || this.queue.length > 0) await this.wait();
    if (this.failure) throw this.failure;
  }

  private pump(): void {
    while (this.running < SYNC_CONCURRENCY && this.queue.length > 0) {
      const fh = this.queue.shift() as fs.FileHandle;
      this.running++;
      fh.sync()
        .catch((err: Error) => void (this.failure ??= err))
        .then(() => fh.close())
        .catch((err: Error) => void (this.failure ??= err))
        .finally(() => {
          this.running--;
          this.pump();
          for (const w of this.waiters.splice(0)) w();
        });
    }
  }

  private wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

/** Writes all of `chunks` at the file position, continuing after short writes. */
async function writeAll(fh: fs.FileHandle, chunks: Buffer[], total: number): Promise<void> {
  for (;;) {
    const { bytesWritten } = await fh.writev(chunks);
    if (bytesWritten >= total) return;
    if (bytesWritten === 0) throw Object.assign(new Error('a write to the file made no progress'), { code: 'EIO' });
    total -= bytesWritten;
    let skip = bytesWritten;
    const rest: Buffer[] = [];
    for (const c of chunks) {
      if (skip >= c.length) {
        skip -= c.length;
      } else {
        rest.push(c.subarray(skip));
        skip = 0;
      }
    }
    chunks = rest;
  }
}

async function syncPath(p: string): Promise<void> {
  const fh = await fs.open(p, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function eachLimited<T>(items: T[], limit: number, f: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await f(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
