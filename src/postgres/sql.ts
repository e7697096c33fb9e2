import pg from 'pg';
import { PgmError } from '../errors.js';

export interface SqlTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database?: string;
  /** pgmaestro's own session writes even where applications may not (a query node runs default_transaction_read_only = on). */
  readonly writable?: boolean;
}

/**
 * Runs `fn` with a connected client and always closes it. Connection and
 * statement timeouts are short: the caller decides what a slow node means.
 */
export async function withClient<T>(t: SqlTarget, fn: (c: pg.Client) => Promise<T>, timeoutMs = 5000): Promise<T> {
  const client = new pg.Client({
    host: t.host,
    port: t.port,
    user: t.user,
    password: t.password,
    database: t.database ?? 'postgres',
    connectionTimeoutMillis: timeoutMs,
    statement_timeout: timeoutMs * 6,
    application_name: 'pgmaestro',
    // pgmaestro's own writes (roles, heartbeats) must never wait for a synchronous standby
    options: `-c synchronous_commit=local${t.writable ? ' -c default_transaction_read_only=off' : ''}`,
  });
  client.on('error', () => undefined); // a dropped connection surfaces on the pending query instead
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw new PgmError('postgres.query_failed', `cannot connect to PostgreSQL at ${t.host}:${t.port}: ${(err as Error).message}.`, {
      hint: 'check that the node runs (pgmaestro status) and that pg_hba.conf allows this address.',
      cause: err,
    });
  }
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export function quoteIdent(name: string): string {
  return '"' + name.replace(/"/g, '""') + '"';
}

export function quoteLiteral(value: string): string {
  return "'" + value.replace(/'/g, "''") + "'";
}
