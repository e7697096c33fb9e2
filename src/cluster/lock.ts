import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PgmError } from '../errors.js';
import { writeFileAtomic } from '../util/fsx.js';

/**
 * Two locks keep concurrent commands apart:
 * - `cluster`: held by what changes the cluster (`up`, `down`, `switchover`,
 *   `failover`, `rejoin`, `restore --node`, `restart`, a cold backup, and the
 *   daemon's own restarts, fences and promotions);
 * - `repository`: held by what writes the repository (`backup …`, `expire`,
 *   the scheduler). The WAL archiver only adds segments and takes neither.
 * When both are needed, `cluster` is taken first. Read-only commands take none.
 */
export type LockKind = 'cluster' | 'repository';

export interface LockHolder {
  /** What holds it, as a user would type it: `pgmaestro up`, `daemon: failover`. */
  readonly command: string;
  readonly pid: number;
  readonly host: string;
  readonly since: string;
}

export interface HeldLock {
  readonly kind: LockKind;
  /** Releases the lock; idempotent. */
  release(): Promise<void>;
}

/**
 * How locks are taken. `acquire` returns only once the lock is held; with
 * `waitMs` null it fails at once when another holds it, else it waits that
 * long (Infinity: for ever). The failure is a PgmError 'busy' naming the holder.
 * A holder that dies, even by SIGKILL, releases its locks at once.
 */
export interface LockManager {
  acquire(kind: LockKind, command: string, waitMs: number | null): Promise<HeldLock>;
  /** Who holds `kind` now, or null. */
  holder(kind: LockKind): Promise<LockHolder | null>;
}

/**
 * Kernel file locks (flock) held by a small `flock` child of the locking
 * process: the child waits on a pipe from its parent, so the lock lives
 * exactly as long as the parent does. The lock files are runtime files
 * (/run/pgmaestro for root), one per cluster home and kind,
 * so taking a lock creates nothing in the cluster's own directories.
 */
export class FileLocks implements LockManager {
  private readonly prefix: string;

  constructor(
    home: string,
    private readonly cluster: string,
  ) {
    this.prefix = path.join(runtimeDir(), `pgmaestro-${crypto.createHash('sha256').update(path.resolve(home)).digest('hex').slice(0, 16)}`);
  }

  private file(kind: LockKind): string {
    return `${this.prefix}-${kind}.lock`;
  }

  async acquire(kind: LockKind, command: string, waitMs: number | null): Promise<HeldLock> {
    const file = this.file(kind);
    fs.writeFileSync(file, '', { mode: 0o600, flag: 'a' });
    const timeout = waitMs === null ? ['--nonblock'] : Number.isFinite(waitMs) ? ['--timeout', (waitMs / 1000).toFixed(1)] : [];
    const child = spawn('flock', ['--exclusive', ...timeout, '--conflict-exit-code', '75', file, 'sh', '-c', 'echo held; exec cat >/dev/null'], {
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    const outcome = await new Promise<'held' | 'busy' | Error>((resolve) => {
      child.stdout!.once('data', () => resolve('held'));
      child.once('error', (err) => resolve(err));
      child.once('close', (code) => resolve(code === 75 ? 'busy' : new Error(`flock exited with status ${code}`)));
    });
    if (outcome === 'busy') throw busyError(kind, this.cluster, this.readHolder(kind), waitMs);
    if (outcome instanceof Error) {
      child.kill('SIGKILL');
      throw new PgmError('tool.missing', `cannot take the ${kind} lock ${file}: ${outcome.message}.`, {
        hint: 'pgmaestro needs flock(1) from util-linux (Debian: apt-get install util-linux).',
        cause: outcome,
      });
    }
    const holder: LockHolder = { command, pid: process.pid, host: os.hostname(), since: new Date().toISOString() };
    writeFileAtomic(`${file}.json`, JSON.stringify(holder) + '\n', 0o644);
    // The lock must not keep this process alive, nor outlive it.
    unrefChild(child);
    let released = false;
    return {
      kind,
      release: async () => {
        if (released) return;
        released = true;
        // wait for the holder to exit (the lock is then free); ref'd, so this wait keeps the process alive
        child.ref();
        const gone = new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
        child.stdin!.end();
        await gone;
      },
    };
  }

  async holder(kind: LockKind): Promise<LockHolder | null> {
    return this.readHolder(kind);
  }

  private readHolder(kind: LockKind): LockHolder | null {
    try {
      return JSON.parse(fs.readFileSync(`${this.file(kind)}.json`, 'utf8')) as LockHolder;
    } catch {
      return null;
    }
  }
}

/** The refusal of a busy lock, naming its holder: the same sentence whatever keeps the locks. */
export function busyError(kind: LockKind, cluster: string, h: LockHolder | null, waitMs: number | null): PgmError {
  const who = h ? `\`${h.command}\` (pid ${h.pid} on ${h.host}) has held it since ${h.since}` : 'another pgmaestro command holds it';
  const what = kind === 'cluster' ? `the cluster ${cluster}` : `the backup repository of ${cluster}`;
  return new PgmError('busy', `${what} is busy${waitMs !== null ? ` (waited ${formatWait(waitMs)})` : ''}: ${who}.`, {
    hint: waitMs === null ? 'wait for it to finish, or run this command again with --wait (or --wait=10m) to wait its turn.' : 'let it finish, or wait longer with --wait=DURATION.',
    data: { kind, holder: h },
  });
}

/** Root's runtime directory /run/pgmaestro (no other user can plant a lock there), else the user's own runtime or temporary directory. */
function runtimeDir(): string {
  if (process.getuid?.() === 0) {
    try {
      fs.mkdirSync('/run/pgmaestro', { recursive: true, mode: 0o755 });
      return '/run/pgmaestro';
    } catch {
      // no /run: fall through
    }
  }
  return process.env.XDG_RUNTIME_DIR && fs.existsSync(process.env.XDG_RUNTIME_DIR) ? process.env.XDG_RUNTIME_DIR : os.tmpdir();
}

function unrefChild(child: ChildProcess): void {
  child.unref();
  for (const s of [child.stdin, child.stdout]) (s as unknown as { unref?: () => void } | null)?.unref?.();
}

function formatWait(ms: number): string {
  return ms >= 60_000 ? `${(ms / 60_000).toFixed(ms % 60_000 === 0 ? 0 : 1)} min` : `${(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1)} s`;
}

/** `--wait` as commander gives it: absent (null: fail at once), bare (for ever), or a duration such as 30s, 10m, 1h. */
export function parseWait(value: string | boolean | undefined): number | null {
  if (value === undefined || value === false) return null;
  if (value === true) return Infinity;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value);
  if (!m) throw new PgmError('usage', `--wait=${value} is not a duration.`, { hint: 'use --wait alone (wait for ever) or --wait=DURATION such as 30s, 10m or 1h.' });
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
}

/** Runs `fn` holding the given locks, taken in order (cluster before repository), released in reverse, also on failure. */
export async function withLocks<T>(locks: LockManager, kinds: readonly LockKind[], command: string, waitMs: number | null, fn: () => Promise<T>): Promise<T> {
  const held: HeldLock[] = [];
  try {
    for (const k of [...kinds].sort((a, b) => (a === b ? 0 : a === 'cluster' ? -1 : 1))) held.push(await locks.acquire(k, command, waitMs));
    return await fn();
  } finally {
    for (const h of held.reverse()) await h.release();
  }
}
