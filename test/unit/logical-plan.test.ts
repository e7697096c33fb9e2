import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IndexDecl, PublicationConfig } from '../../src/config/types.js';
import { wantedStandbySlots } from '../../src/logical/failover-slots.js';
import { indexDigest, indexStatements, neededExtensions, planIndexes } from '../../src/logical/indexes.js';
import { parseManaged, planPublication, publicationDigest, type ObservedPublication } from '../../src/logical/publications.js';
import { chooseQueryTarget } from '../../src/logical/query-endpoint.js';
import { conninfoValue, planSubscription, subscriptionConninfo, tableState, type ObservedSubscription, type WantedSubscription } from '../../src/logical/subscriptions.js';
import { findPassword, parsePassLine, passLine } from '../../src/postgres/passfile.js';

const pub = (over: Partial<PublicationConfig> = {}): PublicationConfig => ({
  name: 'sales',
  database: 'shop',
  scope: { kind: 'tables', tables: [{ schema: 'public', name: 'orders', where: null, columns: null }, { schema: 'public', name: 'customers', where: "region = 'eu'", columns: ['id', 'name'] }] },
  publish: ['insert', 'update', 'delete', 'truncate'],
  ...over,
});
const observed = (p: PublicationConfig, over: Partial<ObservedPublication> = {}): ObservedPublication => ({
  name: p.name,
  digest: publicationDigest(p),
  allTables: p.scope.kind === 'all',
  ops: p.publish,
  tables: p.scope.kind === 'tables' ? p.scope.tables.map((t) => `${t.schema}.${t.name}`).sort() : [],
  schemas: p.scope.kind === 'schemas' ? [...p.scope.schemas] : [],
  ...over,
});

test('a new publication: created with its filters and column lists, and marked as pgmaestro’s', () => {
  const r = planPublication(pub(), null, 'demo');
  assert.equal(r.statements[0], `CREATE PUBLICATION "sales" FOR TABLE "public"."orders", "public"."customers" ("id", "name") WHERE (region = 'eu') WITH (publish = 'insert, update, delete, truncate')`);
  assert.match(r.statements[1], /^COMMENT ON PUBLICATION "sales" IS 'pgmaestro demo [0-9a-f]{16}'$/);
  assert.equal(parseManaged(`pgmaestro demo ${publicationDigest(pub())}`, 'demo'), publicationDigest(pub()));
  assert.equal(parseManaged(`pgmaestro other ${publicationDigest(pub())}`, 'demo'), null, 'another cluster’s is not ours');
  assert.equal(parseManaged('made by hand', 'demo'), null);
});

test('an unchanged publication plans nothing; a changed one the least that gets it there', () => {
  const p = pub();
  assert.deepEqual(planPublication(p, observed(p), 'demo').statements, []);
  const added = pub({ scope: { kind: 'tables', tables: [...(p.scope.kind === 'tables' ? p.scope.tables : []), { schema: 'public', name: 'items', where: null, columns: null }] } });
  const r = planPublication(added, observed(p), 'demo');
  assert.match(r.statements[0], /^ALTER PUBLICATION "sales" SET TABLE .*"public"\."items"$/);
  assert.match(r.sentence!, /alter publication sales in shop: add public\.items/);
  const filtered = pub({ scope: { kind: 'tables', tables: [{ schema: 'public', name: 'orders', where: 'qty > 1', columns: null }, { schema: 'public', name: 'customers', where: "region = 'eu'", columns: ['id', 'name'] }] } });
  assert.match(planPublication(filtered, observed(p), 'demo').sentence!, /set its row filters and column lists/);
  const ops = pub({ publish: ['insert'] });
  assert.deepEqual(planPublication(ops, observed(p, { digest: publicationDigest(ops) }), 'demo').statements, [`ALTER PUBLICATION "sales" SET (publish = 'insert')`]);
});

