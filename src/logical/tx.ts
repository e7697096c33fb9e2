import type pg from 'pg';
import { PgmError } from '../errors.js';

/**
 * Statements run together: in one transaction (`inTransaction`), or in one
 * that is always rolled back (`rehearse`) — PostgreSQL itself then checks
 * every statement (a row filter on a missing column, an extension the
 * server lacks, DDL an older server does not know) while nothing changes,
 * so `logical apply` can refuse before it has created anything.
 */

/** What PostgreSQL said about one statement: its message and, where it gave one, its detail. */
export function pgSays(err: unknown): string {
  const e = err as { message?: string; detail?: string };
  return `${(e.message ?? String(err)).replace(/\.$/, '')}${e.detail ? ` (${e.detail.replace(/\.$/, '')})` : ''}`;
}

export async function inTransaction(c: pg.Client, statements: readonly string[], onError: (sql: string, err: unknown) => PgmError): Promise<void> {
  if (statements.length === 0) return;
  await c.query('BEGIN');
  for (const sql of statements) {
    try {
      await c.query(sql);
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw onError(sql, err);
    }
  }
  await c.query('COMMIT');
}

/** Runs `statements` in a transaction that is rolled back; returns the first failure (statement and PostgreSQL's words), or null. */
export async function rehearse(c: pg.Client, statements: readonly string[]): Promise<{ sql: string; said: string } | null> {
  if (statements.length === 0) return null;
  await c.query('BEGIN');
  try {
    for (const sql of statements) {
      try {
        await c.query(sql);
      } catch (err) {
        return { sql, said: pgSays(err) };
      }
    }
    return null;
  } finally {
    await c.query('ROLLBACK').catch(() => undefined);
  }
}
