import { qualified, type ColumnDef, type TableDef } from './catalog-types.js';
import { columnDef, qn, q, type Refusal } from './ddl.js';

/**
 * Drift, pure: how a table on the subscriber differs from what the publisher
 * sends. Additive differences (a column added on the publisher) are fixed
 * by `logical apply`; the others are refused with a sentence naming table
 * and column, since changing them could lose data on the subscriber.
 */

export type DriftItem =
  | { readonly kind: 'missing_column'; readonly table: string; readonly column: ColumnDef }
  | { readonly kind: 'type_mismatch'; readonly table: string; readonly column: string; readonly publisher: string; readonly subscriber: string }
  | { readonly kind: 'extra_not_null'; readonly table: string; readonly column: string }
  | { readonly kind: 'no_identity'; readonly table: string };

const WIDENINGS: Readonly<Record<string, readonly string[]>> = {
  smallint: ['integer', 'bigint', 'numeric'],
  integer: ['bigint', 'numeric'],
  bigint: ['numeric'],
  real: ['double precision'],
  'character varying': ['text'],
  character: ['text'],
};

/**
 * Whether values of the publisher's `pub` type always load into the
 * subscriber's `sub` type. Rows travel as text, so a text column takes
 * anything, a wider number takes a narrower one and a longer varchar a
 * shorter one; anything else could fail (or change meaning) on the subscriber.
 */
export function typeAccepts(sub: string, pub: string): boolean {
  if (sub === pub || sub === 'text') return true;
  const base = (t: string) => t.replace(/\(.*\)$/, '').trim();
  const len = (t: string) => {
    const m = /\((\d+)\)$/.exec(t);
    return m ? Number(m[1]) : null;
  };
  if (base(sub) === base(pub) && ['character varying', 'numeric'].includes(base(sub))) {
    const ls = len(sub);
    const lp = len(pub);
    if (ls === null) return true; // unbounded takes any bound
    if (lp === null) return false;
    return base(sub) === 'character varying' ? ls >= lp : false;
  }
  return (WIDENINGS[base(pub)] ?? []).includes(base(sub)) || (WIDENINGS[base(pub)] ?? []).includes(sub);
}

function hasIdentity(t: TableDef): boolean {
  const ri = t.replicaIdentity;
  if (ri.kind === 'full' || ri.kind === 'index') return true;
  if (ri.kind === 'nothing') return false;
  return t.constraints.some((k) => k.kind === 'p');
}

/** What differs between the subscriber's table `sub` and what the publisher sends (`pub`, already cut to its column list). */
export function tableDrift(pub: TableDef, sub: TableDef, publishesChanges: boolean): DriftItem[] {
  const out: DriftItem[] = [];
  const table = qualified(pub);
  const theirs = new Map(sub.columns.map((c) => [c.name, c]));
  for (const c of pub.columns) {
    const s = theirs.get(c.name);
    if (!s) {
      if (!c.generated) out.push({ kind: 'missing_column', table, column: c });
      continue;
    }
    if (!c.generated && !s.generated && !typeAccepts(s.type, c.type)) out.push({ kind: 'type_mismatch', table, column: c.name, publisher: c.type, subscriber: s.type });
  }
  const sent = new Set(pub.columns.filter((c) => !c.generated).map((c) => c.name));
  for (const s of sub.columns) {
    if (!sent.has(s.name) && s.notNull && s.default === null && !s.identity && !s.generated) out.push({ kind: 'extra_not_null', table, column: s.name });
  }
  if (publishesChanges && !hasIdentity(sub) && !sub.partitioned) out.push({ kind: 'no_identity', table });
  return out;
}

/** Whether `logical apply` fixes the item by itself. */
export function additive(d: DriftItem): boolean {
  return d.kind === 'missing_column';
}

/** One sentence for a drift item found on `where` (e.g. `query1 (shop)`). */
export function describeDrift(d: DriftItem, where: string, primary: string): string {
  switch (d.kind) {
    case 'missing_column':
      return `${d.table}.${d.column.name} (${d.column.type}) exists on ${primary} but not on ${where}`;
    case 'type_mismatch':
      return `${d.table}.${d.column} is ${d.subscriber} on ${where} but ${d.publisher} on ${primary}`;
    case 'extra_not_null':
      return `${d.table}.${d.column} on ${where} is NOT NULL without a default, and ${primary} does not send it: every replicated insert would fail`;
    case 'no_identity':
      return `${d.table} on ${where} has no primary key or replica identity: updates and deletes from ${primary} cannot be applied`;
  }
}

/** The refusal for a drift item apply does not fix. */
export function driftRefusal(d: DriftItem, where: string, primary: string): Refusal {
  const sentence = describeDrift(d, where, primary);
  switch (d.kind) {
    case 'type_mismatch':
      return { message: `${sentence}; rows from ${primary} could fail to load or change meaning there`, hint: `make ${d.table}.${d.column} on ${where} ${d.publisher} (or a type that takes every value of it, such as text), or drop that table there so that apply copies it afresh.` };
    case 'extra_not_null':
      return { message: sentence, hint: `drop NOT NULL or give ${d.table}.${d.column} a default on ${where}.` };
    case 'no_identity':
      return { message: sentence, hint: `add the primary key of ${primary}'s table to ${d.table} on ${where}, or drop that table there so that apply copies it afresh.` };
    default:
      return { message: sentence, hint: 'run pgmaestro logical apply.' };
  }
}

/**
 * The statement that fixes an additive item. A column added NOT NULL
 * without a default is added nullable: rows copied before it existed have
 * no value for it on the subscriber (they get one when they change on the primary).
 */
export function driftFix(d: Extract<DriftItem, { kind: 'missing_column' }>, t: { schema: string; name: string }): { sql: string; note: string | null } {
  const c = d.column;
  const relaxed = c.notNull && c.default === null && !c.identity;
  const def = columnDef(relaxed ? { ...c, notNull: false } : c);
  return {
    sql: `ALTER TABLE ${qn(t)} ADD COLUMN ${def}`,
    note: relaxed ? `${d.table}.${q(c.name).replace(/"/g, '')} added without NOT NULL: rows copied before it existed have no value there until they change on the primary` : null,
  };
}
