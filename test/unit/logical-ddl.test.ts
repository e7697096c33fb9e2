import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CatalogSnapshot, ColumnDef, TableDef } from '../../src/logical/catalog-types.js';
import { orderByPartitionDepth, publishedShape, schemaCopy, type SubscriberObjects } from '../../src/logical/ddl.js';
import { additive, driftFix, tableDrift, typeAccepts } from '../../src/logical/drift.js';

const col = (name: string, type: string, over: Partial<ColumnDef> = {}): ColumnDef => ({ name, type, notNull: false, default: null, identity: null, generated: null, collation: null, ...over });
const table = (name: string, over: Partial<TableDef> = {}): TableDef => ({
  schema: 'public',
  name,
  partitioned: false,
  unlogged: false,
  columns: [col('id', 'bigint', { notNull: true })],
  constraints: [{ name: `${name}_pkey`, kind: 'p', definition: 'PRIMARY KEY (id)', references: null, inherited: false, columns: ['id'] }],
  partitionKey: null,
  partitionOf: null,
  replicaIdentity: { kind: 'default' },
  sequences: [],
  functions: [],
  ...over,
});
const none: SubscriberObjects = { tables: new Set(), types: new Set(), sequences: new Set(), functions: new Set() };
const snap = (tables: TableDef[], extra: Partial<CatalogSnapshot> = {}): CatalogSnapshot => ({ tables, types: [], extensions: [], ...extra });

test('a table with identity, serial default, generated column, collation, checks and a foreign key', () => {
  const customers = table('customers', { columns: [col('id', 'bigint', { notNull: true, identity: 'always' }), col('name', 'text', { notNull: true, collation: '"C"' })] });
  const orders = table('orders', {
    columns: [
      col('id', 'bigint', { notNull: true, default: "nextval('public.orders_id_seq'::regclass)" }),
      col('customer_id', 'bigint'),
      col('qty', 'integer'),
      col('st', 'public.status', { default: "'new'::public.status" }),
      col('total', 'numeric(10,2)', { generated: { expression: '((qty)::numeric * 2.5)', kind: 'stored' } }),
    ],
    constraints: [
      { name: 'orders_pkey', kind: 'p', definition: 'PRIMARY KEY (id)', references: null, inherited: false, columns: ['id'] },
      { name: 'orders_qty_check', kind: 'c', definition: 'CHECK ((qty > 0))', references: null, inherited: false, columns: ['qty'] },
      { name: 'orders_customer_id_fkey', kind: 'f', definition: 'FOREIGN KEY (customer_id) REFERENCES public.customers(id)', references: { schema: 'public', name: 'customers' }, inherited: false, columns: ['customer_id'] },
    ],
    sequences: [{ schema: 'public', name: 'orders_id_seq', type: 'bigint', start: '1', increment: '1', min: '1', max: '9223372036854775807', cache: '1', cycle: false, ownedBy: { table: { schema: 'public', name: 'orders' }, column: 'id' } }],
  });
  const r = schemaCopy(snap([orders, customers], { types: [{ schema: 'public', name: 'status', kind: 'enum', labels: ['new', "it's paid"] }], extensions: [{ name: 'citext', schema: 'public' }] }), none, { readOnlyGuard: true, node: 'query1' });
  assert.deepEqual(r.refusals, []);
  const s = r.statements.join(';\n');
  assert.match(s, /CREATE EXTENSION IF NOT EXISTS "citext" WITH SCHEMA "public"/);
  assert.match(s, /CREATE TYPE "public"\."status" AS ENUM \('new', 'it''s paid'\)/);
  assert.match(s, /CREATE SEQUENCE IF NOT EXISTS "public"\."orders_id_seq" AS bigint INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1 NO CYCLE/);
  assert.match(s, /CREATE TABLE "public"\."customers" \("id" bigint GENERATED ALWAYS AS IDENTITY, "name" text COLLATE "C" NOT NULL, CONSTRAINT "customers_pkey" PRIMARY KEY \(id\)\)/);
  assert.match(s, /"total" numeric\(10,2\) GENERATED ALWAYS AS \(\(\(qty\)::numeric \* 2\.5\)\) STORED/);
  assert.match(s, /CONSTRAINT "orders_qty_check" CHECK \(\(qty > 0\)\)/);
  assert.match(s, /ALTER SEQUENCE "public"\."orders_id_seq" OWNED BY "public"\."orders"\."id"/);
  assert.match(s, /ALTER TABLE "public"\."orders" ADD CONSTRAINT "orders_customer_id_fkey" FOREIGN KEY/);
  assert.match(s, /CREATE TRIGGER pgmaestro_read_only BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON "public"\."orders" FOR EACH STATEMENT/);
  // order: types and sequences before tables, foreign keys after every table
  const at = (re: RegExp) => r.statements.findIndex((x) => re.test(x));
  assert.ok(at(/CREATE TYPE/) < at(/CREATE TABLE "public"\."orders"/));
  assert.ok(at(/CREATE SEQUENCE/) < at(/CREATE TABLE "public"\."orders"/));
  assert.ok(at(/ADD CONSTRAINT "orders_customer_id_fkey"/) > at(/CREATE TABLE "public"\."customers"/));
  assert.deepEqual(r.created.map((t) => t.name), ['customers', 'orders']);
});

