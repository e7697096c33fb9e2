import type pg from 'pg';
import type { PublicationScope } from '../config/types.js';
import type { CatalogSnapshot, ColumnDef, ConstraintDef, QualifiedName, ReplicaIdentity, SequenceDef, TableDef, TypeDef } from './catalog-types.js';

/**
 * Reads table definitions from a database's catalog. The session's
 * search_path is pg_catalog while it reads, so every name PostgreSQL
 * deparses (types, sequences in defaults, referenced tables) comes out
 * schema-qualified and means the same thing on any other server.
 */

const USER_SCHEMA = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'";
const NOT_EXTENSION_MEMBER = (cls: string, oid: string) => `NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '${cls}'::regclass AND e.objid = ${oid} AND e.deptype = 'e')`;

/** Runs `fn` with search_path = pg_catalog, restoring the session's afterwards. */
export async function withCatalogPath<T>(c: pg.Client, fn: () => Promise<T>): Promise<T> {
  const before = (await c.query<{ p: string }>('SELECT current_setting($1) AS p', ['search_path'])).rows[0].p;
  await c.query("SELECT set_config('search_path', 'pg_catalog', false)");
  try {
    return await fn();
  } finally {
    await c.query("SELECT set_config('search_path', $1, false)", [before]);
  }
}

export interface ResolvedTables {
  /** Oids of the declared tables and every partition below them. */
  readonly oids: readonly number[];
  /** Declared names that are no table here. */
  readonly missing: readonly string[];
}

/** The tables a publication scope covers in this database, partitions included; names that are not tables are returned in `missing`. */
export async function resolveScope(c: pg.Client, scope: PublicationScope): Promise<ResolvedTables> {
  let roots: number[] = [];
  const missing: string[] = [];
  if (scope.kind === 'tables') {
    const r = await c.query<{ i: number; oid: number | null }>(
      `SELECT u.i, (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = u.s AND c.relname = u.t AND c.relkind IN ('r', 'p')) AS oid
         FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(s, t, i) ORDER BY u.i`,
      [scope.tables.map((t) => t.schema), scope.tables.map((t) => t.name)],
    );
    r.rows.forEach((row, i) => (row.oid === null ? missing.push(`${scope.tables[i].schema}.${scope.tables[i].name}`) : roots.push(Number(row.oid))));
  } else {
    const r = await c.query<{ oid: number }>(
      `SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence = 'p' AND ${USER_SCHEMA}
          AND ${NOT_EXTENSION_MEMBER('pg_class', 'c.oid')} ${scope.kind === 'schemas' ? 'AND n.nspname = ANY($1)' : ''}
        ORDER BY n.nspname, c.relname`,
      scope.kind === 'schemas' ? [scope.schemas] : [],
    );
    roots = r.rows.map((x) => Number(x.oid));
    if (scope.kind === 'schemas') {
      const s = await c.query<{ nspname: string }>('SELECT nspname FROM pg_namespace WHERE nspname = ANY($1)', [scope.schemas]);
      for (const name of scope.schemas) if (!s.rows.some((x) => x.nspname === name)) missing.push(`schema ${name}`);
    }
  }
  if (roots.length === 0) return { oids: [], missing };
  const tree = await c.query<{ relid: number }>(
    `SELECT DISTINCT t.relid::oid AS relid FROM unnest($1::oid[]) AS r(oid), LATERAL pg_partition_tree(r.oid) t`,
    [roots],
  );
  const oids = [...new Set([...roots, ...tree.rows.map((x) => Number(x.relid))])];
  return { oids, missing };
}

/** Oids of tables by name (those that exist). */
export async function tableOids(c: pg.Client, names: readonly QualifiedName[]): Promise<Map<string, number>> {
  const r = await c.query<{ s: string; t: string; oid: number }>(
    `SELECT n.nspname AS s, c.relname AS t, c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN unnest($1::text[], $2::text[]) AS u(s, t) ON u.s = n.nspname AND u.t = c.relname WHERE c.relkind IN ('r', 'p')`,
    [names.map((x) => x.schema), names.map((x) => x.name)],
  );
  return new Map(r.rows.map((x) => [`${x.s}.${x.t}`, Number(x.oid)]));
}

