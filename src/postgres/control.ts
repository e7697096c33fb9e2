import fs from 'node:fs';
import path from 'node:path';
import { PgmError } from '../errors.js';
import type { Binaries } from './binaries.js';
import { run, type RunAs } from './exec.js';
import { toolFailure } from './tool-failure.js';

/**
 * Process control of one PostgreSQL data directory through initdb and pg_ctl.
 * Postmasters are started by pg_ctl, which detaches them: they belong to no
 * pgmaestro process and outlive the daemon and the CLI.
 */

export interface InitdbOptions {
  readonly superuser: string;
  /** File holding the superuser's password, readable by `user`; deleted by the caller. */
  readonly pwfile: string;
  /** Where a failure's full output is kept. */
  readonly logsDir?: string;
}

export async function initdb(bins: Binaries, user: RunAs, dataDir: string, opts: InitdbOptions): Promise<void> {
  const args = ['-D', dataDir, '-U', opts.superuser, `--pwfile=${opts.pwfile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C', '--data-checksums', '--no-instructions'];
  const r = await run(bins.tool('initdb')!, args, { user });
  if (r.code !== 0) {
    throw toolFailure('postgres.start_failed', 'initdb', `of ${dataDir}`, r.stderr + r.stdout, {
      keepDir: opts.logsDir,
      hint: 'check that the directory is empty and writable by the PostgreSQL OS user.',
    });
  }
}

export async function pgStart(bins: Binaries, user: RunAs, dataDir: string, logFile: string, timeoutSec = 120): Promise<void> {
  await awaitReaped(dataDir);
  if (!fs.existsSync(logFile)) fs.writeFileSync(logFile, '', { mode: 0o600 });
  if (user.uid !== undefined && user.gid !== undefined) fs.chownSync(logFile, user.uid, user.gid);
  const before = fs.statSync(logFile).size;
  const r = await run(bins.tool('pg_ctl')!, ['start', '-D', dataDir, '-l', logFile, '-w', '-t', String(timeoutSec)], { user });
  if (r.code !== 0) {
    const said = readFrom(logFile, before);
    throw toolFailure('postgres.start_failed', 'pg_ctl', `start of ${dataDir}`, said.trim() !== '' ? said : r.stderr + r.stdout, {
      keptIn: logFile,
      hint: `fix the cause (the server log in ${path.join(dataDir, 'log')} has more), then run the command again.`,
    });
  }
}

export async function pgStop(bins: Binaries, user: RunAs, dataDir: string, mode: 'smart' | 'fast' | 'immediate' = 'fast', timeoutSec = 120): Promise<void> {
  if (!postmasterRunning(dataDir)) return;
  const r = await run(bins.tool('pg_ctl')!, ['stop', '-D', dataDir, '-m', mode, '-w', '-t', String(timeoutSec)], { user });
  if (r.code !== 0 && postmasterRunning(dataDir)) {
    throw toolFailure('postgres.stop_failed', 'pg_ctl', `stop of ${dataDir}`, r.stderr + r.stdout, {
      hint: 'retry, or stop it with pg_ctl stop -m immediate.',
    });
  }
}

export async function pgReload(bins: Binaries, user: RunAs, dataDir: string): Promise<void> {
  const r = await run(bins.tool('pg_ctl')!, ['reload', '-D', dataDir], { user });
  if (r.code !== 0 && postmasterRunning(dataDir)) {
    throw toolFailure('postgres.query_failed', 'pg_ctl', `reload of ${dataDir}`, r.stderr + r.stdout, { hint: 'check that the server runs, then run the command again.' });
  }
}

export interface PostmasterInfo {
  readonly pid: number;
  readonly dataDir: string;
  readonly port: number;
  /** "ready", "starting", "stopping", "standby" (PostgreSQL 10+). */
  readonly status: string;
}

/** Parses postmaster.pid; null when absent or unreadable. */
export function readPostmasterPid(dataDir: string): PostmasterInfo | null {
  let text: string;
  try {
    text = fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8');
  } catch {
    return null;
  }
  const lines = text.split('\n');
  const pid = Number(lines[0]);
  if (!Number.isInteger(pid) || pid <= 0) return null;
  return { pid, dataDir: lines[1] ?? '', port: Number(lines[3]), status: (lines[7] ?? '').trim() };
}

/** The postmaster pid when a live postgres process owns the data directory, else null. */
export function postmasterPid(dataDir: string): number | null {
  const info = readPostmasterPid(dataDir);
  if (!info) return null;
  try {
    process.kill(info.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return null;
  }
  try {
    const cmd = fs.readFileSync(`/proc/${info.pid}/cmdline`, 'utf8');
    if (!/postgres|postmaster/.test(cmd)) return null;
  } catch {
    return null;
  }
  return info.pid;
}

export function postmasterRunning(dataDir: string): boolean {
  return postmasterPid(dataDir) !== null;
}

/**
 * A postmaster killed outright stays a zombie until its parent (often init)
 * reaps it, and PostgreSQL refuses to start while the pid in postmaster.pid
 * still exists. Wait for the reaping instead of deleting the lock file, which
 * would drop PostgreSQL's own guard against orphaned backends.
 */
async function awaitReaped(dataDir: string, timeoutMs = 30_000): Promise<void> {
  const info = readPostmasterPid(dataDir);
  if (!info) return;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && isZombie(info.pid)) await new Promise((r) => setTimeout(r, 200));
}

function isZombie(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** The database system identifier from global/pg_control (first 8 bytes, host order). */
export function readSystemIdentifier(dataDir: string): string | null {
  try {
    const fd = fs.openSync(path.join(dataDir, 'global', 'pg_control'), 'r');
    try {
      const buf = Buffer.alloc(8);
      if (fs.readSync(fd, buf, 0, 8, 0) !== 8) return null;
      return buf.readBigUInt64LE(0).toString();
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return null;
  }
}

export function readTail(file: string, bytes = 4096): string {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const len = Math.min(bytes, size);
      const buf = Buffer.alloc(len);
      fs.readSync(fd, buf, 0, len, size - len);
      return buf.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return '';
  }
}

/** What `file` gained after byte `offset` (at most the last 64 kB of it). */
function readFrom(file: string, offset: number): string {
  try {
    const size = fs.statSync(file).size;
    return size > offset ? readTail(file, Math.min(size - offset, 65536)) : '';
  } catch {
    return '';
  }
}

export interface ControlCheckpoint {
  /** DBState: 1 = shut down, 2 = shut down in recovery, 6 = in production (see pg_control.h). */
  readonly state: number;
  readonly checkpoint: bigint;
  readonly redo: bigint;
  readonly timeline: number;
}

/** The latest checkpoint from global/pg_control (layout stable since 9.x: state at 16, checkpoint at 32, redo at 40, timeline at 48; host order). */
export function readControlCheckpoint(dataDir: string): ControlCheckpoint {
  const buf = fs.readFileSync(path.join(dataDir, 'global', 'pg_control')).subarray(0, 64);
  return { state: buf.readUInt32LE(16), checkpoint: buf.readBigUInt64LE(32), redo: buf.readBigUInt64LE(40), timeline: buf.readUInt32LE(48) };
}
