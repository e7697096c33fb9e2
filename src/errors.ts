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
  | 'binaries.missing'
  | 'binaries.unsupported'
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

/** Exit statuses: 2 for bad input (config, usage, arguments), 1 for failures while working. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof PgmError) {
    if (err.code.startsWith('config.') || err.code === 'usage' || err.code === 'node.unknown' || err.code === 'certs.invalid' || err.code === 'dcs.config_mismatch') return 2;
    return 1;
  }
  return 1;
}

export function errorMessage(err: unknown): string {
  if (err instanceof PgmError) return err.render();
  if (err instanceof Error) return err.message;
  return String(err);
}
