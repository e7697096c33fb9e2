import fs from 'node:fs/promises';
import path from 'node:path';
import { PgmError } from '../errors.js';

/**
 * Creates the files, directories and symlinks of a restored data directory
 * the way PostgreSQL wants them (dirs 0700, files 0600, optional owner), and
 * remembers each one so that `syncAll()` can make them durable at the end.
 * Refuses to overwrite anything: every path it creates must not exist yet.
 */
export class WrittenTree {
  /** File content bytes written so far. */
  bytes = 0;
  private readonly files: string[] = [];
  private readonly dirs = new Set<string>();
  private readonly links = new Set<string>();

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

  /** Writes a new 0600 file from `content`, one chunk at a time. */
  async writeFile(file: string, content: AsyncIterable<Buffer>): Promise<void> {
    await this.mkdir(path.dirname(file));
    const fh = await fs.open(file, 'wx', 0o600);
    try {
      if (this.owner.uid !== undefined || this.owner.gid !== undefined) await fh.chown(this.owner.uid ?? -1, this.owner.gid ?? -1);
      this.files.push(file);
      for await (const chunk of content) await this.writeChunk(fh, chunk);
    } finally {
      await fh.close();
    }
  }

  /** A new 0600 file to be written chunk by chunk; the caller must call `close()`. */
  async openFile(file: string): Promise<{ write(chunk: Buffer): Promise<void>; close(): Promise<void> }> {
    await this.mkdir(path.dirname(file));
    const fh = await fs.open(file, 'wx', 0o600);
    if (this.owner.uid !== undefined || this.owner.gid !== undefined) await fh.chown(this.owner.uid ?? -1, this.owner.gid ?? -1);
    this.files.push(file);
    return { write: (chunk) => this.writeChunk(fh, chunk), close: () => fh.close() };
  }

  async symlink(target: string, link: string): Promise<void> {
    await this.mkdir(path.dirname(link));
    await fs.symlink(target, link);
    await this.chown(link, true);
    this.links.add(link);
  }

  /** True if `p` is a symlink this tree created (writing below it would leave the tree). */
  isLink(p: string): boolean {
    return this.links.has(p);
  }

  /** fsyncs every file, then every directory, at most `concurrency` at a time. */
  async syncAll(concurrency = 16): Promise<void> {
    await eachLimited(this.files, concurrency, syncPath);
    await eachLimited([...this.dirs], concurrency, syncPath);
  }

  private async writeChunk(fh: fs.FileHandle, chunk: Buffer): Promise<void> {
    for (let offset = 0; offset < chunk.length; ) {
      const { bytesWritten } = await fh.write(chunk, offset, chunk.length - offset);
      offset += bytesWritten;
    }
    this.bytes += chunk.length;
    this.onBytes?.(this.bytes);
  }

  private async chown(p: string, isLink: boolean): Promise<void> {
    const { uid, gid } = this.owner;
    if (uid === undefined && gid === undefined) return;
    if (isLink) await fs.lchown(p, uid ?? -1, gid ?? -1);
    else await fs.chown(p, uid ?? -1, gid ?? -1);
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