test('into or out of FOR ALL TABLES means replacing it in one transaction; one made by hand is adopted', () => {
  const all = pub({ scope: { kind: 'all' } });
  const r = planPublication(all, observed(pub()), 'demo');
  assert.deepEqual(r.statements.slice(0, 2), ['DROP PUBLICATION "sales"', `CREATE PUBLICATION "sales" FOR ALL TABLES WITH (publish = 'insert, update, delete, truncate')`]);
  const byHand = planPublication(pub(), observed(pub(), { digest: null }), 'demo');
  assert.match(byHand.statements[0], /^ALTER PUBLICATION "sales" SET TABLE /, 'its filters cannot be trusted: set as the file says');
  assert.match(byHand.statements[1], /^COMMENT ON PUBLICATION/);
  assert.match(byHand.sentence!, /made by hand before: pgmaestro manages it from now on/);
  const schemas = pub({ scope: { kind: 'schemas', schemas: ['sales', 'app'] } });
  assert.match(planPublication(schemas, observed(pub()), 'demo').statements[0], /^ALTER PUBLICATION "sales" SET TABLES IN SCHEMA "app", "sales"$/);
});

test('subscriptions: the connection string names every node, the role and a passfile — never a password', () => {
  const ci = subscriptionConninfo([{ host: '10.0.2.1', port: 5432 }, { host: '10.0.2.2', port: 5433 }], 'shop', 'pgm_logical', '/var/lib/pgmaestro/demo/secrets/logical.pgpass');
  assert.equal(ci, 'host=10.0.2.1,10.0.2.2 port=5432,5433 dbname=shop user=pgm_logical passfile=/var/lib/pgmaestro/demo/secrets/logical.pgpass target_session_attrs=read-write connect_timeout=10');
  assert.equal(conninfoValue("/my dir/it's"), "'/my dir/it\\'s'");
  assert.doesNotMatch(ci, /password/);
});

test('subscription plan: create, then nothing, a refresh for added or removed tables, alters for the rest', () => {
  const want: WantedSubscription = { name: 's', publication: 'sales', database: 'shop', enabled: true, conninfo: 'host=a' };
  const have: ObservedSubscription = { oid: 1, name: 's', database: 'shop', enabled: true, conninfo: 'host=a', slot: 's', publications: ['sales'], digest: 'v1' };
  assert.deepEqual(planSubscription(want, null, [], [], 'demo'), [{ kind: 'create' }]);
  assert.deepEqual(planSubscription(want, have, ['public.a'], ['public.a'], 'demo'), []);
  assert.deepEqual(planSubscription(want, have, ['public.a', 'public.b'], ['public.a', 'public.c'], 'demo'), [{ kind: 'refresh', added: ['public.b'], removed: ['public.c'] }]);
  const steps = planSubscription({ ...want, conninfo: 'host=a,b', enabled: false }, { ...have, digest: null }, ['public.a'], ['public.a'], 'demo');
  assert.deepEqual(steps.map((s) => (s.kind === 'alter' ? s.sql : s.kind)), [`ALTER SUBSCRIPTION "s" CONNECTION 'host=a,b'`, 'ALTER SUBSCRIPTION "s" DISABLE', `COMMENT ON SUBSCRIPTION "s" IS 'pgmaestro demo v1'`]);
  assert.deepEqual(['i', 'd', 'f', 's', 'r', '?'].map(tableState), ['copying', 'copying', 'catching up', 'catching up', 'ready', 'unknown']);
});

