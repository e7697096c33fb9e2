/**
 * Table definitions as read from a database's catalog: plain data, so the
 * schema copy (ddl.ts) and the drift check (drift.ts) are pure functions
 * over it. Names are bare (unquoted); expressions and types are as
 * PostgreSQL deparses them (format_type, pg_get_expr, pg_get_constraintdef).
 */

export interface QualifiedName {
  readonly schema: string;
  readonly name: string;
}

export interface ColumnDef {
  readonly name: string;
  /** format_type(atttypid, atttypmod), e.g. `character varying(20)`, `public.mood[]`. */
  readonly type: string;
  readonly notNull: boolean;
  /** The default expression; null without one (or when it cannot be copied: see `note`). */
  readonly default: string | null;
  readonly identity: 'always' | 'by default' | null;
  /** The expression of a generated column, and how it is kept (virtual: PostgreSQL 18+). */
  readonly generated: { readonly expression: string; readonly kind: 'stored' | 'virtual' } | null;
  /** A collation other than the type's default, quoted, e.g. `"C"`. */
  readonly collation: string | null;
}

export interface ConstraintDef {
  readonly name: string;
  /** p primary key, u unique, c check, f foreign key, x exclusion. */
  readonly kind: 'p' | 'u' | 'c' | 'f' | 'x';
  /** pg_get_constraintdef: `PRIMARY KEY (id)`, `CHECK ((qty > 0))`, `FOREIGN KEY (c) REFERENCES public.t(id)`. */
  readonly definition: string;
  /** Foreign keys: the referenced table. */
  readonly references: QualifiedName | null;
  /** Inherited from the partition parent (made by PARTITION OF, not written out when the parent is copied too). */
  readonly inherited: boolean;
  /** The columns it constrains (conkey). */
  readonly columns: readonly string[];
}

export interface SequenceDef extends QualifiedName {
  readonly type: string;
  readonly start: string;
  readonly increment: string;
  readonly min: string;
  readonly max: string;
  readonly cache: string;
  readonly cycle: boolean;
  /** The column that owns it (serial), as `table.column` of the same schema's table. */
  readonly ownedBy: { readonly table: QualifiedName; readonly column: string } | null;
}

export type ReplicaIdentity =
  | { readonly kind: 'default' }
  | { readonly kind: 'full' }
  | { readonly kind: 'nothing' }
  /** USING INDEX: the index's name and, when no constraint makes it, its definition. */
  | { readonly kind: 'index'; readonly index: string; readonly definition: string | null };

export interface TableDef extends QualifiedName {
  readonly partitioned: boolean;
  readonly unlogged: boolean;
  readonly columns: readonly ColumnDef[];
  /** The table's own constraints (a partition's inherited ones come with PARTITION OF). */
  readonly constraints: readonly ConstraintDef[];
  /** pg_get_partkeydef: `RANGE (created)`; null when not partitioned. */
  readonly partitionKey: string | null;
  /** A partition: its parent and bound (`FOR VALUES FROM (…) TO (…)`, `DEFAULT`). */
  readonly partitionOf: { readonly parent: QualifiedName; readonly bound: string } | null;
  readonly replicaIdentity: ReplicaIdentity;
  /** Sequences its defaults draw from (serial columns), created with it. */
  readonly sequences: readonly SequenceDef[];
  /** User-defined functions its defaults, checks and generated columns call, as `schema.name(args)`, by column or constraint. */
  readonly functions: readonly { readonly signature: string; readonly usedBy: string }[];
}

export type TypeDef =
  | (QualifiedName & { readonly kind: 'enum'; readonly labels: readonly string[] })
  | (QualifiedName & { readonly kind: 'domain'; readonly base: string; readonly notNull: boolean; readonly default: string | null; readonly checks: readonly string[] })
  /** A type schema copy cannot make (composite, range, base): the user creates it first. */
  | (QualifiedName & { readonly kind: 'other'; readonly typtype: string });

/** What the schema copy needs from the publisher for a set of tables. */
export interface CatalogSnapshot {
  readonly tables: readonly TableDef[];
  readonly types: readonly TypeDef[];
  /** Extensions whose types, functions or operators the tables use, with the schema they live in. */
  readonly extensions: readonly { readonly name: string; readonly schema: string }[];
}

export function qualified(q: QualifiedName): string {
  return `${q.schema}.${q.name}`;
}
