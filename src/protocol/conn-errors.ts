import { PgmError } from '../errors.js';
import type { NoticeFields } from './messages.js';

/**
 * The errors a connection raises, in one place so their wording stays
 * consistent: one sentence naming host:port, a hint, and the details in `data`.
 */

interface Endpoint {
  host: string;
  port: number;
}

export function addressOf(e: Endpoint): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

/** SQLSTATEs of class 28 (invalid authorization) mean the credentials or pg_hba.conf are wrong. */
export function startupError(e: Endpoint, user: string, fields: NoticeFields): PgmError {
  const sqlstate = fields.C ?? '';
  const data = { host: e.host, port: e.port, sqlstate, severity: fields.V ?? fields.S, detail: fields.D };
  if (sqlstate.startsWith('28')) {
    return new PgmError('protocol.auth_failed', `PostgreSQL at ${addressOf(e)} refused user "${user}": ${trimDot(fields.M)}.`, {
      hint:
        'Check the password, that the role exists with LOGIN (and REPLICATION for replication connections), ' +
        'and that pg_hba.conf has a matching line (database "replication" for physical replication).',
      data,
    });
  }
  return new PgmError('protocol.server_error', `PostgreSQL at ${addressOf(e)} refused the connection: ${trimDot(fields.M)}.`, {
    hint: fields.H ?? hintFor(sqlstate),
    data,
  });
}

export function authUnsupported(e: Endpoint, method: string): PgmError {
  return new PgmError('protocol.auth_failed', `PostgreSQL at ${addressOf(e)} asked for ${method} authentication, which pgmaestro does not support.`, {
    hint: 'Use scram-sha-256 (or trust for local testing) in pg_hba.conf for this connection, and set password_encryption = scram-sha-256.',
    data: { host: e.host, port: e.port, method },
  });
}

export function scramFailure(e: Endpoint, cause: PgmError): PgmError {
  return new PgmError('protocol.auth_failed', `Authentication to ${addressOf(e)} failed: ${trimDot(cause.message)}.`, {
    hint: cause.hint,
    cause,
    data: { host: e.host, port: e.port },
  });
}

export function serverError(e: Endpoint, fields: NoticeFields, sql: string | null): PgmError {
  const what = sql === null ? 'the running command' : JSON.stringify(sql.length > 80 ? sql.slice(0, 77) + '...' : sql);
  return new PgmError('protocol.server_error', `PostgreSQL at ${addressOf(e)} failed ${what}: ${trimDot(fields.M)}.`, {
    hint: fields.H ?? hintFor(fields.C ?? ''),
    data: {
      host: e.host,
      port: e.port,
      sqlstate: fields.C,
      severity: fields.V ?? fields.S,
      detail: fields.D,
      where: fields.W,
      query: sql,
    },
  });
}

export function unexpected(e: Endpoint, what: string): PgmError {
  return new PgmError('protocol.error', `PostgreSQL at ${addressOf(e)} sent ${what}, which pgmaestro did not expect.`, {
    hint: 'The connection was dropped; this is a pgmaestro bug or an unsupported server version.',
    data: { host: e.host, port: e.port },
  });
}

export function connectFailure(e: Endpoint, err: Error | 'timeout', timeoutMs = 0): PgmError {
  const addr = addressOf(e);
  if (err === 'timeout') {
    return new PgmError('protocol.error', `Connecting to PostgreSQL at ${addr} timed out after ${timeoutMs} ms.`, {
      hint: 'Check that the host is up and reachable (address, firewall) and that the server is not overloaded.',
      data: { host: e.host, port: e.port, errno: 'ETIMEDOUT' },
    });
  }
  const errno = (err as NodeJS.ErrnoException).code ?? '';
  const reason =
    errno === 'ECONNREFUSED' ? 'connection refused'
    : errno === 'ENOTFOUND' || errno === 'EAI_AGAIN' ? 'host name not found'
    : errno === 'EHOSTUNREACH' || errno === 'ENETUNREACH' ? 'host unreachable'
    : err.message;
  const hint =
    errno === 'ECONNREFUSED' ? 'Check that PostgreSQL is running and listens on that address and port (listen_addresses, port).'
    : errno === 'ENOTFOUND' || errno === 'EAI_AGAIN' ? 'Check the host name, or use an IP address.'
    : 'Check the address and the network path to the server.';
  return new PgmError('protocol.error', `Could not connect to PostgreSQL at ${addr}: ${reason}.`, {
    hint,
    cause: err,
    data: { host: e.host, port: e.port, errno },
  });
}

export function connectionLost(e: Endpoint, err?: Error): PgmError {
  const why = err ? `: ${trimDot(err.message)}` : '';
  return new PgmError('protocol.error', `The connection to PostgreSQL at ${addressOf(e)} was lost${why}.`, {
    hint: 'Check the PostgreSQL server log on that host (a restart, crash or wal_sender_timeout ends connections).',
    cause: err,
    data: { host: e.host, port: e.port, errno: (err as NodeJS.ErrnoException | undefined)?.code },
  });
}

export function connectionClosed(e: Endpoint): PgmError {
  return new PgmError('protocol.error', `The connection to PostgreSQL at ${addressOf(e)} is closed.`, {
    hint: 'Open a new connection; a closed connection cannot be reused.',
    data: { host: e.host, port: e.port },
  });
}

function hintFor(sqlstate: string): string {
  if (sqlstate === '57P03') return 'The server is starting up or shutting down; retry in a moment.';
  if (sqlstate === '53300') return 'Too many connections: raise max_connections / max_wal_senders or close idle clients.';
  if (sqlstate === '3D000') return 'Create the database or connect to an existing one.';
  return 'See the PostgreSQL server log for details.';
}

function trimDot(s: string | undefined): string {
  return (s ?? 'unknown error').replace(/\.\s*$/, '');
}
