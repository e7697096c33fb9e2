import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { TestCluster } from '../helpers/cluster.js';
import { appendConfig, fingerprint, replaceInConfig, sqlAt, steadyWriter } from '../helpers/logical.js';

/**
 * Logical replication on the embedded PostgreSQL 18: a primary and a
 * replica publish two tables of `shop` to a query node with its own trigram
 * index. Rows flow (insert, update, delete), a table outside the
 * publication does not, the index exists only on the query node and serves
 * LIKE '%…%', the query node refuses application writes, no password is in
 * the subscription, a log or the process list; apply twice changes nothing;
 * a table added to the file is copied and followed; a column added on the
 * primary is reported as drift and added by apply; sequences are copied;
 * and a switchover then a forced failover during continuous inserts leave
 * the query node with exactly the primary's rows.
 */

const P = 2100; // nodes 2100-2102, endpoints 3100 (rw) and 3103 (query), console 4100
let c: TestCluster;
after(async () => {
  await c?.destroy();
});

test('logical replication to a query node (PostgreSQL 18)', { timeout: 420_000 }, async () => {
  c = await TestCluster.init('logical18', { portBase: P, replicas: 1 });
  appendConfig(
    c,
    `  - name: query1
    kind: query
    port: ${P + 2}
    data_dir: data/query1
    settings: { work_mem: 16MB }
    indexes:
      - "CREATE INDEX orders_note_trgm ON public.orders USING gin (note gin_trgm_ops)"
`,
  );
  replaceInConfig(c, 'wal_archive: true', 'wal_archive: false');
  appendConfig(
    c,
    `logical:
  publications:
    - name: sales
      database: shop
      tables: [public.orders, public.customers]
  subscriptions:
    - name: sales_query
      publication: sales
      to: query1
`,
  );
  // up brings the cluster and the query node up, then refuses the publication of a database that does not exist yet
  let r = await c.run('up');
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stdout, /query1: initialised a new PostgreSQL 18\.\d+ query node/);
  assert.match(r.stderr, /^pgmaestro: publication sales is in database shop, which does not exist on the primary node1; nothing was changed\. HINT: create the database/);
  const pw = c.password();
  const sql = <T extends Record<string, unknown> = Record<string, unknown>>(port: number, text: string, params: unknown[] = [], db = 'shop') => sqlAt<T>(port, pw, db, text, params);

  // the query node is its own database system, with the shared settings and its overrides
  const sysid = async (port: number) => (await sql<{ s: string }>(port, 'SELECT system_identifier::text AS s FROM pg_control_system()', [], 'postgres'))[0].s;
  assert.notEqual(await sysid(P + 2), await sysid(P));
  assert.equal((await sql<{ w: string }>(P + 2, "SELECT current_setting('work_mem') AS w", [], 'postgres'))[0].w, '16MB');

  // the application's schema on the primary
  await sql(P, 'CREATE DATABASE shop', [], 'postgres');
  await sql(P, `CREATE TYPE status AS ENUM ('new', 'paid')`);
  await sql(P, 'CREATE TABLE customers (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL, email text UNIQUE)');
  await sql(P, `CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id bigint REFERENCES customers (id), note text, qty int CHECK (qty > 0), st status DEFAULT 'new', total numeric(10,2) GENERATED ALWAYS AS (qty * 2.5) STORED)`);
  await sql(P, 'CREATE TABLE secret (id int PRIMARY KEY, x text)');
  await sql(P, 'CREATE TABLE items (id int PRIMARY KEY, sku text)');
  await sql(P, "INSERT INTO customers (name, email) SELECT 'c' || g, 'c' || g || '@x' FROM generate_series(1, 50) g");
  await sql(P, "INSERT INTO orders (customer_id, note, qty) SELECT 1 + g % 50, 'order ' || g || ' of blue widgets', 1 + g % 5 FROM generate_series(1, 3000) g");
  await sql(P, "INSERT INTO secret VALUES (1, 'not for the query node')");
  await sql(P, "INSERT INTO items SELECT g, 'sku' || g FROM generate_series(1, 40) g");

  r = await c.run('logical', 'apply', '--dry-run');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /would create publication sales/);
  assert.equal((await sql(P, 'SELECT 1 FROM pg_publication')).length, 0, 'a dry run creates nothing');

  r = await c.run('logical', 'apply');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /created 2 tables on query1 \(database shop\) from node1's catalog: public\.customers, public\.orders/);
  assert.match(r.stdout, /initial copy done/);
  assert.match(r.stdout, /create index public\.orders_note_trgm/);

  // apply twice changes nothing
  const subOid = (await sql<{ oid: string }>(P + 2, 'SELECT oid::text FROM pg_subscription'))[0].oid;
  r = await c.run('logical', 'apply');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'logical replication is as declared: 1 publication, 1 subscription, 1 query-node index');
  assert.equal((await sql<{ oid: string }>(P + 2, 'SELECT oid::text FROM pg_subscription'))[0].oid, subOid);

  // the copied definitions: identity, serial, enum, generated column, check, foreign key
  const def = await sql<{ d: string }>(P + 2, "SELECT pg_get_constraintdef(oid) AS d FROM pg_constraint WHERE conrelid = 'orders'::regclass AND contype <> 'n' ORDER BY conname");
  assert.deepEqual(def.map((x) => x.d).sort(), ['CHECK ((qty > 0))', 'FOREIGN KEY (customer_id) REFERENCES customers(id)', 'PRIMARY KEY (id)']);
  assert.equal((await sql<{ g: string }>(P + 2, "SELECT attgenerated::text AS g FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'total'"))[0].g, 's');
  assert.equal((await sql<{ i: string }>(P + 2, "SELECT attidentity::text AS i FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attname = 'id'"))[0].i, 'a');

  // changes flow; the table outside the publication does not exist there
  await sql(P, "UPDATE orders SET note = 'changed note' WHERE id = 1");
  await sql(P, 'DELETE FROM orders WHERE id = 2');
  await sql(P, "INSERT INTO orders (customer_id, note, qty) VALUES (3, 'a fresh blue order', 2)");
  await c.until('changes on query1', async () => (await fingerprint(P + 2, pw, 'shop', 'orders')).sum === (await fingerprint(P, pw, 'shop', 'orders')).sum, 30_000);
  assert.equal((await sql(P + 2, "SELECT 1 FROM pg_class WHERE relname = 'secret'")).length, 0);

  // the trigram index: on the query node only, and LIKE '%…%' uses it
  assert.equal((await sql(P, "SELECT 1 FROM pg_indexes WHERE indexname = 'orders_note_trgm'")).length, 0);
  const explain = await explainOn(P + 2, pw, "SELECT id FROM orders WHERE note LIKE '%fresh blue%'");
  assert.match(explain, /Bitmap Index Scan on orders_note_trgm/, explain);

  // the query node refuses application writes; the role setup and the passfile keep passwords out of sight
  await assert.rejects(sql(P + 2, "INSERT INTO orders (note, qty) VALUES ('x', 1)"), /read-only transaction/);
  await assert.rejects(sqlAt(P + 2, pw, 'shop', 'BEGIN READ WRITE; DELETE FROM orders WHERE id = 1; COMMIT'), /fed by logical replication on this query node and takes no writes/);
  const conninfo = (await sql<{ c: string }>(P + 2, 'SELECT subconninfo AS c FROM pg_subscription'))[0].c;
  assert.match(conninfo, /user=pgm_logical passfile=\S+logical\.pgpass target_session_attrs=read-write/);
  assert.doesNotMatch(conninfo, /password/);
  const role = (await sql<{ s: boolean; r: boolean }>(P, "SELECT rolsuper AS s, rolreplication AS r FROM pg_roles WHERE rolname = 'pgm_logical'"))[0];
  assert.deepEqual(role, { s: false, r: true });
  assert.equal((await sql<{ ok: boolean }>(P, "SELECT has_table_privilege('pgm_logical', 'secret', 'SELECT') AS ok"))[0].ok, false);
  const secret = fs.readFileSync(path.join(c.dir, 'secrets', 'logical.password'), 'utf8').trim();
  assert.equal(fs.statSync(path.join(c.dir, 'secrets', 'logical.pgpass')).mode & 0o777, 0o600);
  assert.ok(!execFileSync('ps', ['axww', '-o', 'args']).toString().includes(secret), 'no password in the process list');
  for (const f of logFiles(c.dir)) assert.ok(!fs.readFileSync(f, 'utf8').includes(secret), `no password in ${f}`);

  // a table added to the file: its existing rows, then its changes
  replaceInConfig(c, 'tables: [public.orders, public.customers]', 'tables: [public.orders, public.customers, public.items]');
  r = await c.run('logical', 'apply');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /refreshed subscription sales_query on query1 \(database shop\): copies public\.items/);
  assert.equal((await sql(P + 2, 'SELECT * FROM items')).length, 40);
  await sql(P, "INSERT INTO items VALUES (41, 'new')");
  await c.until('items change on query1', async () => (await sql(P + 2, 'SELECT 1 FROM items WHERE id = 41')).length === 1, 30_000);

  // drift: a column added on the primary is reported, then added by apply
  await sql(P, 'ALTER TABLE orders ADD COLUMN prio int NOT NULL DEFAULT 3');
  await sql(P, "INSERT INTO orders (customer_id, note, qty, prio) VALUES (1, 'urgent', 1, 1)");
  r = await c.run('logical', 'status', '--json');
  assert.equal(r.code, 0, r.stderr);
  const drift = JSON.parse(r.stdout).subscriptions[0].drift as string[];
  assert.ok(drift.some((d) => /public\.orders\.prio \(integer\) exists on node1 but not on query1/.test(d)), drift.join(' | '));
  r = await c.run('logical', 'apply');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /1 column added that node1 has and it lacked/);
  await c.until('the row with the new column', async () => (await sql(P + 2, "SELECT 1 FROM orders WHERE note = 'urgent' AND prio = 1")).length === 1, 30_000);

  // sequences: the query node's take the primary's values
  r = await c.run('logical', 'sync-sequences', '--json');
  assert.equal(r.code, 0, r.stderr);
  const primarySeq = (await sql<{ v: string }>(P, "SELECT last_value::text AS v FROM orders_id_seq"))[0].v;
  assert.equal((await sql<{ v: string }>(P + 2, 'SELECT last_value::text AS v FROM orders_id_seq'))[0].v, primarySeq);

  // the query endpoint serves the query node
  assert.equal((await sqlAt<{ p: number }>(P + 1003, pw, 'shop', 'SELECT inet_server_port() AS p'))[0].p, P + 2);

  // a switchover, then a forced failover, while rows are inserted through the read-write endpoint
  const writer = steadyWriter(P + 1000, pw, 'shop', "INSERT INTO orders (customer_id, note, qty) VALUES (1, $1, 1)");
  const syncedOn = async (node: string) => {
    const st = JSON.parse((await c.run('logical', 'status', '--json')).stdout);
    return (st.subscriptions[0].slot.synced_on as string[]).includes(node);
  };
  await c.until('node2 holds a copy of the failover slot', () => syncedOn('node2'), 60_000);
  await new Promise((res) => setTimeout(res, 1500));
  r = await c.run('switchover', '--to', 'node2');
  assert.equal(r.code, 0, r.stderr);
  await c.until('node1, now a replica, holds a copy of the failover slot', () => syncedOn('node1'), 90_000);
  await new Promise((res) => setTimeout(res, 1500));
  r = await c.run('failover', '--to', 'node1');
  assert.equal(r.code, 0, r.stderr);
  await new Promise((res) => setTimeout(res, 2000));
  const acked = await writer.stop();
  assert.ok(acked > 20, `the writer got ${acked} inserts through`);
  const primaryRows = await fingerprint(P, pw, 'shop', 'orders');
  await c.until('query1 has exactly the primary\'s rows', async () => (await fingerprint(P + 2, pw, 'shop', 'orders')).sum === primaryRows.sum, 60_000);
  assert.deepEqual(await fingerprint(P + 2, pw, 'shop', 'orders'), primaryRows);
  const dup = await sql(P + 2, 'SELECT note FROM orders GROUP BY note HAVING count(*) > 1 AND note LIKE $1', ['w%']);
  assert.equal(dup.length, 0, 'no row applied twice');
  const st = JSON.parse((await c.run('logical', 'status', '--json')).stdout);
  assert.equal(st.primary, 'node1');
  assert.equal(st.subscriptions[0].state, 'streaming');
  assert.equal(st.subscriptions[0].conflicts.insert_exists, 0);
});

async function explainOn(port: number, password: string, query: string): Promise<string> {
  const pg = (await import('pg')).default;
  const cl = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'shop' });
  await cl.connect();
  try {
    await cl.query('SET enable_seqscan = off');
    const r = await cl.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${query}`);
    return r.rows.map((x) => x['QUERY PLAN']).join('\n');
  } finally {
    await cl.end();
  }
}

function logFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, depth: number) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory() && depth < 4 && e.name !== 'base' && e.name !== 'pg_wal') walk(p, depth + 1);
      else if (e.isFile() && e.name.endsWith('.log')) out.push(p);
    }
  };
  walk(dir, 0);
  return out;
}
