import { quoteIdent, quoteLiteral } from '../postgres/sql.js';
import { qualified, type CatalogSnapshot, type ColumnDef, type QualifiedName, type SequenceDef, type TableDef, type TypeDef } from './catalog-types.js';

/**
 * Schema copy, pure: from the publisher's table definitions to the DDL that
 * creates them on a subscriber. Logical replication copies rows, never
 * definitions, and the embedded PostgreSQL has no pg_dump: this is how a
 * subscriber gets its tables — columns, types, defaults, identity,
 * generated columns, NOT NULL, primary key, unique, check, exclusion and
 * foreign-key constraints, partitioning, replica identity, the sequences
 * serial columns draw from, the enums and domains the columns use and the
 * extensions they need. Indexes that no constraint makes are the
 * publisher's own business and are not copied (a query node declares its own).
 */

export interface Refusal {
  /** One sentence: what is wrong, naming the object. */
  readonly message: string;
  readonly hint: string;
}

/** What is on the subscriber already, by qualified name. */
export interface SubscriberObjects {
  readonly tables: ReadonlySet<string>;
  readonly types: ReadonlySet<string>;
  readonly sequences: ReadonlySet<string>;
  /** User functions (`schema.name(args)`) that exist there. */
  readonly functions: ReadonlySet<string>;
}

export interface SchemaCopy {
  /** Statements in order, to run in one transaction. */
  readonly statements: readonly string[];
  /** Tables the statements create. */
  readonly created: readonly QualifiedName[];
  /** What was left out, one sentence each. */
  readonly notes: readonly string[];
  readonly refusals: readonly Refusal[];
}

export const q = (name: string): string => quoteIdent(name);
export const qn = (x: QualifiedName): string => `${q(x.schema)}.${q(x.name)}`;

/** A table as a subscriber receives it: with a publication's column list, only those columns and the constraints over them. */
export function publishedShape(t: TableDef, columns: readonly string[] | null): TableDef {
  if (!columns) return t;
  const keep = new Set(columns);
  return {
    ...t,
    columns: t.columns.filter((c) => keep.has(c.name)),
    constraints: t.constraints.filter((k) => k.columns.every((c) => keep.has(c))),
    sequences: t.sequences.filter((s) => !s.ownedBy || keep.has(s.ownedBy.column)),
  };
}