test('a foreign key to a table that is not replicated is left out, with a note; what exists already is left alone', () => {
  const t = table('orders', { constraints: [{ name: 'fk', kind: 'f', definition: 'FOREIGN KEY (c) REFERENCES public.other(id)', references: { schema: 'public', name: 'other' }, inherited: false, columns: ['c'] }] });
  const r = schemaCopy(snap([t]), none, { readOnlyGuard: false, node: 'q' });
  assert.ok(!r.statements.some((s) => s.includes('fk')));
  assert.match(r.notes[0], /foreign key fk of public\.orders left out: it references public\.other, which is not replicated to q/);
  assert.ok(!r.statements.some((s) => s.includes('TRIGGER')), 'no guard on a DSN subscriber');
  const again = schemaCopy(snap([t]), { ...none, tables: new Set(['public.orders']) }, { readOnlyGuard: true, node: 'q' });
  assert.deepEqual(again.statements, []);
});

test('partitions follow their parent as PARTITION OF, without repeating inherited constraints', () => {
  const parent = table('m', { partitioned: true, partitionKey: 'RANGE (id)' });
  const child = table('m_1', {
    partitionOf: { parent: { schema: 'public', name: 'm' }, bound: 'FOR VALUES FROM (0) TO (100)' },
    constraints: [
      { name: 'm_1_pkey', kind: 'p', definition: 'PRIMARY KEY (id)', references: null, inherited: true, columns: ['id'] },
      { name: 'own', kind: 'c', definition: 'CHECK ((id >= 0))', references: null, inherited: false, columns: ['id'] },
    ],
  });
  assert.deepEqual(orderByPartitionDepth([child, parent]).map((t) => t.name), ['m', 'm_1']);
  const r = schemaCopy(snap([child, parent]), none, { readOnlyGuard: false, node: 'q' });
  assert.match(r.statements[0], /CREATE TABLE "public"\."m" \(.*\) PARTITION BY RANGE \(id\)$/);
  assert.equal(r.statements[1], 'CREATE TABLE "public"."m_1" PARTITION OF "public"."m" (CONSTRAINT "own" CHECK ((id >= 0))) FOR VALUES FROM (0) TO (100)');
  // a partition published without its parent becomes a table of its own, with every constraint
  const alone = schemaCopy(snap([child]), none, { readOnlyGuard: false, node: 'q' });
  assert.match(alone.statements[0], /^CREATE TABLE "public"\."m_1" \("id" bigint NOT NULL, CONSTRAINT "m_1_pkey" PRIMARY KEY \(id\), CONSTRAINT "own"/);
});

test('refusals: a composite type, an unlogged table, a generated column over a missing function; defaults over one are dropped', () => {
  const t = table('t', {
    unlogged: true,
    columns: [col('id', 'bigint'), col('p', 'public.point3'), col('g', 'text', { generated: { expression: 'public.mk(id)', kind: 'stored' } }), col('d', 'text', { default: 'public.code()' })],
    functions: [
      { signature: 'public.mk(bigint)', usedBy: 'g' },
      { signature: 'public.code()', usedBy: 'd' },
    ],
  });
  const r = schemaCopy(snap([t], { types: [{ schema: 'public', name: 'point3', kind: 'other', typtype: 'c' }] }), none, { readOnlyGuard: false, node: 'query1' });
  const msgs = r.refusals.map((x) => x.message);
  assert.ok(msgs.some((m) => /public\.t uses the type public\.point3, which schema copy does not create/.test(m)), msgs.join(' | '));
  assert.ok(msgs.some((m) => /unlogged table/.test(m)));
  assert.ok(msgs.some((m) => /generated column public\.t\.g calls public\.mk\(bigint\), which query1 lacks/.test(m)));
  assert.ok(r.notes.some((n) => /the default of public\.t\.d left out/.test(n)));
  const withFn = schemaCopy(snap([t]), { ...none, functions: new Set(['public.mk(bigint)', 'public.code()']) }, { readOnlyGuard: false, node: 'q' });
  assert.match(withFn.statements.join(), /"d" text DEFAULT public\.code\(\)/);
});

test('a column list keeps only its columns and the constraints over them', () => {
  const t = table('t', {
    columns: [col('id', 'bigint', { notNull: true }), col('a', 'text'), col('secret', 'text', { notNull: true })],
    constraints: [
      { name: 'pk', kind: 'p', definition: 'PRIMARY KEY (id)', references: null, inherited: false, columns: ['id'] },
      { name: 'chk', kind: 'c', definition: 'CHECK ((secret <> a))', references: null, inherited: false, columns: ['a', 'secret'] },
    ],
  });
  const s = publishedShape(t, ['id', 'a']);
  assert.deepEqual(s.columns.map((c) => c.name), ['id', 'a']);
  assert.deepEqual(s.constraints.map((c) => c.name), ['pk']);
  assert.equal(publishedShape(t, null), t);
});

test('types a subscriber column accepts', () => {
  assert.ok(typeAccepts('text', 'integer'));
  assert.ok(typeAccepts('bigint', 'integer'));
  assert.ok(typeAccepts('character varying(20)', 'character varying(10)'));
  assert.ok(typeAccepts('character varying', 'character varying(10)'));
  assert.ok(!typeAccepts('character varying(5)', 'character varying(10)'));
  assert.ok(!typeAccepts('integer', 'bigint'));
  assert.ok(!typeAccepts('integer', 'text'));
  assert.ok(!typeAccepts('timestamp with time zone', 'timestamp without time zone'));
  assert.ok(typeAccepts('numeric', 'numeric(10,2)'));
});

test('drift: a missing column is additive (NOT NULL without default added nullable), the rest is refused', () => {
  const pub = table('t', { columns: [col('id', 'bigint', { notNull: true }), col('note', 'text'), col('prio', 'integer', { notNull: true }), col('lvl', 'integer', { notNull: true, default: '3' })] });
  const sub = table('t', { columns: [col('id', 'bigint', { notNull: true }), col('note', 'integer'), col('local', 'text', { notNull: true })] });
  const d = tableDrift(pub, sub, true);
  assert.deepEqual(d.map((x) => x.kind).sort(), ['extra_not_null', 'missing_column', 'missing_column', 'type_mismatch']);
  const missing = d.filter(additive);
  const prio = driftFix(missing.find((x) => x.kind === 'missing_column' && x.column.name === 'prio') as never, pub);
  assert.equal(prio.sql, 'ALTER TABLE "public"."t" ADD COLUMN "prio" integer');
  assert.match(prio.note!, /added without NOT NULL/);
  const lvl = driftFix(missing.find((x) => x.kind === 'missing_column' && x.column.name === 'lvl') as never, pub);
  assert.equal(lvl.sql, 'ALTER TABLE "public"."t" ADD COLUMN "lvl" integer DEFAULT 3 NOT NULL');
  assert.equal(lvl.note, null);
  const noPk = tableDrift(pub, table('t', { columns: pub.columns, constraints: [] }), true);
  assert.ok(noPk.some((x) => x.kind === 'no_identity'));
  assert.ok(!tableDrift(pub, table('t', { columns: pub.columns, constraints: [] }), false).some((x) => x.kind === 'no_identity'), 'inserts only need no identity');
});
