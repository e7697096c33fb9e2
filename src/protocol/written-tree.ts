import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { PgmError } from '../errors.js';

/** A file written with synchronous system calls; see `WrittenTree.createFileSync`. */
export interface StreamedFile {
  /** Appends `chunk`; returns once the kernel has it (not durable yet). */
  write(chunk: Buffer): void;
  /**
   * Ends the file. A large one goes to the background syncer, and this
   * resolves once the syncer has room for it; either way the file is durable
   * only after `syncAll()`.
   */
  close(): Promise<void>;
  /** Closes without syncing, after a failure; never throws. */
  discard(): void;
}

/**
 * Files at least this large are fsynced in the background as soon as they
 * are closed, so that their data goes to disk while later files are still
 * arriving; smaller ones are fsynced at the end, together. A few large files
 * hold most of the bytes, while syncing each small file in the background
 * (even 64 files behind) made a clone a third slower: its many small
 * synchronous metadata writes hold up the file creations still going on.
 */
const EARLY_SYNC_BYTES = 8 << 20;
/** Background fsyncs running at once; the rest of the thread pool stays free. */
const SYNC_CONCURRENCY = 2;
/** Closed large files waiting for their fsync, each holding its descriptor. */
const SYNC_BACKLOG = 16;

/**
 * Creates the files, directories and symlinks of a restored data directory
 * the way PostgreSQL wants them (dirs 0700, files 0600, optional owner), and
 * makes them durable: large files are fsynced in the background as soon as
 * they are closed; `syncAll()` waits for those, then fsyncs every other file
 * and every directory. Refuses to overwrite anything: every path it creates
 * must not exist yet.
 *
 * The `…Sync` methods make the same changes with synchronous system calls,
 * for a caller that writes a stream in order and wants each write done on
 * its own thread while the data is still in the CPU cache (see tarSink).
 * Durability is the same either way: nothing is durable before `syncAll()`.
 */
export class WrittenTree {
  /** File content bytes written so far. */
  bytes = 0;
  /** Closed files left for `syncAll`. */
  private readonly files: string[] = [];
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
      for (let p = path.dirname(dir); p.length >= first.length; p = path.dirname(p)) {
        await this.chown(p, false);
        this.dirs.add(p);
      }
      this.dirs.add(path.dirname(first)); // holds the first new entry
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

  /** `mkdir` with synchronous system calls. */
  mkdirSync(dir: string): void {
    if (this.dirs.has(dir)) return;
    try {
      fsSync.mkdirSync(dir, { mode: 0o700 });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        this.mkdirSync(path.dirname(dir));
        return this.mkdirSync(dir);
      }
      if (code !== 'EEXIST' || !fsSync.lstatSync(dir).isDirectory()) throw err;
      this.dirs.add(dir);
      return;
    }
    this.chownSync(dir);
    this.dirs.add(dir);
  }

  /** Writes a new 0600 file from `content`, one chunk at a time. */
  async writeFile(file: string, content: AsyncIterable<Buffer>): Promise<void> {
    const f = await this.openFile(file);
    try {
      for await (const chunk of content) await f.write(chunk);
    } catch (err) {
      await f.discard();
      throw err;
    }
    await f.close();
  }

  /** A new 0600 file to be written chunk by chunk; the caller must call `close()`. */
  async openFile(file: string): Promise<{ write(chunk: Buffer): Promise<void>; close(): Promise<void>; discard(): Promise<void> }> {
    await this.mkdir(path.dirname(file));
    const fh = await fs.open(file, 'wx', 0o600);
    try {
      if (this.owner.uid !== undefined || this.owner.gid !== undefined) await fh.chown(this.owner.uid ?? -1, this.owner.gid ?? -1);
    } catch (err) {
      await fh.close().catch(() => {});
      throw err;
    }
    let open = true;
    let size = 0;
    return {
      write: async (chunk) => {
        for (let offset = 0; offset < chunk.length; ) {
          const { bytesWritten } = await fh.write(chunk, offset, chunk.length - offset);
          offset += bytesWritten;
        }
        size += chunk.length;
        this.counted(chunk.length);
      },
      close: async () => {
        if (!open) return;
        open = false;
        if (size >= EARLY_SYNC_BYTES) return this.syncer.add(fh);
        this.files.push(file);
        await fh.close();
      },
      discard: async () => {
        if (!open) return;
        open = false;
        await fh.close().catch(() => {});
      },
    };
  }

  /** A new 0600 file (refused if `file` exists) written with synchronous system calls; missing parents are created. */
  createFileSync(file: string): StreamedFile {
    this.mkdirSync(path.dirname(file));
    const fd = fsSync.openSync(file, 'wx', 0o600);
    try {
      this.chownSync(fd);
    } catch (err) {
      fsSync.closeSync(fd);
      throw err;
    }
    let open = true;
    let size = 0;
    return {
      write: (chunk) => {
        for (let offset = 0; offset < chunk.length; ) offset += fsSync.writeSync(fd, chunk, offset, chunk.length - offset);
        size += chunk.length;
        this.counted(chunk.length);
      },
      close: () => {
        if (!open) return Promise.resolve();
        open = false;
        if (size >= EARLY_SYNC_BYTES) return this.syncer.add(fdHandle(fd));
        this.files.push(file);
        fsSync.closeSync(fd);
        return Promise.resolve();
      },
      discard: () => {
        if (!open) return;
        open = false;
        fsSync.close(fd, () => {});
      },
    };
  }

  async symlink(target: string, link: string): Promise<void> {
    this.links.add(link); // at once: a later entry must not pass through it even before it exists
    await this.mkdir(path.dirname(link));
    await fs.symlink(target, link);
    await this.chown(link, true);
  }

  /** `symlink` with synchronous system calls. */
  symlinkSync(target: string, link: string): void {
    this.links.add(link);
    this.mkdirSync(path.dirname(link));
    fsSync.symlinkSync(target, link);
    const { uid, gid } = this.owner;
    if (uid !== undefined || gid !== undefined) fsSync.lchownSync(link, uid ?? -1, gid ?? -1);
  }

  /** True if `p` is a symlink this tree created or is creating (writing below it would leave the tree). */
  isLink(p: string): boolean {
    return this.links.has(p);
  }

  /**
   * Returns once every closed file and then every directory is fsynced, and
   * throws the first fsync failure. Files left for the end, then
   * directories, are synced `concurrency` at a time.
   */
  async syncAll(concurrency = 16, opts: { fileSystem?: boolean } = {}): Promise<void> {
    await this.syncer.idle();
    // One syncfs(2) per file system (coreutils `sync -f`) instead of an fsync per file and directory:
    // a thousand small fsyncs cost seconds. Where `sync -f` is missing or fails, every path is synced.
    if (opts.fileSystem && this.dirs.size > 0 && syncFileSystems([...this.dirs])) return;
    await eachLimited(this.files, concurrency, syncPath);
    await eachLimited([...this.dirs], concurrency, syncPath);
  }

  private counted(n: number): void {
    this.bytes += n;
    this.onBytes?.(this.bytes);
  }

  private async chown(p: string, isLink: boolean): Promise<void> {
    const { uid, gid } = this.owner;
    if (uid === undefined && gid === undefined) return;
    if (isLink) await fs.lchown(p, uid ?? -1, gid ?? -1);
    else await fs.chown(p, uid ?? -1, gid ?? -1);
  }

  /** chown of a path or an open descriptor. */
  private chownSync(target: string | number): void {
    const { uid, gid } = this.owner;
    if (uid === undefined && gid === undefined) return;
    if (typeof target === 'number') fsSync.fchownSync(target, uid ?? -1, gid ?? -1);
    else fsSync.chownSync(target, uid ?? -1, gid ?? -1);
  }
}