/** The DDL that makes the tables of `snap` the subscriber lacks. Tables it has already are left alone (drift.ts compares them). */
export function schemaCopy(snap: CatalogSnapshot, have: SubscriberObjects, opts: { readOnlyGuard: boolean; node: string }): SchemaCopy {
  const notes: string[] = [];
  const refusals: Refusal[] = [];
  const missing = orderByPartitionDepth(snap.tables.filter((t) => !have.tables.has(qualified(t))));
  if (missing.length === 0) return { statements: [], created: [], notes, refusals };
  const creating = new Set(missing.map(qualified));
  const present = (x: QualifiedName) => creating.has(qualified(x)) || have.tables.has(qualified(x));

  // the types the missing tables use, that the subscriber lacks
  const usedTypes = snap.types.filter((ty) => !have.types.has(qualified(ty)) && missing.some((t) => t.columns.some((c) => usesType(c, ty))));
  for (const ty of usedTypes.filter((x) => x.kind === 'other')) {
    const t = missing.find((m) => m.columns.some((c) => usesType(c, ty)))!;
    refusals.push({
      message: `${qualified(t)} uses the type ${qualified(ty)}, which schema copy does not create (only enums and domains) and ${opts.node} lacks`,
      hint: `create ${qualified(ty)} on ${opts.node} first (the same definition as on the primary), then run logical apply again.`,
    });
  }
  for (const t of missing) {
    if (t.unlogged) refusals.push({ message: `${qualified(t)} is an unlogged table, which logical replication cannot carry`, hint: `make it logged on the primary (ALTER TABLE ${qualified(t)} SET LOGGED) or leave it out of the publication.` });
    for (const f of t.functions) {
      if (have.functions.has(f.signature)) continue;
      const col = t.columns.find((c) => c.name === f.usedBy);
      if (col?.generated) {
        refusals.push({ message: `the generated column ${qualified(t)}.${col.name} calls ${f.signature}, which ${opts.node} lacks`, hint: `create that function on ${opts.node} first, then run logical apply again.` });
      }
    }
  }

  const statements: string[] = [];
  const schemas = new Set([...missing.map((t) => t.schema), ...usedTypes.map((t) => t.schema), ...missing.flatMap((t) => t.sequences.map((s) => s.schema)), ...snap.extensions.map((e) => e.schema)]);
  for (const s of [...schemas].sort()) if (s !== 'public') statements.push(`CREATE SCHEMA IF NOT EXISTS ${q(s)}`);
  for (const e of snap.extensions) statements.push(`CREATE EXTENSION IF NOT EXISTS ${q(e.name)} WITH SCHEMA ${q(e.schema)}`);
  for (const ty of usedTypes) if (ty.kind !== 'other') statements.push(createType(ty));
  const sequences = uniqueBy(missing.flatMap((t) => t.sequences), qualified).filter((s) => !have.sequences.has(qualified(s)));
  for (const s of sequences) statements.push(createSequence(s));

  for (const t of missing) statements.push(createTable(t, present, have, notes));
  for (const s of sequences) if (s.ownedBy) statements.push(`ALTER SEQUENCE ${qn(s)} OWNED BY ${qn(s.ownedBy.table)}.${q(s.ownedBy.column)}`);
  for (const t of missing) statements.push(...replicaIdentity(t));
  for (const t of missing) {
    const asPartition = t.partitionOf !== null && present(t.partitionOf.parent);
    for (const k of t.constraints.filter((x) => x.kind === 'f' && !(asPartition && x.inherited))) {
      if (k.references && !present(k.references)) {
        notes.push(`foreign key ${k.name} of ${qualified(t)} left out: it references ${qualified(k.references)}, which is not replicated to ${opts.node}`);
        continue;
      }
      statements.push(`ALTER TABLE ${qn(t)} ADD CONSTRAINT ${q(k.name)} ${k.definition}`);
    }
  }
  if (opts.readOnlyGuard) {
    statements.push(...readOnlyGuardFunction(), ...missing.map((t) => readOnlyTrigger(t)));
  }
  return { statements, created: missing, notes, refusals };
}

