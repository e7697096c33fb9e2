import fs from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClusterContext } from '../cluster/context.js';
import { PgmError } from '../errors.js';
import { writeFileAtomic } from '../util/fsx.js';
import { LISTEN_ENV, LISTEN_FD, withoutListenEnv, type HeldSocket } from './listen.js';

const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIST_MAIN = path.join(PACKAGE_ROOT, 'dist', 'cli', 'main.js');

/**
 * How a detached pgmaestro process is started: with the compiled CLI
 * (dist/, what `npm ci` builds and what ships) whenever it is there and not
 * older than the sources, so long-running processes start fast (no
 * TypeScript compiled on the fly) and the tests exercise the shipped code;
 * otherwise (a development checkout edited since its last build) the way this
 * process was started, tsx on src. `scripts/test.mjs` rebuilds a stale dist/.
 */
export function childCommand(): { file: string; args: string[] } {
  const here = fileURLToPath(import.meta.url);
  if (!here.endsWith('.ts')) return { file: process.execPath, args: [...process.execArgv, process.argv[1]] };
  if (distIsFresh()) return { file: process.execPath, args: [DIST_MAIN] };
  return { file: process.execPath, args: [...process.execArgv, process.argv[1]] };
}

let fresh: boolean | null = null;
/** Whether dist/cli/main.js exists and no file under src/ is newer than it (checked once per process). */
export function distIsFresh(): boolean {
  if (fresh !== null) return fresh;
  let built: number;
  try {
    built = fs.statSync(DIST_MAIN).mtimeMs;
  } catch {
    return (fresh = false);
  }
  const newest = (dir: string): number => {
    let m = 0;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      m = Math.max(m, e.isDirectory() ? newest(p) : fs.statSync(p).mtimeMs);
    }
    return m;
  };
  try {
    fresh = newest(path.join(PACKAGE_ROOT, 'src')) <= built;
  } catch {
    fresh = true; // no sources next to dist/: an installed package
  }
  return fresh;
}

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

/** The supervisor's idle spare (see spare.ts); its pid file is written by the supervisor. */
export function spareRole(ctx: ClusterContext): ProcessRole {
  return { argv: ['spare'], pidFile: path.join(ctx.paths.stateDir, 'spare.pid'), logFile: path.join(ctx.paths.logsDir, 'spare.log') };
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
    // a spare that took the role (see spare.ts) keeps the command line it was started with
    if (!(role.argv.every((w) => cmd.includes(w)) || cmd.includes('spare')) || !cmd.includes(ctx.cfg.file)) return null;
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

export interface DetachedOptions {
  readonly timeoutMs?: number;
  /** A listening socket the process gets as descriptor 3 (see listen.ts). */
  readonly listen?: HeldSocket | null;
  /** Called when the process exits (the starter is its parent until then). */
  readonly onExit?: () => void;
}

/**
 * Spawns `pgmaestro <args> -c FILE` detached (own session, output appended
 * to `logFile`): it survives its parent, and the PostgreSQL processes survive
 * it. `sockets` become its descriptors 3, 4, …; `stdin: 'pipe'` gives the
 * parent a pipe to it (a spare waits on it), else stdin is /dev/null.
 */
export function spawnPgmaestro(ctx: ClusterContext, args: readonly string[], opts: { logFile: string; sockets?: readonly HeldSocket[]; stdin?: 'pipe' | 'ignore'; env?: NodeJS.ProcessEnv }): ChildProcess {
  const out = fs.openSync(opts.logFile, 'a', 0o600);
  const cmd = childCommand();
  try {
    const child = spawn(cmd.file, [...cmd.args, ...args, '-c', ctx.cfg.file], {
      detached: true,
      stdio: [opts.stdin ?? 'ignore', out, out, ...(opts.sockets ?? []).map((s) => s.handle as never)],
      env: { ...withoutListenEnv(process.env), ...opts.env },
      cwd: PACKAGE_ROOT, // loaders named in execArgv (tsx in development) resolve from here
    });
    child.unref();
    return child;
  } finally {
    fs.closeSync(out);
  }
}

/**
 * Starts `pgmaestro <args> -c FILE` detached for `role`. Resolves with its
 * pid once its pid file names it, or throws with the log to read.
 */
export async function startDetached(ctx: ClusterContext, role: ProcessRole, args: readonly string[], opts: DetachedOptions = {}): Promise<number> {
  const child = spawnPgmaestro(ctx, args, {
    logFile: role.logFile,
    sockets: opts.listen ? [opts.listen] : [],
    env: opts.listen ? { [LISTEN_ENV]: `${LISTEN_FD} ${opts.listen.address.host}:${opts.listen.address.port}` } : {},
  });
  if (opts.onExit) child.once('exit', opts.onExit);
  return awaitRole(ctx, role, child, `pgmaestro ${args.join(' ')}`, opts.timeoutMs ?? 15_000);
}

/** Resolves with `child`'s pid once `role`'s pid file names it (another live process of the role wins a race); else kills it and throws. */
export async function awaitRole(ctx: ClusterContext, role: ProcessRole, child: ChildProcess, what: string, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const pid = livePid(ctx, role);
    if (pid !== null && pid === child.pid) return pid;
    if (child.exitCode !== null || child.signalCode !== null) {
      // Lost a race with another starter: theirs counts.
      const other = livePid(ctx, role);
      if (other !== null) return other;
      break;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  throw new PgmError('daemon.failed', `${what} did not start.`, { hint: `read ${role.logFile} for the cause.` });
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