test('indexes: created when missing, rebuilt when their statement changed or they are invalid, adopted, pruned only when asked', () => {
  const decl = (name: string, sql: string): IndexDecl => ({ database: 'shop', sql, name, schema: 'public', table: 'orders' });
  const a = decl('a', 'CREATE INDEX a ON public.orders USING gin (note gin_trgm_ops)');
  const b = decl('b', 'CREATE INDEX b ON public.orders (qty)');
  const c = decl('c', 'CREATE INDEX c ON public.orders (st)');
  const obs = [
    { schema: 'public', name: 'b', table: 'orders', digest: indexDigest('CREATE INDEX b ON public.orders (id)'), valid: true },
    { schema: 'public', name: 'c', table: 'orders', digest: null, valid: true },
    { schema: 'public', name: 'old', table: 'orders', digest: indexDigest('x'), valid: true },
    { schema: 'public', name: 'hand', table: 'orders', digest: null, valid: true },
  ];
  const r = planIndexes([a, b, c], obs, false);
  assert.deepEqual(r.steps.map((s) => `${s.kind}:${s.kind === 'drop' ? s.index.name : s.decl.name}${s.kind === 'create' ? `:${s.reason}` : ''}`), ['create:a:missing', 'create:b:changed', 'adopt:c']);
  assert.deepEqual(r.wouldDrop.map((o) => o.name), ['old'], 'only pgmaestro’s own are dropped');
  assert.deepEqual(planIndexes([a, b, c], obs, true).steps.filter((s) => s.kind === 'drop').length, 1);
  assert.deepEqual(indexStatements(r.steps[1], 'demo').slice(0, 2), ['DROP INDEX IF EXISTS "public"."b"', b.sql]);
  assert.deepEqual(planIndexes([a], [{ schema: 'public', name: 'a', table: 'orders', digest: indexDigest(a.sql), valid: false }], false).steps.map((s) => s.kind === 'create' && s.reason), ['invalid']);
  assert.deepEqual(planIndexes([a], [{ schema: 'public', name: 'a', table: 'orders', digest: indexDigest(a.sql), valid: true }], false).steps, []);
  assert.deepEqual(neededExtensions([a, b], []), ['pg_trgm']);
  assert.deepEqual(neededExtensions([b], ['btree_gin']), ['btree_gin']);
});

test('synchronized_standby_slots: the failover candidates that stream, or were gone only briefly', () => {
  const nodes = [
    { name: 'n1', nofailover: false },
    { name: 'n2', nofailover: false },
    { name: 'n3', nofailover: false },
    { name: 'n4', nofailover: true },
    { name: 'n5', nofailover: false },
  ];
  const slots = [
    { name: 'pgm_n2', active: true, inactiveMs: null },
    { name: 'pgm_n3', active: false, inactiveMs: 5000 },
    { name: 'pgm_n4', active: true, inactiveMs: null },
    { name: 'pgm_n5', active: false, inactiveMs: 120_000 },
  ];
  assert.deepEqual(wantedStandbySlots('n1', nodes, new Set(), slots, 30_000), ['pgm_n2', 'pgm_n3']);
  assert.deepEqual(wantedStandbySlots('n1', nodes, new Set(['n2']), slots, 30_000), ['pgm_n3'], 'a fenced node is never waited for');
  assert.deepEqual(wantedStandbySlots('n2', nodes, new Set(), [], 30_000), [], 'no slot, nothing to wait for');
});

test('the query endpoint stays with a query node while it answers', () => {
  assert.equal(chooseQueryTarget([{ name: 'q1', up: true }, { name: 'q2', up: true }], null), 'q1');
  assert.equal(chooseQueryTarget([{ name: 'q1', up: true }, { name: 'q2', up: true }], 'q2'), 'q2');
  assert.equal(chooseQueryTarget([{ name: 'q1', up: true }, { name: 'q2', up: false }], 'q2'), 'q1');
  assert.equal(chooseQueryTarget([{ name: 'q1', up: false }], 'q1'), null);
});

test('passfiles as libpq reads them', () => {
  assert.deepEqual(parsePassLine('h:5432:db:u:p\\:w\\\\d'), { host: 'h', port: '5432', database: 'db', user: 'u', password: 'p:w\\d' });
  assert.equal(parsePassLine('# comment'), null);
  const text = ['127.0.0.1:2500:*:postgres:first', '*:*:*:postgres:second'].join('\n');
  assert.equal(findPassword(text, { host: '127.0.0.1', port: 2500, database: 'shop', user: 'postgres' }), 'first');
  assert.equal(findPassword(text, { host: '10.0.0.1', port: 2500, database: 'shop', user: 'postgres' }), 'second');
  assert.equal(findPassword(text, { host: '10.0.0.1', port: 2500, database: 'shop', user: 'app' }), null);
  assert.equal(passLine('r', 'a:b'), '*:*:*:r:a\\:b');
  assert.equal(findPassword(passLine('r', 'a:b'), { host: 'x', port: 1, database: 'd', user: 'r' }), 'a:b');
});