function usesType(c: ColumnDef, ty: TypeDef): boolean {
  const name = qn(ty).replace(/"/g, '');
  const plain = c.type.replace(/"/g, '').replace(/\[\]$/, '');
  return plain === name || plain === `${ty.schema}.${ty.name}`;
}

function uniqueBy<T>(xs: readonly T[], key: (x: T) => string): T[] {
  const seen = new Set<string>();
  return xs.filter((x) => (seen.has(key(x)) ? false : (seen.add(key(x)), true)));
}

/** Parents before their partitions, each level in name order. */
export function orderByPartitionDepth(tables: readonly TableDef[]): TableDef[] {
  const byName = new Map(tables.map((t) => [qualified(t), t]));
  const depth = (t: TableDef, seen = 0): number => (t.partitionOf && byName.has(qualified(t.partitionOf.parent)) && seen < 32 ? 1 + depth(byName.get(qualified(t.partitionOf.parent))!, seen + 1) : 0);
  return [...tables].sort((a, b) => depth(a) - depth(b) || qualified(a).localeCompare(qualified(b)));
}

function createType(ty: Exclude<TypeDef, { kind: 'other' }>): string {
  if (ty.kind === 'enum') return `CREATE TYPE ${qn(ty)} AS ENUM (${ty.labels.map(quoteLiteral).join(', ')})`;
  return `CREATE DOMAIN ${qn(ty)} AS ${ty.base}${ty.default !== null ? ` DEFAULT ${ty.default}` : ''}${ty.notNull ? ' NOT NULL' : ''}${ty.checks.map((c) => ` ${c}`).join('')}`;
}

function createSequence(s: SequenceDef): string {
  return `CREATE SEQUENCE IF NOT EXISTS ${qn(s)} AS ${s.type} INCREMENT BY ${s.increment} MINVALUE ${s.min} MAXVALUE ${s.max} START WITH ${s.start} CACHE ${s.cache}${s.cycle ? ' CYCLE' : ' NO CYCLE'}`;
}

/** One column's definition; `dropDefault` when its default calls a function the subscriber lacks. */
export function columnDef(c: ColumnDef, dropDefault = false): string {
  const parts = [q(c.name), c.type];
  if (c.collation) parts.push(`COLLATE ${c.collation}`);
  if (c.generated) parts.push(`GENERATED ALWAYS AS (${c.generated.expression}) ${c.generated.kind === 'virtual' ? 'VIRTUAL' : 'STORED'}`);
  else if (c.identity) parts.push(`GENERATED ${c.identity === 'always' ? 'ALWAYS' : 'BY DEFAULT'} AS IDENTITY`);
  else if (c.default !== null && !dropDefault) parts.push(`DEFAULT ${c.default}`);
  if (c.notNull && !c.identity) parts.push('NOT NULL');
  return parts.join(' ');
}

function createTable(t: TableDef, present: (x: QualifiedName) => boolean, have: SubscriberObjects, notes: string[]): string {
  const missingFn = (usedBy: string) => t.functions.find((f) => f.usedBy === usedBy && !have.functions.has(f.signature));
  const checks = t.constraints.filter((k) => k.kind !== 'f');
  const partitionBy = t.partitioned && t.partitionKey ? ` PARTITION BY ${t.partitionKey}` : '';
  if (t.partitionOf && present(t.partitionOf.parent)) {
    const own = checks.filter((k) => !k.inherited).map((k) => `CONSTRAINT ${q(k.name)} ${k.definition}`);
    return `CREATE TABLE ${qn(t)} PARTITION OF ${qn(t.partitionOf.parent)}${own.length > 0 ? ` (${own.join(', ')})` : ''} ${t.partitionOf.bound}${partitionBy}`;
  }
  const cols = t.columns.map((c) => {
    const fn = c.default !== null ? missingFn(c.name) : undefined;
    if (fn) notes.push(`the default of ${qualified(t)}.${c.name} left out: it calls ${fn.signature}, which the subscriber lacks`);
    return columnDef(c, fn !== undefined);
  });
  const cons = checks.flatMap((k) => {
    const fn = missingFn(k.name);
    if (fn) {
      notes.push(`constraint ${k.name} of ${qualified(t)} left out: it calls ${fn.signature}, which the subscriber lacks`);
      return [];
    }
    return [`CONSTRAINT ${q(k.name)} ${k.definition}`];
  });
  return `CREATE TABLE ${qn(t)} (${[...cols, ...cons].join(', ')})${partitionBy}`;
}

function replicaIdentity(t: TableDef): string[] {
  const ri = t.replicaIdentity;
  if (ri.kind === 'full') return [`ALTER TABLE ${qn(t)} REPLICA IDENTITY FULL`];
  if (ri.kind === 'nothing') return [`ALTER TABLE ${qn(t)} REPLICA IDENTITY NOTHING`];
  if (ri.kind === 'index') return [...(ri.definition ? [ri.definition] : []), `ALTER TABLE ${qn(t)} REPLICA IDENTITY USING INDEX ${q(ri.index)}`];
  return [];
}

/** The schema, function and trigger that make a query node's copied tables refuse application writes. */
export const GUARD_SCHEMA = 'pgmaestro';
export const GUARD_TRIGGER = 'pgmaestro_read_only';

export function readOnlyGuardFunction(): string[] {
  return [
    `CREATE SCHEMA IF NOT EXISTS ${GUARD_SCHEMA}`,
    `CREATE OR REPLACE FUNCTION ${GUARD_SCHEMA}.refuse_write() RETURNS trigger LANGUAGE plpgsql AS $pgm$
BEGIN
  RAISE EXCEPTION 'table %.% is fed by logical replication on this query node and takes no writes', TG_TABLE_SCHEMA, TG_TABLE_NAME
    USING ERRCODE = 'read_only_sql_transaction', HINT = 'write to the primary (the read-write endpoint); the change reaches this node by itself.';
END $pgm$`,
  ];
}

/**
 * A statement trigger that refuses INSERT, UPDATE, DELETE and TRUNCATE. An
 * ordinary trigger fires only for sessions in session_replication_role
 * 'origin': the subscription's workers run as 'replica' and are not
 * stopped by it; an application cannot switch roles (it takes a superuser).
 */
export function readOnlyTrigger(t: QualifiedName): string {
  return `CREATE TRIGGER ${GUARD_TRIGGER} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON ${qn(t)} FOR EACH STATEMENT EXECUTE FUNCTION ${GUARD_SCHEMA}.refuse_write()`;
}
