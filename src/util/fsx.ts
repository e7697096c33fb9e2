import fs from 'node:fs';
import path from 'node:path';

/**
 * Writes a file so that a crash leaves either the old content or the new one,
 * never a mix: temp file, fsync, rename, fsync of the directory.
 */
export function writeFileAtomic(file: string, data: string | Buffer, mode = 0o644, owner?: { uid?: number; gid?: number }): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, 'w', mode);
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fs.fchmodSync(fd, mode);
    if (owner?.uid !== undefined && owner.gid !== undefined) fs.fchownSync(fd, owner.uid, owner.gid);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  fsyncDir(path.dirname(file));
}

/** Writes only when the content differs; returns whether it wrote. */
export function writeIfChanged(file: string, data: string, mode = 0o600, owner?: { uid?: number; gid?: number }): boolean {
  try {
    if (fs.readFileSync(file, 'utf8') === data) return false;
  } catch {
    // absent: write it
  }
  writeFileAtomic(file, data, mode, owner);
  return true;
}

export function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // some filesystems refuse fsync on directories; the rename is still atomic
  }
}

export function isEmptyDir(dir: string): boolean {
  try {
    return fs.readdirSync(dir).length === 0;
  } catch {
    return true;
  }
}

/** A regular file this process may execute. */
export function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}
