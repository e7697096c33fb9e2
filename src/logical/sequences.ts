import type pg from 'pg';
import { adminTarget, currentPrimaryName, findNode, type ClusterContext } from '../cluster/context.js';
import type { Secrets } from '../cluster/secrets.js';
import type { SubscriptionConfig } from '../config/types.js';
import { PgmError } from '../errors.js';
import { withClient } from '../postgres/sql.js';
import { resolveScope } from './catalog.js';
import { onSubscriber, subscriberOf } from './subscriber.js';

/**
 * `logical sync-sequences`: PostgreSQL up to 18 replicates no sequence, so
 * a subscriber's identity and serial columns keep the values they had at
 * the copy. Before writes move to a subscriber, each sequence a replicated
 * column draws from gets the publisher's value (last_value, is_called). A
 * subscriber's sequence that is already further is left as it is: lowering
 * it could hand out a value twice.
 */

export interface SequenceSync {
  readonly subscription: string;
  /** schema.table.column */
  readonly column: string;
  readonly publisher: string;
  readonly subscriber: string | null;
  readonly from: string | null;
  readonly to: string | null;
  readonly outcome: 'set' | 'unchanged' | 'ahead' | 'missing';
}

interface SeqValue {
  readonly column: string;
  readonly seq: string;
  readonly last: string;
  readonly called: boolean;
}

/** The value of every sequence owned by a column of the tables `oids` (identity and serial). */
async function ownedSequences(c: pg.Client, oids: readonly number[]): Promise<SeqValue[]> {
  const r = await c.query<{ col: string; seq: string }>(
    `SELECT tn.nspname || '.' || t.relname || '.' || a.attname AS col, quote_ident(sn.nspname) || '.' || quote_ident(s.relname) AS seq
       FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' JOIN pg_namespace sn ON sn.oid = s.relnamespace
       JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace
       JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
      WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') AND d.refobjid = ANY($1::oid[])
      ORDER BY 1`,
    [oids],
  );
  const out: SeqValue[] = [];
  for (const x of r.rows) {
    const v = await c.query<{ last: string; called: boolean }>(`SELECT last_value::text AS last, is_called AS called FROM ${x.seq}`);
    out.push({ column: x.col, seq: x.seq, last: v.rows[0].last, called: v.rows[0].called });
  }
  return out;
}

/** Which value is further along: a called sequence at n has handed out n; an uncalled one n - 1. */
function position(last: string, called: boolean): bigint {
  return BigInt(last) - (called ? 0n : 1n);
}

export async function syncSequences(ctx: ClusterContext, secrets: Secrets, names: readonly string[]): Promise<SequenceSync[]> {
  const lg = ctx.cfg.logical!;
  for (const n of names) {
    if (!lg.subscriptions.some((s) => s.name === n)) {
      throw new PgmError('usage', `there is no subscription '${n}' in ${ctx.cfg.file}.`, { hint: `name one of: ${lg.subscriptions.map((s) => s.name).join(', ') || '(none declared)'}.` });
    }
  }
  const chosen = lg.subscriptions.filter((s) => names.length === 0 || names.includes(s.name));
  const primary = findNode(ctx.cfg, await currentPrimaryName(ctx));
  const out: SequenceSync[] = [];
  for (const s of chosen) out.push(...(await syncOne(ctx, secrets, s, primary.name)));
  return out;
}

async function syncOne(ctx: ClusterContext, secrets: Secrets, s: SubscriptionConfig, primaryName: string): Promise<SequenceSync[]> {
  const pub = ctx.cfg.logical!.publications.find((p) => p.name === s.publication)!;
  const primary = findNode(ctx.cfg, primaryName);
  const theirs = await withClient({ ...adminTarget(ctx, primary, secrets), database: pub.database }, async (c) => ownedSequences(c, (await resolveScope(c, pub.scope)).oids));
  const sub = subscriberOf(ctx, secrets, s);
  return onSubscriber(sub, s.database, async (c) => {
    const out: SequenceSync[] = [];
    for (const v of theirs) {
      const [schema, table, column] = v.column.split('.');
      const r = await c.query<{ seq: string | null }>('SELECT pg_get_serial_sequence($1, $2) AS seq', [`"${schema}"."${table}"`, column]).catch(() => ({ rows: [{ seq: null }] }));
      const seq = r.rows[0]?.seq ?? null;
      const base = { subscription: s.name, column: v.column, publisher: `${v.last}${v.called ? '' : ' (not yet used)'}`, subscriber: seq };
      if (!seq) {
        out.push({ ...base, from: null, to: null, outcome: 'missing' });
        continue;
      }
      const mine = (await c.query<{ last: string; called: boolean }>(`SELECT last_value::text AS last, is_called AS called FROM ${seq}`)).rows[0];
      const ahead = position(mine.last, mine.called) > position(v.last, v.called);
      const same = mine.last === v.last && mine.called === v.called;
      if (!ahead && !same) await c.query('SELECT setval($1::regclass, $2::bigint, $3)', [seq, v.last, v.called]);
      out.push({ ...base, from: mine.last, to: ahead || same ? mine.last : v.last, outcome: ahead ? 'ahead' : same ? 'unchanged' : 'set' });
    }
    return out;
  });
}

export function describeSequenceSync(x: SequenceSync, where: string): string {
  switch (x.outcome) {
    case 'set':
      return `${x.column} on ${where}: sequence ${x.subscriber} set to ${x.to} (was ${x.from}), as on the primary`;
    case 'unchanged':
      return `${x.column} on ${where}: sequence ${x.subscriber} already at ${x.to}, as on the primary`;
    case 'ahead':
      return `${x.column} on ${where}: sequence ${x.subscriber} is at ${x.from}, further than the primary's ${x.publisher}; left as it is`;
    case 'missing':
      return `${x.column} on ${where}: no sequence behind this column there; nothing to set`;
  }
}
