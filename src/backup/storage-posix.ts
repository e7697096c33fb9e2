import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { PgmError } from '../errors.js';
import { fsyncDir } from '../util/fsx.js';
import { eachLimited, fsReason, missingFile, writeFailed, type AppendFile, type RawWriter, type Storage } from './storage.js';

/** Bytes gathered before one writev. */
const WRITE_BATCH = 1 << 20;
/** Deferred files at least this large are fsynced as soon as they are complete, in the background. */
const EARLY_SYNC = 8 << 20;

function fdatasyncClose(fd: number): Promise<void> {
  return new Promise<void>((resolve, reject) =>
    fs.fdatasync(fd, (err) => {
      fs.close(fd, (err2) => (err ?? err2 ? reject(err ?? err2) : resolve()));
    }),
  );
}

/**
 * A repository in a local directory. Files are written under a temporary
 * name (`<name>.tmp-<pid>`), fsynced, then renamed into place, so a name
 * only ever shows a whole file. Ownership: everything is created by the
 * process running pgmaestro (root in CI) with the owner given here — the
 * PostgreSQL OS user never reads the repository itself (restore hands it
 * the WAL it needs in a spool directory), so directories are 0750 and
 * files 0640.
 */
export class PosixStorage implements Storage {
  readonly location: string;
  /** Directories known to exist, so a backup of thousands of files does not mkdir for each. */
  private made = new Set<string>();
  private deferred: string[] = [];
  private readonly deferredDirs = new Set<string>();
  private readonly syncing = new Set<Promise<void>>();

  constructor(
    readonly root: string,
    private readonly owner: { uid?: number; gid?: number } = {},
  ) {
    this.location = root;
  }

  private abs(rel: string): string {
    return path.join(this.root, rel);
  }

  localPath(rel: string): string {
    return this.abs(rel);
  }

  async check(mode: 'read' | 'write'): Promise<void> {
    try {
      if (mode === 'read') {
        if (fs.existsSync(this.root)) fs.accessSync(this.root, fs.constants.R_OK);
        return;
      }
      if (fs.existsSync(this.root)) fs.accessSync(this.root, fs.constants.W_OK);
      this.mkdirSync('.');
    } catch (err) {
      throw new PgmError('repository.write_failed', `cannot write the backup repository ${this.root}: ${fsReason(err)}.`, {
        hint: 'point backup.repository at a writable directory.',
        cause: err,
      });
    }
  }

  async exists(rel: string): Promise<boolean> {
    return fs.existsSync(this.abs(rel));
  }

  async list(rel: string): Promise<string[]> {
    try {
      return (await fsp.readdir(this.abs(rel))).sort();
    } catch {
      return [];
    }
  }

  async read(rel: string): Promise<Buffer> {
    try {
      return await fsp.readFile(this.abs(rel));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw missingFile(this.location, rel, err);
      throw new PgmError('repository.invalid', `cannot read ${this.abs(rel)}: ${fsReason(err)}.`, { hint: 'check the repository directory and its permissions.', cause: err });
    }
  }

