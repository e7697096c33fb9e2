import type pg from 'pg';
import { PgmError } from '../errors.js';

/**
 * The logical slot of a subscription, made by pgmaestro on the primary
 * (not by CREATE SUBSCRIPTION) for two reasons: CREATE SUBSCRIPTION on an
 * existing slot may run inside the schema copy's transaction, so a failure
 * leaves no table behind; and on PostgreSQL 17+ the slot is a failover slot
 * whatever the subscriber's version, so a PostgreSQL 15 subscriber of a 17+
 * cluster survives a failover too. The slot is named after the subscription.
 */

export interface SlotRow {
  readonly slot_type: string;
  readonly database: string | null;
  readonly active: boolean;
  readonly active_pid: number | null;
  readonly failover: boolean | null;
}

/** Reads the slot (null when absent). `c` is on the primary. */
export async function readSlot(c: pg.Client, name: string, major: number): Promise<SlotRow | null> {
  const r = await c.query<SlotRow>(
    `SELECT slot_type, database, active, active_pid, ${major >= 17 ? 'failover' : 'NULL::bool AS failover'} FROM pg_replication_slots WHERE slot_name = $1`,
    [name],
  );
  return r.rows[0] ?? null;
}

/**
 * Makes a fresh logical slot `name` in the database `c` is connected to.
 * An inactive leftover of the same name (an earlier apply that stopped
 * half-way, a subscription dropped without its slot) is replaced; one in
 * use, or a physical slot of that name, is refused. Returns only once the
 * slot exists (creating it waits for running transactions to end).
 */
export async function createSubscriptionSlot(c: pg.Client, name: string, database: string, major: number, primary: string): Promise<void> {
  const existing = await readSlot(c, name, major);
  if (existing) {
    if (existing.slot_type !== 'logical' || existing.database !== database) {
      throw new PgmError('logical.refused', `a ${existing.slot_type} replication slot named ${name}${existing.database ? ` (database ${existing.database})` : ''} exists on ${primary}, where subscription ${name} needs its own.`, {
        hint: `drop it there (SELECT pg_drop_replication_slot('${name}')) if nothing uses it, or name the subscription differently.`,
      });
    }
    if (existing.active) {
      throw new PgmError('logical.refused', `the replication slot ${name} on ${primary} is in use by process ${existing.active_pid}, so subscription ${name} cannot take it.`, {
        hint: 'another subscriber streams from it: drop that subscription first, or name this one differently.',
      });
    }
    await c.query('SELECT pg_drop_replication_slot($1)', [name]);
  }
  if (major >= 17) await c.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput', false, false, true)", [name]);
  else await c.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput', false, false)", [name]);
}

/** Drops the slot when it exists and nothing streams from it; says whether it did. */
export async function dropSlotIfIdle(c: pg.Client, name: string): Promise<boolean> {
  const r = await c.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active', [name]);
  return (r.rowCount ?? 0) > 0;
}
