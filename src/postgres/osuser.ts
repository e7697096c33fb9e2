import fs from 'node:fs';
import path from 'node:path';
import { PgmError } from '../errors.js';
import { run, type RunAs } from './exec.js';

/**
 * PostgreSQL refuses to run as root. When pgmaestro runs as root it runs every
 * PostgreSQL process as `name` (created as a system user if missing) and hands
 * it the directories PostgreSQL writes. Otherwise it runs as the caller.
 */
export async function resolveOsUser(name: string): Promise<RunAs> {
  if (process.getuid?.() !== 0) return { name: process.env.USER ?? 'self' };
  let ids = await lookup(name);
  if (!ids) {
    const r = await run('useradd', ['--system', '--user-group', '--home-dir', '/var/lib/postgresql', '--no-create-home', '--shell', '/bin/sh', name]);
    ids = await lookup(name);
    if (!ids) {
      throw new PgmError('os_user.missing', `the OS user '${name}' does not exist and could not be created (${r.stderr.trim() || 'useradd failed'}).`, {
        hint: `create it (useradd --system ${name}) or set postgres.os_user to an existing unprivileged user.`,
      });
    }
  }
  if (ids.uid === 0) {
    throw new PgmError('os_user.missing', `postgres.os_user '${name}' is root, and PostgreSQL refuses to run as root.`, { hint: 'set postgres.os_user to an unprivileged user.' });
  }
  return { name, uid: ids.uid, gid: ids.gid, home: '/' };
}

/** The OS user `name` if it exists (never creates it). */
export async function lookupOsUser(name: string): Promise<RunAs | null> {
  const ids = await lookup(name);
  return ids ? { name, uid: ids.uid, gid: ids.gid } : null;
}

async function lookup(name: string): Promise<{ uid: number; gid: number } | null> {
  const u = await run('id', ['-u', name]);
  const g = await run('id', ['-g', name]);
  if (u.code !== 0 || g.code !== 0) return null;
  return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
}

/** Gives `p` to the PostgreSQL user (when running as root). */
export function chownTo(p: string, user: RunAs): void {
  if (user.uid !== undefined && user.gid !== undefined) fs.lchownSync(p, user.uid, user.gid);
}

/** mkdir -p, then hands the leaf to the PostgreSQL user with `mode`. */
export function ensureOwnedDir(dir: string, user: RunAs, mode = 0o700): void {
  fs.mkdirSync(dir, { recursive: true });
  chownTo(dir, user);
  fs.chmodSync(dir, mode);
}

/**
 * The outermost directory on the way to `target` that the PostgreSQL user
 * cannot enter, or null when every ancestor is searchable by it (always null
 * when pgmaestro does not run as root). Both the path as given and, where it
 * exists, its real path are walked, so a symlink cannot hide a closed directory.
 */
export function blockingDir(target: string, user: RunAs): string | null {
  if (user.uid === undefined) return null;
  const walks = [path.resolve(target)];
  try {
    walks.push(fs.realpathSync(target));
  } catch {
    // not created yet: its ancestors are what matters
  }
  for (const start of walks) {
    const blocked: string[] = [];
    for (let dir = path.dirname(start); ; dir = path.dirname(dir)) {
      const st = statOrNull(dir);
      if (st && !canSearch(st, user)) blocked.push(dir);
      if (path.dirname(dir) === dir) break;
    }
    if (blocked.length > 0) return blocked[blocked.length - 1];
  }
  return null;
}

/** Whether `user` may execute the file `file` by its mode bits (its directories are blockingDir's concern). */
export function canExecute(file: string, user: RunAs): boolean {
  if (user.uid === undefined) return true;
  const st = statOrNull(file);
  if (!st || !st.isFile()) return false;
  const bit = st.uid === user.uid ? 0o100 : st.gid === user.gid ? 0o010 : 0o001;
  return (st.mode & bit) !== 0;
}

function canSearch(st: fs.Stats, user: RunAs): boolean {
  const bit = st.uid === user.uid ? 0o100 : st.gid === user.gid ? 0o010 : 0o001;
  return (st.mode & bit) !== 0;
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch {
    return null; // not created yet: we will create it with the right owner
  }
}

/**
 * Checks that the PostgreSQL user can reach `target` (every ancestor searchable
 * by it). Root can reach everything, so without this check the failure would
 * surface later as an obscure "permission denied" in a server log.
 */
export function assertReachable(target: string, user: RunAs, what: string, hint?: string): void {
  const b = blockingDir(target, user);
  if (b === null) return;
  throw new PgmError('path.unreachable', `the OS user '${user.name}' that runs PostgreSQL cannot reach ${what} ${target}, because it cannot enter ${b}.`, {
    hint: hint ?? `put it under a directory that user can traverse (for example /var/lib/pgmaestro or /srv), or allow it with chmod o+x ${b}.`,
    data: { target, blocking: b },
  });
}
