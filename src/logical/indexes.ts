import crypto from 'node:crypto';
import type pg from 'pg';
import type { IndexDecl } from '../config/types.js';
import { quoteLiteral } from '../postgres/sql.js';
import { q } from './ddl.js';
import { managedComment, parseManaged } from './publications.js';

/**
 * A query node's own indexes (trigram, full text…), which the primary never
 * carries: created after the initial copy (building them on loaded tables
 * is faster than maintaining them during the copy), marked with a comment
 * holding a digest of the declared statement, rebuilt when the statement
 * changes or a concurrent build left it invalid, and dropped (--prune) when
 * the file no longer declares them.
 */

export interface ObservedIndex {
  readonly schema: string;
  readonly name: string;
  readonly table: string;
  /** pgmaestro's digest; null for an index pgmaestro did not make. */
  readonly digest: string | null;
  readonly valid: boolean;
}

export type IndexStep =
  | { readonly kind: 'create'; readonly decl: IndexDecl; readonly reason: 'missing' | 'changed' | 'invalid' }
  | { readonly kind: 'adopt'; readonly decl: IndexDecl }
  | { readonly kind: 'drop'; readonly index: ObservedIndex };

export function indexDigest(sql: string): string {
  return crypto.createHash('sha256').update(sql.replace(/\s+/g, ' ').trim()).digest('hex').slice(0, 16);
}

/** Indexes in the database the client is connected to (user schemas only). */
export async function observeIndexes(c: pg.Client, cluster: string): Promise<ObservedIndex[]> {
  const r = await c.query<{ s: string; n: string; t: string; comment: string | null; valid: boolean }>(
    `SELECT n.nspname AS s, ic.relname AS n, tc.relname AS t, obj_description(ic.oid, 'pg_class') AS comment, i.indisvalid AS valid
       FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class tc ON tc.oid = i.indrelid JOIN pg_namespace n ON n.oid = ic.relnamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'`,
  );
  return r.rows.map((x) => ({ schema: x.s, name: x.n, table: x.t, digest: parseManaged(x.comment, cluster), valid: x.valid }));
}

/** What makes the database's indexes what the node declares, pure. `prune` also drops pgmaestro's indexes no longer declared. */
export function planIndexes(declared: readonly IndexDecl[], observed: readonly ObservedIndex[], prune: boolean): { steps: IndexStep[]; wouldDrop: ObservedIndex[] } {
  const steps: IndexStep[] = [];
  for (const d of declared) {
    const o = observed.find((x) => x.schema === d.schema && x.name === d.name);
    if (!o) steps.push({ kind: 'create', decl: d, reason: 'missing' });
    else if (o.digest === null) steps.push(o.valid ? { kind: 'adopt', decl: d } : { kind: 'create', decl: d, reason: 'invalid' });
    else if (!o.valid) steps.push({ kind: 'create', decl: d, reason: 'invalid' });
    else if (o.digest !== indexDigest(d.sql)) steps.push({ kind: 'create', decl: d, reason: 'changed' });
  }
  const stale = observed.filter((o) => o.digest !== null && !declared.some((d) => d.schema === o.schema && d.name === o.name));
  if (prune) for (const o of stale) steps.push({ kind: 'drop', index: o });
  return { steps, wouldDrop: prune ? [] : stale };
}

/** Extensions the statements need: those declared, and pg_trgm for its operator classes. */
export function neededExtensions(declared: readonly IndexDecl[], explicit: readonly string[]): string[] {
  const out = new Set(explicit);
  if (declared.some((d) => /\bg(in|ist)_trgm_ops\b/i.test(d.sql))) out.add('pg_trgm');
  return [...out];
}

/** The statements of one step; each runs on its own (CREATE INDEX CONCURRENTLY cannot run in a transaction). */
export function indexStatements(step: IndexStep, cluster: string): string[] {
  if (step.kind === 'drop') return [`DROP INDEX ${q(step.index.schema)}.${q(step.index.name)}`];
  const comment = `COMMENT ON INDEX ${q(step.decl.schema)}.${q(step.decl.name)} IS ${quoteLiteral(managedComment(indexDigest(step.decl.sql), cluster))}`;
  if (step.kind === 'adopt') return [comment];
  return [...(step.reason === 'missing' ? [] : [`DROP INDEX IF EXISTS ${q(step.decl.schema)}.${q(step.decl.name)}`]), step.decl.sql, comment];
}

export function describeIndexStep(step: IndexStep, node: string): string {
  if (step.kind === 'drop') return `drop index ${step.index.schema}.${step.index.name} on ${node} (no longer declared)`;
  const what = `${step.decl.schema}.${step.decl.name} on ${step.decl.schema}.${step.decl.table}`;
  if (step.kind === 'adopt') return `adopt index ${what} on ${node} (made by hand before; drop it there to have it built from the file)`;
  return `${step.reason === 'missing' ? 'create' : step.reason === 'changed' ? 'rebuild (its statement changed)' : 'rebuild (a concurrent build left it invalid)'} index ${what} on ${node}`;
}
