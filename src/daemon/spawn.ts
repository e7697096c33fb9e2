import fs from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClusterContext } from '../cluster/context.js';
import { PgmError } from '../errors.js';
import { writeFileAtomic } from '../util/fsx.js';

const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * pgmaestro's own long-running processes (supervisor, daemon, endpoint
 * processes): each is a detached `pgmaestro <role> ... -c FILE` that writes
 * its pid file once running. A pid file counts only while it names a live
 * process whose command line is that role for that configuration file, so a
 * stale file or a recycled pid is never mistaken for ours. They are found and
 * stopped by pid only.
 */
export interface ProcessRole {
  /** Words the command line must contain besides the config file (e.g. ['endpoint', 'rw']). */
  readonly argv: readonly string[];
  readonly pidFile: string;
  readonly logFile: string;
}

export function daemonRole(ctx: ClusterContext): ProcessRole {
  return { argv: ['daemon'], pidFile: ctx.paths.daemonPid, logFile: ctx.paths.daemonLog };
}

export function supervisorRole(ctx: ClusterContext): ProcessRole {
  return { argv: ['supervise'], pidFile: path.join(ctx.paths.stateDir, 'supervisor.pid'), logFile: ctx.paths.daemonLog };
}

/** The role's pid when its pid file names a live process of that role for this cluster, else null. */
export function livePid(ctx: ClusterContext, role: ProcessRole): number | null {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(role.pidFile, 'utf8').trim());
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return null;
  try {
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (!role.argv.every((w) => cmd.includes(w)) || !cmd.includes(ctx.cfg.file)) return null;
  } catch {
    return null;
  }
  return pid;
}

/** When the process behind the pid file started (the file is written once it runs), as ISO time. */
export function since(role: ProcessRole): string | null {
  try {
    return fs.statSync(role.pidFile).mtime.toISOString();
  } catch {
    return null;
  }
}

/** Written by a process of the role once it runs. */
export function writePidFile(role: ProcessRole): void {
  writeFileAtomic(role.pidFile, `${process.pid}\n`, 0o644);
}

/** Removes the pid file if it still names this process. */
export function removePidFile(role: ProcessRole): void {
  try {
    if (fs.readFileSync(role.pidFile, 'utf8').trim() === String(process.pid)) fs.rmSync(role.pidFile);
  } catch {
    // already gone
  }
}

/** How many times the role was restarted after dying (kept beside its pid file). */
export function restarts(role: ProcessRole): number {
  try {
    return Number(fs.readFileSync(`${role.pidFile}.restarts`, 'utf8')) || 0;
  } catch {
    return 0;
  }
}

export function countRestart(role: ProcessRole): number {
  const n = restarts(role) + 1;
  writeFileAtomic(`${role.pidFile}.restarts`, `${n}\n`, 0o644);
  return n;
}

/**
 * Starts `pgmaestro <args> -c FILE` detached (own session, output appended to
 * the role's log): it survives its parent, and the PostgreSQL processes
 * survive it. Resolves with its pid once its pid file names it, or throws
 * with the log to read.
 */
export async function startDetached(ctx: ClusterContext, role: ProcessRole, args: readonly string[], timeoutMs = 15_000): Promise<number> {
  const out = fs.openSync(role.logFile, 'a', 0o600);
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...args, '-c', ctx.cfg.file], {
    detached: true,
    stdio: ['ignore', out, out],
    env: process.env,
    cwd: PACKAGE_ROOT, // loaders named in execArgv (tsx in development) resolve from here
  });
  fs.closeSync(out);
  child.unref();
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const pid = livePid(ctx, role);
    if (pid !== null && pid === child.pid) return pid;
    if (child.exitCode !== null || child.signalCode !== null) {
      // Lost a race with another starter (the daemon and `up` both start endpoints): theirs counts.
      const other = livePid(ctx, role);
      if (other !== null) return other;
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  throw new PgmError('daemon.failed', `pgmaestro ${args.join(' ')} did not start.`, { hint: `read ${role.logFile} for the cause.` });
}

/** Stops the role's process (SIGTERM, then SIGKILL after `graceMs`); false when none ran. */
export async function stopRole(ctx: ClusterContext, role: ProcessRole, graceMs = 10_000): Promise<boolean> {
  const pid = livePid(ctx, role);
  if (pid === null) return false;
  await stopPid(pid, graceMs);
  fs.rmSync(role.pidFile, { force: true });
  return true;
}

export async function stopPid(pid: number, graceMs: number): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!alive(pid)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone meanwhile
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !fs.readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
}

/** The daemon's pid when it runs, else null. */
export function daemonPid(ctx: ClusterContext): number | null {
  return livePid(ctx, daemonRole(ctx));
}

/** Stops the daemon (SIGTERM, then SIGKILL after a grace period). */
export function stopDaemon(ctx: ClusterContext): Promise<boolean> {
  return stopRole(ctx, daemonRole(ctx));
}