  async put(rel: string, data: Buffer | string): Promise<void> {
    const abs = this.abs(rel);
    const tmp = `${abs}.tmp-${process.pid}`;
    try {
      this.mkdirSync(path.dirname(rel));
      const fd = fs.openSync(tmp, 'w', 0o640);
      try {
        fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
        fs.fsyncSync(fd);
        this.chownFd(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, abs);
      fsyncDir(path.dirname(abs));
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw writeFailed(abs, fsReason(err), err);
    }
  }

  async writer(rel: string, opts: { deferSync?: boolean; direct?: boolean } = {}): Promise<RawWriter> {
    const abs = this.abs(rel);
    const tmp = opts.direct ? abs : `${abs}.tmp-${process.pid}`;
    let fd: number;
    try {
      this.mkdirSync(path.dirname(rel));
      fd = fs.openSync(tmp, 'w', 0o640);
    } catch (err) {
      throw writeFailed(abs, fsReason(err), err);
    }
    let open = true;
    let size = 0;
    // Chunks are gathered (as views, no copy) and written with one writev
    // per WRITE_BATCH bytes: a few large synchronous writes, each a short
    // kernel copy, cost far less than a thread-pool round trip per chunk.
    let batch: Buffer[] = [];
    let batched = 0;
    const flush = () => {
      if (batched === 0) return;
      let left = batched;
      let parts = batch;
      batch = [];
      batched = 0;
      while (left > 0) {
        let n = fs.writevSync(fd, parts);
        left -= n;
        if (left === 0) break;
        let i = 0;
        while (n >= parts[i].length) n -= parts[i++].length;
        parts = [parts[i].subarray(n), ...parts.slice(i + 1)];
      }
    };
    return {
      write: async (chunk) => {
        try {
          batch.push(chunk);
          batched += chunk.length;
          size += chunk.length;
          if (batched >= WRITE_BATCH || batch.length >= 1024) flush();
        } catch (err) {
          throw writeFailed(abs, fsReason(err), err);
        }
      },
      end: async () => {
        try {
          flush();
          this.chownFd(fd);
          if (!opts.deferSync) fs.fsyncSync(fd);
          if (!opts.direct) fs.renameSync(tmp, abs);
          if (!opts.deferSync) {
            open = false;
            fs.closeSync(fd);
            fsyncDir(path.dirname(abs));
            return;
          }
          this.deferredDirs.add(path.dirname(abs));
          open = false;
          if (size >= EARLY_SYNC) {
            // a large file goes to disk while the stream goes on
            const p = fdatasyncClose(fd);
            this.syncing.add(p);
            p.catch(() => undefined);
          } else {
            fs.closeSync(fd);
            this.deferred.push(abs);
          }
        } catch (err) {
          if (!opts.direct) fs.rmSync(tmp, { force: true });
          throw writeFailed(abs, fsReason(err), err);
        }
      },
      abort: async () => {
        batch = [];
        batched = 0;
        if (open) {
          open = false;
          try {
            fs.closeSync(fd);
          } catch {
            // already closed
          }
        }
        fs.rmSync(tmp, { force: true });
      },
    };
  }

  async appendFile(rel: string): Promise<AppendFile> {
    const abs = this.abs(rel);
    let fd: number;
    try {
      this.mkdirSync(path.dirname(rel));
      fd = fs.openSync(abs, 'w', 0o640);
      this.chownFd(fd);
    } catch (err) {
      throw writeFailed(abs, fsReason(err), err);
    }
    let size = 0;
    let dirSynced = false;
    let open = true;
    const fdatasync = () => new Promise<void>((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
    return {
      get size() {
        return size;
      },
      append: (chunk) => {
        try {
          for (let off = 0; off < chunk.length; ) off += fs.writeSync(fd, chunk, off, chunk.length - off);
        } catch (err) {
          throw writeFailed(abs, fsReason(err), err);
        }
        size += chunk.length;
      },
      sync: async () => {
        const upTo = size;
        try {
          await fdatasync();
          if (!dirSynced) fsyncDir(path.dirname(abs));
          dirSynced = true;
        } catch (err) {
          throw writeFailed(abs, fsReason(err), err);
        }
        return upTo;
      },
      complete: async (to) => {
        const dest = this.abs(to);
        try {
          await fdatasync();
          open = false;
          fs.closeSync(fd);
          this.mkdirSync(path.dirname(to));
          fs.renameSync(abs, dest);
          fsyncDir(path.dirname(dest));
          fsyncDir(path.dirname(abs));
        } catch (err) {
          throw writeFailed(dest, fsReason(err), err);
        }
      },
      close: async () => {
        if (!open) return;
        open = false;
        try {
          fs.closeSync(fd);
        } catch {
          // already closed
        }
      },
      abort: async () => {
        if (open) {
          open = false;
          try {
            fs.closeSync(fd);
          } catch {
            // already closed
          }
        }
        fs.rmSync(abs, { force: true });
      },
    };
  }

  async *readRange(rel: string, offset: number, length: number): AsyncIterable<Buffer> {
    const abs = this.abs(rel);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(abs, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw missingFile(this.location, rel, err);
      throw err;
    }
    try {
      for (let at = offset, left = length; left > 0; ) {
        const buf = Buffer.allocUnsafe(Math.min(left, 1 << 20));
        const { bytesRead } = await fh.read(buf, 0, buf.length, at);
        if (bytesRead === 0) return;
        yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
        at += bytesRead;
        left -= bytesRead;
      }
    } finally {
      await fh.close();
    }
  }

  async syncDeferred(): Promise<void> {
    const files = this.deferred.splice(0);
    const dirs = [...this.deferredDirs];
    this.deferredDirs.clear();
    const running = [...this.syncing];
    this.syncing.clear();
    const syncOne = async (p: string) => {
      const fh = await fsp.open(p, 'r');
      try {
        await fh.datasync();
      } finally {
        await fh.close();
      }
    };
    try {
      await Promise.all(running);
      await eachLimited(files, 4, syncOne);
      await eachLimited(dirs, 4, syncOne);
    } catch (err) {
      throw writeFailed(this.root, fsReason(err), err);
    }
  }

  async *reader(rel: string): AsyncIterable<Buffer> {
    const abs = this.abs(rel);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(abs, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw missingFile(this.location, rel, err);
      throw err;
    }
    try {
      for (;;) {
        const buf = Buffer.allocUnsafe(1 << 20);
        const { bytesRead } = await fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0) return;
        yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
      }
    } finally {
      await fh.close();
    }
  }

  async remove(rel: string): Promise<void> {
    fs.rmSync(this.abs(rel), { recursive: true, force: true });
  }

  async close(): Promise<void> {}

  private mkdirSync(rel: string): void {
    if (this.made.has(rel)) return;
    const abs = this.abs(rel);
    const first = fs.mkdirSync(abs, { recursive: true, mode: 0o750 });
    if (first && this.owner.uid !== undefined && this.owner.gid !== undefined) {
      for (let d = abs; d.length >= first.length; d = path.dirname(d)) fs.chownSync(d, this.owner.uid, this.owner.gid);
    }
    this.made.add(rel);
  }

  private chownFd(fd: number): void {
    if (this.owner.uid !== undefined && this.owner.gid !== undefined) fs.fchownSync(fd, this.owner.uid, this.owner.gid);
  }
}
