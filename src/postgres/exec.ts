import { spawn } from 'node:child_process';
import { PgmError } from '../errors.js';

export interface RunAs {
  /** Set when pgmaestro runs as root: the unprivileged user PostgreSQL runs as. */
  readonly uid?: number;
  readonly gid?: number;
  readonly name: string;
  readonly home?: string;
  /** Lab mode: run inside this network namespace (through `ip netns exec` and setpriv). */
  readonly netns?: string;
}

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a program to completion, as `user` when given, and collects its output.
 * Never goes through a shell, so no argument is ever interpreted; passwords are
 * never passed as arguments (they would show in the process list).
 */
export function run(cmd: string, args: readonly string[], opts: { user?: RunAs; env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', LANG: 'C', ...opts.env };
    if (opts.user?.home) env.HOME = opts.user.home;
    const ns = opts.user?.netns;
    const u = opts.user;
    const [file, argv] =
      ns && u?.uid !== undefined && u.gid !== undefined
        ? ['ip', ['netns', 'exec', ns, 'setpriv', `--reuid=${u.uid}`, `--regid=${u.gid}`, '--clear-groups', '--', cmd, ...args]]
        : [cmd, args];
    const child = spawn(file, argv, {
      uid: ns ? undefined : opts.user?.uid,
      gid: ns ? undefined : opts.user?.gid,
      env,
      cwd: opts.cwd ?? '/',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: opts.timeoutMs,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err) => reject(spawnFailure(cmd, opts.user, err as NodeJS.ErrnoException)));
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
  });
}

/** A program that could not be started at all, as one sentence. */
function spawnFailure(cmd: string, user: RunAs | undefined, err: NodeJS.ErrnoException): PgmError {
  const as = user?.uid !== undefined ? ` as the OS user '${user.name}'` : '';
  if (err.code === 'ENOENT') {
    return new PgmError('tool.missing', `cannot run ${cmd}${as}: no such program.`, { hint: `install it, or check the path (postgres.bin_dir for PostgreSQL's own programs).`, cause: err });
  }
  if (err.code === 'EACCES') {
    return new PgmError('binaries.unreachable', `cannot run ${cmd}${as}: permission denied.`, {
      hint: `make the program and every directory above it reachable by ${user?.name ?? 'this user'} (chmod o+x), or install it elsewhere.`,
      cause: err,
    });
  }
  return new PgmError('tool.failed', `cannot run ${cmd}${as}: ${err.message}.`, { hint: 'check that the program exists and this machine has resources left (processes, memory).', cause: err });
}