/** What the syncer needs of an open file. */
interface Syncable {
  sync(): Promise<void>;
  close(): Promise<void>;
}

function fdHandle(fd: number): Syncable {
  const call = (f: (fd: number, cb: (err: Error | null) => void) => void) => new Promise<void>((resolve, reject) => f(fd, (err) => (err ? reject(err) : resolve())));
  return { sync: () => call(fsSync.fsync), close: () => call(fsSync.close) };
}

/**
 * fsyncs and closes handed-over files, SYNC_CONCURRENCY at a time, in the
 * order they were closed. `add` waits while SYNC_BACKLOG files are queued,
 * which bounds the open descriptors; the first failure is kept for `idle`.
 */
class BackgroundSyncer {
  private readonly queue: Syncable[] = [];
  private running = 0;
  private failure: Error | null = null;
  private waiters: (() => void)[] = [];

  async add(file: Syncable): Promise<void> {
    while (this.queue.length >= SYNC_BACKLOG) await this.changed();
    this.queue.push(file);
    this.pump();
  }

  /** Resolves when nothing is queued or running; throws the first fsync failure. */
  async idle(): Promise<void> {
    while (this.running > 0 || this.queue.length > 0) await this.changed();
    if (this.failure) throw this.failure;
  }

  private pump(): void {
    while (this.running < SYNC_CONCURRENCY && this.queue.length > 0) {
      const file = this.queue.shift() as Syncable;
      this.running++;
      file
        .sync()
        .catch((err: Error) => void (this.failure ??= err))
        .then(() => file.close())
        .catch((err: Error) => void (this.failure ??= err))
        .finally(() => {
          this.running--;
          this.pump();
          const waiters = this.waiters;
          this.waiters = [];
          for (const w of waiters) w();
        });
    }
  }

  private changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

/** syncfs(2) of the file system of each of `dirs` (one call per device); false if any call fails. */
function syncFileSystems(dirs: string[]): boolean {
  const byDevice = new Map<number, string>();
  for (const d of dirs) {
    const st = fsSync.statSync(d, { throwIfNoEntry: false });
    if (st && !byDevice.has(st.dev)) byDevice.set(st.dev, d);
  }
  for (const d of byDevice.values()) {
    const r = spawnSync('sync', ['-f', d], { stdio: 'ignore', timeout: 600_000 });
    if (r.status !== 0) return false;
  }
  return true;
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
