import crypto from 'node:crypto';
import type pg from 'pg';
import type { PublicationConfig, PublishOp } from '../config/types.js';
import { quoteLiteral } from '../postgres/sql.js';
import { q } from './ddl.js';

/**
 * Publications on the primary: what exists (observe), what the file wants
 * (plan, pure) and the statements between the two. pgmaestro marks what it
 * manages with a comment carrying a digest of the declaration, so it never
 * drops a publication made by hand and notices a changed row filter or
 * column list that the catalog deparses differently from the file.
 */

export const MANAGED = 'pgmaestro';
const ALL_OPS: readonly PublishOp[] = ['insert', 'update', 'delete', 'truncate'];

export interface ObservedPublication {
  readonly name: string;
  /** The digest in pgmaestro's comment; null when the publication is not pgmaestro's. */
  readonly digest: string | null;
  readonly allTables: boolean;
  readonly ops: readonly PublishOp[];
  /** Tables named in it (schema.table). */
  readonly tables: readonly string[];
  /** Schemas named in it (TABLES IN SCHEMA). */
  readonly schemas: readonly string[];
}

/** A short digest of what the file declares for a publication. */
export function publicationDigest(p: PublicationConfig): string {
  const canon = JSON.stringify({ scope: p.scope, publish: [...p.publish].sort() });
  return crypto.createHash('sha256').update(canon).digest('hex').slice(0, 16);
}

export function managedComment(digest: string, cluster: string): string {
  return `${MANAGED} ${cluster} ${digest}`;
}

/** The digest in a comment pgmaestro wrote for this cluster, else null. */
export function parseManaged(comment: string | null, cluster: string): string | null {
  const m = /^pgmaestro (\S+) (\S+)$/.exec(comment ?? '');
  return m && m[1] === cluster ? m[2] : null;
}

/** Every publication of the database the client is connected to. */
export async function observePublications(c: pg.Client, cluster: string): Promise<ObservedPublication[]> {
  const r = await c.query<{ pubname: string; comment: string | null; puballtables: boolean; ins: boolean; upd: boolean; del: boolean; tru: boolean; tables: string[]; schemas: string[] }>(
    `SELECT p.pubname, obj_description(p.oid, 'pg_publication') AS comment, p.puballtables,
            p.pubinsert AS ins, p.pubupdate AS upd, p.pubdelete AS del, p.pubtruncate AS tru,
            ARRAY(SELECT n.nspname || '.' || c.relname FROM pg_publication_rel r JOIN pg_class c ON c.oid = r.prrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE r.prpubid = p.oid ORDER BY 1) AS tables,
            ARRAY(SELECT n.nspname::text FROM pg_publication_namespace pn JOIN pg_namespace n ON n.oid = pn.pnnspid WHERE pn.pnpubid = p.oid ORDER BY 1) AS schemas
       FROM pg_publication p ORDER BY p.pubname`,
  );
  return r.rows.map((x) => ({
    name: x.pubname,
    digest: parseManaged(x.comment, cluster),
    allTables: x.puballtables,
    ops: ALL_OPS.filter((op) => ({ insert: x.ins, update: x.upd, delete: x.del, truncate: x.tru })[op]),
    tables: x.tables,
    schemas: x.schemas,
  }));
}

export interface PublicationPlan {
  /** Statements for one transaction in the publication's database; empty when nothing changes. */
  readonly statements: readonly string[];
  /** What it does, for the user (empty when nothing changes). */
  readonly sentence: string | null;
}

function scopeClause(p: PublicationConfig): string {
  const s = p.scope;
  if (s.kind === 'all') return 'FOR ALL TABLES';
  if (s.kind === 'schemas') return `FOR TABLES IN SCHEMA ${s.schemas.map(q).join(', ')}`;
  return `FOR TABLE ${tableList(p)}`;
}

function tableList(p: PublicationConfig): string {
  if (p.scope.kind !== 'tables') return '';
  return p.scope.tables.map((t) => `${q(t.schema)}.${q(t.name)}${t.columns ? ` (${t.columns.map(q).join(', ')})` : ''}${t.where ? ` WHERE (${t.where})` : ''}`).join(', ');
}