/** Everything the schema copy needs about the tables `oids`. */
export async function readCatalog(c: pg.Client, oids: readonly number[]): Promise<CatalogSnapshot> {
  if (oids.length === 0) return { tables: [], types: [], extensions: [] };
  return withCatalogPath(c, async () => {
    const ids = [...oids];
    const rels = await c.query<{ oid: number; s: string; t: string; relkind: string; relpersistence: string; relreplident: string; partkey: string | null; bound: string | null; ps: string | null; pt: string | null }>(
      `SELECT c.oid, n.nspname AS s, c.relname AS t, c.relkind, c.relpersistence, c.relreplident,
              CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS partkey,
              CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS bound,
              pn.nspname AS ps, pc.relname AS pt
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND c.relispartition
         LEFT JOIN pg_class pc ON pc.oid = i.inhparent LEFT JOIN pg_namespace pn ON pn.oid = pc.relnamespace
        WHERE c.oid = ANY($1::oid[]) ORDER BY n.nspname, c.relname`,
      [ids],
    );
    const cols = await c.query<{ rel: number; attname: string; type: string; attnotnull: boolean; expr: string | null; attgenerated: string; attidentity: string; coll: string | null }>(
      `SELECT a.attrelid AS rel, a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull,
              pg_get_expr(d.adbin, d.adrelid) AS expr, a.attgenerated::text AS attgenerated, a.attidentity::text AS attidentity,
              CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                   THEN CASE WHEN cn.nspname = 'pg_catalog' THEN quote_ident(co.collname) ELSE quote_ident(cn.nspname) || '.' || quote_ident(co.collname) END END AS coll
         FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         LEFT JOIN pg_collation co ON co.oid = a.attcollation LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
        WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attrelid, a.attnum`,
      [ids],
    );
    const cons = await c.query<{ rel: number; conname: string; contype: string; def: string; inherited: boolean; rs: string | null; rt: string | null; cols: string[] }>(
      `SELECT c.conrelid AS rel, c.conname, c.contype::text AS contype, pg_get_constraintdef(c.oid) AS def,
              (c.conparentid <> 0 OR NOT c.conislocal) AS inherited, rn.nspname AS rs, rc.relname AS rt,
              ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey) ORDER BY a.attnum) AS cols
         FROM pg_constraint c LEFT JOIN pg_class rc ON rc.oid = c.confrelid LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
        WHERE c.conrelid = ANY($1::oid[]) AND c.contype IN ('p', 'u', 'c', 'f', 'x')
        ORDER BY c.conrelid, position(c.contype::text in 'pucxf'), c.conname`,
      [ids],
    );
    const ri = await c.query<{ rel: number; name: string; def: string; constraint: boolean }>(
      `SELECT i.indrelid AS rel, ci.relname AS name, pg_get_indexdef(i.indexrelid) AS def,
              EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid) AS constraint
         FROM pg_index i JOIN pg_class ci ON ci.oid = i.indexrelid WHERE i.indrelid = ANY($1::oid[]) AND i.indisreplident`,
      [ids],
    );
    const seqs = await c.query<{ rel: number; s: string; n: string; type: string; start: string; inc: string; min: string; max: string; cache: string; cycle: boolean; owner_col: string | null; owner_rel: number | null }>(
      `SELECT DISTINCT ad.adrelid AS rel, sn.nspname AS s, sc.relname AS n, format_type(sq.seqtypid, NULL) AS type,
              sq.seqstart::text AS start, sq.seqincrement::text AS inc, sq.seqmin::text AS min, sq.seqmax::text AS max, sq.seqcache::text AS cache, sq.seqcycle AS cycle,
              oa.attname AS owner_col, od.refobjid AS owner_rel
         FROM pg_attrdef ad
         JOIN pg_depend dep ON dep.classid = 'pg_attrdef'::regclass AND dep.objid = ad.oid AND dep.refclassid = 'pg_class'::regclass
         JOIN pg_class sc ON sc.oid = dep.refobjid AND sc.relkind = 'S' JOIN pg_namespace sn ON sn.oid = sc.relnamespace
         JOIN pg_sequence sq ON sq.seqrelid = sc.oid
         LEFT JOIN pg_depend od ON od.classid = 'pg_class'::regclass AND od.objid = sc.oid AND od.refclassid = 'pg_class'::regclass AND od.deptype = 'a'
         LEFT JOIN pg_attribute oa ON oa.attrelid = od.refobjid AND oa.attnum = od.refobjsubid
        WHERE ad.adrelid = ANY($1::oid[])`,
      [ids],
    );
    const funcs = await c.query<{ rel: number; used_by: string; sig: string }>(
      `SELECT DISTINCT coalesce(ad.adrelid, con.conrelid) AS rel, coalesce(att.attname, con.conname) AS used_by, p.oid::regprocedure::text AS sig
         FROM pg_depend dep JOIN pg_proc p ON dep.refclassid = 'pg_proc'::regclass AND dep.refobjid = p.oid
         JOIN pg_namespace n ON n.oid = p.pronamespace
         LEFT JOIN pg_attrdef ad ON dep.classid = 'pg_attrdef'::regclass AND dep.objid = ad.oid
         LEFT JOIN pg_attribute att ON att.attrelid = ad.adrelid AND att.attnum = ad.adnum
         LEFT JOIN pg_constraint con ON dep.classid = 'pg_constraint'::regclass AND dep.objid = con.oid
        WHERE (ad.adrelid = ANY($1::oid[]) OR con.conrelid = ANY($1::oid[])) AND ${USER_SCHEMA} AND ${NOT_EXTENSION_MEMBER('pg_proc', 'p.oid')}`,
      [ids],
    );
    const types = await c.query<{ s: string; n: string; typtype: string; labels: string[] | null; base: string | null; typnotnull: boolean; typdefault: string | null; checks: string[] | null }>(
      `WITH used AS (
         SELECT DISTINCT CASE WHEN t.typelem <> 0 AND t.typcategory = 'A' THEN t.typelem ELSE t.oid END AS oid
           FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
          WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped)
       SELECT n.nspname AS s, t.typname AS n, t.typtype::text AS typtype,
              CASE WHEN t.typtype = 'e' THEN ARRAY(SELECT enumlabel::text FROM pg_enum WHERE enumtypid = t.oid ORDER BY enumsortorder) END AS labels,
              CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END AS base, t.typnotnull, t.typdefault,
              CASE WHEN t.typtype = 'd' THEN ARRAY(SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k WHERE k.contypid = t.oid AND k.contype = 'c' ORDER BY k.conname) END AS checks
         FROM used u JOIN pg_type t ON t.oid = u.oid JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE ${USER_SCHEMA} AND t.typrelid = 0 AND ${NOT_EXTENSION_MEMBER('pg_type', 't.oid')}
        ORDER BY n.nspname, t.typname`,
      [ids],
    );
    // row-type columns of a table (typrelid <> 0) are composite types of tables: refused as "other" below
    const rowTypes = await c.query<{ s: string; n: string }>(
      `SELECT DISTINCT n.nspname AS s, t.typname AS n FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped AND t.typrelid <> 0 AND ${USER_SCHEMA}`,
      [ids],
    );
    const exts = await c.query<{ name: string; schema: string }>(
      `WITH objs AS (
         SELECT 'pg_type'::regclass::oid AS cls, a.atttypid AS oid FROM pg_attribute a WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
         UNION SELECT 'pg_type'::regclass::oid, t.typelem FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid WHERE a.attrelid = ANY($1::oid[]) AND t.typelem <> 0
         UNION SELECT dep.refclassid, dep.refobjid FROM pg_depend dep JOIN pg_attrdef ad ON dep.classid = 'pg_attrdef'::regclass AND dep.objid = ad.oid WHERE ad.adrelid = ANY($1::oid[])
         UNION SELECT dep.refclassid, dep.refobjid FROM pg_depend dep JOIN pg_constraint k ON dep.classid = 'pg_constraint'::regclass AND dep.objid = k.oid WHERE k.conrelid = ANY($1::oid[]))
       SELECT DISTINCT x.extname AS name, xn.nspname AS schema
         FROM objs o JOIN pg_depend e ON e.classid = o.cls AND e.objid = o.oid AND e.deptype = 'e' AND e.refclassid = 'pg_extension'::regclass
         JOIN pg_extension x ON x.oid = e.refobjid JOIN pg_namespace xn ON xn.oid = x.extnamespace ORDER BY 1`,
      [ids],
    );

    const byRel = <T extends { rel: number }>(rows: T[], oid: number) => rows.filter((r) => Number(r.rel) === oid);
    const tables = rels.rows.map((r): TableDef => {
      const oid = Number(r.oid);
      const columns = byRel(cols.rows, oid).map(
        (a): ColumnDef => ({
          name: a.attname,
          type: a.type,
          notNull: a.attnotnull,
          default: a.attgenerated === '' ? a.expr : null,
          identity: a.attidentity === 'a' ? 'always' : a.attidentity === 'd' ? 'by default' : null,
          generated: a.attgenerated !== '' && a.expr !== null ? { expression: a.expr, kind: a.attgenerated === 'v' ? 'virtual' : 'stored' } : null,
          collation: a.coll,
        }),
      );
      const constraints = byRel(cons.rows, oid).map(
        (k): ConstraintDef => ({ name: k.conname, kind: k.contype as ConstraintDef['kind'], definition: k.def, references: k.rs && k.rt ? { schema: k.rs, name: k.rt } : null, inherited: k.inherited, columns: k.cols }),
      );
      const idx = byRel(ri.rows, oid)[0];
      const replicaIdentity: ReplicaIdentity =
        r.relreplident === 'f' ? { kind: 'full' } : r.relreplident === 'n' ? { kind: 'nothing' } : r.relreplident === 'i' && idx ? { kind: 'index', index: idx.name, definition: idx.constraint ? null : idx.def } : { kind: 'default' };
      const sequences = byRel(seqs.rows, oid).map(
        (q): SequenceDef => ({
          schema: q.s,
          name: q.n,
          type: q.type,
          start: q.start,
          increment: q.inc,
          min: q.min,
          max: q.max,
          cache: q.cache,
          cycle: q.cycle,
          ownedBy: q.owner_col && Number(q.owner_rel) === oid ? { table: { schema: r.s, name: r.t }, column: q.owner_col } : null,
        }),
      );
      return {
        schema: r.s,
        name: r.t,
        partitioned: r.relkind === 'p',
        unlogged: r.relpersistence === 'u',
        columns,
        constraints,
        partitionKey: r.partkey,
        partitionOf: r.bound !== null && r.ps && r.pt ? { parent: { schema: r.ps, name: r.pt }, bound: r.bound } : null,
        replicaIdentity,
        sequences,
        functions: byRel(funcs.rows, oid).map((f) => ({ signature: f.sig, usedBy: f.used_by })),
      };
    });
    const typeDefs: TypeDef[] = [
      ...types.rows.map((t): TypeDef => {
        if (t.typtype === 'e') return { schema: t.s, name: t.n, kind: 'enum', labels: t.labels ?? [] };
        if (t.typtype === 'd') return { schema: t.s, name: t.n, kind: 'domain', base: t.base!, notNull: t.typnotnull, default: t.typdefault, checks: t.checks ?? [] };
        return { schema: t.s, name: t.n, kind: 'other', typtype: t.typtype };
      }),
      ...rowTypes.rows.map((t): TypeDef => ({ schema: t.s, name: t.n, kind: 'other', typtype: 'c' })),
    ];
    return { tables, types: typeDefs, extensions: exts.rows };
  });
}
