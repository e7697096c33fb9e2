/**
 * One rooted error tree. Every error pgmaestro raises on purpose is a
 * PgmError with a stable code, a one-sentence message saying what is wrong,
 * and a hint saying how to fix it. The CLI prints `message HINT: hint` and
 * maps the code's class to an exit status in one place (src/cli/main.ts).
 */
export type ErrorCode =
  | 'config.syntax'
  | 'config.invalid'
  | 'config.not_found'
  | 'config.exists'
  | 'node.unknown'
  | 'node.down'
  | 'port.in_use'
  | 'data_dir.foreign'
  | 'data_dir.not_empty'
  | 'data_dir.inaccessible'
  | 'path.unreachable'
  | 'binaries.missing'
  | 'binaries.unsupported'
  | 'binaries.unreachable'
  | 'os_user.missing'
  | 'postgres.start_failed'
  | 'postgres.stop_failed'
  | 'postgres.query_failed'
  | 'protocol.error'
  | 'protocol.auth_failed'
  | 'protocol.server_error'
  | 'clone.failed'
  | 'cluster.unhealthy'
  | 'cluster.state'
  | 'dcs.conflict'
  | 'dcs.unavailable'
  | 'dcs.config_mismatch'
  | 'agent.unreachable'
  | 'agent.refused'
  | 'certs.invalid'
  | 'lease.lost'
  | 'daemon.failed'
  | 'repository.write_failed'
  | 'repository.invalid'
  | 'backup.unknown'
  | 'backup.failed'
  | 'backup.unsupported'
  | 'backup.corrupt'
  | 'restore.out_of_range'
  | 'restore.failed'
  | 'tool.missing'
  | 'tool.failed'
  | 'system.error'
  | 'internal'
  | 'busy'
  | 'usage';

export class PgmError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly data: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, opts: { hint?: string; cause?: unknown; data?: Record<string, unknown> } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'PgmError';
    this.code = code;
    this.hint = opts.hint;
    this.data = opts.data ?? {};
  }

  /** The single line the CLI prints. */
  render(): string {
    return this.hint ? `${this.message} HINT: ${this.hint}` : this.message;
  }
}

/**
 * Bad input: the arguments, the configuration, or a target that is not
 * acceptable (an unknown node or backup, a port taken, a directory pgmaestro
 * may not use, binaries it cannot run, a request this cluster cannot serve).
 */
const BAD_INPUT: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'usage',
  'node.unknown',
  'certs.invalid',
  'dcs.config_mismatch',
  'port.in_use',
  'data_dir.foreign',
  'data_dir.not_empty',
  'path.unreachable',
  'binaries.missing',
  'binaries.unsupported',
  'binaries.unreachable',
  'os_user.missing',
  'tool.missing',
  'backup.unknown',
  'backup.unsupported',
  'restore.out_of_range',
]);

/** Exit statuses (README, "Exit status"): 2 for bad input, 1 for failures while working. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof PgmError) return err.code.startsWith('config.') || BAD_INPUT.has(err.code) ? 2 : 1;
  return 1;
}

/** The one sentence for any error; a Node system error (EACCES, ENOENT, EADDRINUSE, …) becomes one of ours. */
export function errorMessage(err: unknown): string {
  if (err instanceof PgmError) return err.render();
  return asPgmError(err).render();
}

const SYSTEM_ERRORS: Record<string, [string, string]> = {
  EACCES: ['permission denied', 'run pgmaestro as a user allowed to do this (root, or the owner of the cluster directory), or fix the permissions.'],
  EPERM: ['operation not permitted', 'run pgmaestro as root or as the owner of the cluster directory.'],
  ENOENT: ['no such file or directory', 'check the path (and the configuration that names it).'],
  ENOSPC: ['no space left on the device', 'free some space on that file system, then run the command again.'],
  EROFS: ['the file system is read-only', 'use a writable location.'],
  EADDRINUSE: ['the address is already in use', 'stop the program that uses it, or configure another port.'],
  EADDRNOTAVAIL: ['the address is not available on this machine', 'use an address this machine has (ip addr).'],
  ECONNREFUSED: ['the connection was refused', 'check that the server there runs and listens on that address.'],
  ETIMEDOUT: ['the connection timed out', 'check the network path to that address.'],
  EMFILE: ['too many open files', 'raise the open-files limit (ulimit -n) and run the command again.'],
  ENOTDIR: ['a part of the path is not a directory', 'check the path.'],
  EISDIR: ['it is a directory', 'name a file instead.'],
  ENOTEMPTY: ['the directory is not empty', 'empty it or choose another one.'],
  EEXIST: ['it already exists', 'remove it or choose another name.'],
};

/** Wraps anything thrown into a PgmError, so the user always gets one sentence and a hint. */
export function asPgmError(err: unknown): PgmError {
  if (err instanceof PgmError) return err;
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number; dest?: string };
  if (e && typeof e === 'object' && typeof e.code === 'string' && SYSTEM_ERRORS[e.code]) {
    const [what, hint] = SYSTEM_ERRORS[e.code];
    const target = e.path ?? (e.address !== undefined ? `${e.address}${e.port !== undefined ? `:${e.port}` : ''}` : undefined);
    const op = e.syscall ? `${e.syscall}${target ? ` ${target}` : ''}` : (target ?? 'an operation');
    return new PgmError('system.error', `${op} failed: ${what}.`, { hint, cause: err, data: { errno: e.code } });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new PgmError('internal', `unexpected error: ${message.replace(/\s+/g, ' ').replace(/\.$/, '')}.`, {
    hint: 'this is a defect in pgmaestro: run the command again with PGMAESTRO_DEBUG=1 for details and report them.',
    cause: err,
  });
}