function withPublish(p: PublicationConfig): string {
  return `(publish = ${quoteLiteral(ALL_OPS.filter((op) => p.publish.includes(op)).join(', '))})`;
}

/** The statements that turn `have` (null: absent) into what `want` declares. Pure. */
export function planPublication(want: PublicationConfig, have: ObservedPublication | null, cluster: string): PublicationPlan {
  const digest = publicationDigest(want);
  const comment = `COMMENT ON PUBLICATION ${q(want.name)} IS ${quoteLiteral(managedComment(digest, cluster))}`;
  const create = [`CREATE PUBLICATION ${q(want.name)} ${scopeClause(want)} WITH ${withPublish(want)}`, comment];
  if (!have) return { statements: create, sentence: `create publication ${want.name} in ${want.database} (${describeScope(want)})` };

  const adopted = have.digest === null ? ' (made by hand before: pgmaestro manages it from now on)' : '';
  const wantAll = want.scope.kind === 'all';
  if (wantAll !== have.allTables) {
    // FOR ALL TABLES cannot be altered into or out of: replace it in one transaction, so subscribers never miss it
    return { statements: [`DROP PUBLICATION ${q(want.name)}`, ...create], sentence: `recreate publication ${want.name} in ${want.database} as ${describeScope(want)}${adopted}` };
  }
  const out: string[] = [];
  const changes: string[] = [];
  const sameOps = have.ops.length === want.publish.length && have.ops.every((op) => want.publish.includes(op));
  if (want.scope.kind === 'tables') {
    const wanted = want.scope.tables.map((t) => `${t.schema}.${t.name}`).sort();
    const sameSet = wanted.length === have.tables.length && wanted.every((t, i) => t === [...have.tables].sort()[i]) && have.schemas.length === 0;
    if (!sameSet || have.digest !== digest) {
      out.push(`ALTER PUBLICATION ${q(want.name)} SET TABLE ${tableList(want)}`);
      const added = wanted.filter((t) => !have.tables.includes(t));
      const removed = have.tables.filter((t) => !wanted.includes(t));
      changes.push(
        [added.length > 0 ? `add ${added.join(', ')}` : '', removed.length > 0 ? `remove ${removed.join(', ')}` : '', added.length + removed.length === 0 ? 'set its row filters and column lists' : '']
          .filter(Boolean)
          .join(', '),
      );
    }
  } else if (want.scope.kind === 'schemas') {
    const wanted = [...want.scope.schemas].sort();
    const sameSet = wanted.length === have.schemas.length && wanted.every((s, i) => s === have.schemas[i]) && have.tables.length === 0;
    if (!sameSet) {
      out.push(`ALTER PUBLICATION ${q(want.name)} SET TABLES IN SCHEMA ${wanted.map(q).join(', ')}`);
      changes.push(`publish schemas ${wanted.join(', ')}`);
    }
  }
  if (!sameOps) {
    out.push(`ALTER PUBLICATION ${q(want.name)} SET ${withPublish(want)}`);
    changes.push(`publish ${want.publish.join(', ')}`);
  }
  if (have.digest !== digest) out.push(comment);
  if (out.length === 0) return { statements: [], sentence: null };
  return { statements: out, sentence: changes.length > 0 ? `alter publication ${want.name} in ${want.database}: ${changes.join('; ')}${adopted}` : `adopt publication ${want.name} in ${want.database}${adopted}` };
}

export function describeScope(p: PublicationConfig): string {
  if (p.scope.kind === 'all') return 'all tables';
  if (p.scope.kind === 'schemas') return `tables in schema ${p.scope.schemas.join(', ')}`;
  return p.scope.tables.map((t) => `${t.schema}.${t.name}${t.where ? ' (filtered)' : ''}${t.columns ? ` (${t.columns.length} columns)` : ''}`).join(', ');
}
