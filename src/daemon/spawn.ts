import fs from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClusterContext } from '../cluster/context.js';
import { PgmError } from '../errors.js';
import { portFree } from '../cluster/ports.js';

const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The daemon's pid when its pid file names a live pgmaestro daemon process, else null. */
export function daemonPid(ctx: ClusterContext): number | null {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(ctx.paths.daemonPid, 'utf8').trim());
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (!cmd.includes('daemon') || !cmd.some((a) => a === ctx.cfg.file)) return null;
  } catch {
    return null;
  }
  return pid;
}

/**
 * Starts the cluster's daemon in the background unless one already runs.
 * It is detached: it survives the CLI, and the PostgreSQL processes survive it.
 */
export async function ensureDaemon(ctx: ClusterContext): Promise<{ pid: number; started: boolean }> {
  const existing = daemonPid(ctx);
  if (existing !== null) return { pid: existing, started: false };
  const { host, port } = ctx.cfg.endpoint;
  if (!(await portFree(host, port))) {
    throw new PgmError('port.in_use', `port ${port} on ${host}, where the daemon's read-write endpoint listens, is already in use by another program.`, {
      hint: `stop that program, or set endpoints.rw to another host:port in ${ctx.cfg.file}.`,
    });
  }
  if (ctx.cfg.console && !(await portFree(ctx.cfg.console.host, ctx.cfg.console.port))) {
    const c = ctx.cfg.console;
    throw new PgmError('port.in_use', `port ${c.port} on ${c.host}, where the daemon's web console listens, is already in use by another program.`, {
      hint: `stop that program, or set endpoints.console to another host:port (or off) in ${ctx.cfg.file}.`,
    });
  }
  const out = fs.openSync(ctx.paths.daemonLog, 'a', 0o600);
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1], 'daemon', '-c', ctx.cfg.file], {
    detached: true,
    stdio: ['ignore', out, out],
    env: process.env,
    cwd: PACKAGE_ROOT, // loaders named in execArgv (tsx in development) resolve from here
  });
  fs.closeSync(out);
  child.unref();
  // The daemon writes its pid file once it is running; wait for that.
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const pid = daemonPid(ctx);
    if (pid !== null) return { pid, started: true };
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new PgmError('daemon.failed', `the pgmaestro daemon did not start.`, { hint: `read ${ctx.paths.daemonLog} for the cause.` });
}

/** Stops the daemon (SIGTERM, then SIGKILL after a grace period). */
export async function stopDaemon(ctx: ClusterContext): Promise<boolean> {
  const pid = daemonPid(ctx);
  if (pid === null) return false;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  process.kill(pid, 'SIGKILL');
  return true;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !fs.readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
}
