import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { TestCluster } from '../helpers/cluster.js';
import { PG15_BIN } from '../helpers/paths.js';
import { StandaloneServer, appendConfig, fingerprint, replaceInConfig, sqlAt } from '../helpers/logical.js';

/**
 * A PostgreSQL 18 cluster publishing to an external PostgreSQL 15 server
 * given by DSN (Debian's), and the bad input `logical apply` refuses with
 * one sentence and nothing half-created: a table that does not exist, a
 * publication not declared, a table without primary key published for
 * updates, and a subscriber table whose column has an incompatible type.
 */

const P = 2150; // the cluster's node 2150, endpoints 3150, console 4150
const EXTERNAL = 2500; // the external PostgreSQL 15
let c: TestCluster;
let ext: StandaloneServer;
after(async () => {
  await c?.destroy();
  ext?.stop();
});

test('subscription on an external PostgreSQL 15 given by DSN, and bad input', { timeout: 300_000 }, async () => {
  ext = await StandaloneServer.start(PG15_BIN, EXTERNAL);
  c = await TestCluster.init('logicaldsn', { portBase: P, replicas: 0 });
  replaceInConfig(c, 'wal_archive: true', 'wal_archive: false');
  const passfile = path.join(ext.dir, 'pgmaestro-logical.pgpass');
  appendConfig(
    c,
    `logical:
  publications:
    - name: sales
      database: shop
      tables: [public.orders, public.nope]
  subscriptions:
    - name: sales_ext
      publication: sales
      to: { dsn: "postgresql://postgres@127.0.0.1:${EXTERNAL}/shop", passfile: ${passfile}, admin_passfile: ${ext.passfile()} }
`,
  );
  let r = await c.run('up');
  assert.equal(r.code, 2, 'up refuses the publication of a database that does not exist yet');
  const pw = c.password();
  const sql = (text: string, params: unknown[] = [], db = 'shop') => sqlAt(P, pw, db, text, params);
  await sql('CREATE DATABASE shop', [], 'postgres');
  await sql('CREATE TABLE orders (id bigserial PRIMARY KEY, note text, qty int)');
  await sql('CREATE TABLE log (at timestamptz DEFAULT now(), line text)');
  await sql("INSERT INTO orders (note, qty) SELECT 'order ' || g, g FROM generate_series(1, 500) g");
  await ext.sql('postgres', 'CREATE DATABASE shop');

  const nothingCreated = async () => {
    assert.equal((await sql('SELECT 1 FROM pg_publication')).length, 0, 'no publication');
    assert.equal((await sql("SELECT 1 FROM pg_replication_slots WHERE slot_type = 'logical'")).length, 0, 'no slot');
    assert.equal((await ext.sql('postgres', 'SELECT 1 FROM pg_subscription')).length, 0, 'no subscription');
    assert.ok(!fs.existsSync(passfile), 'no passfile written');
  };

  // a table that does not exist
  r = await c.run('logical', 'apply');
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^pgmaestro: publication sales names the table public\.nope, which does not exist in database shop on node1; nothing was changed\. HINT: /);
  assert.equal(r.stderr.trim().split('\n').length, 1, 'one sentence');
  await nothingCreated();

  // a table without primary key or replica identity, published for updates
  replaceInConfig(c, 'tables: [public.orders, public.nope]', 'tables: [public.orders, public.log]');
  r = await c.run('logical', 'apply');
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /publication sales would publish updates and deletes of public\.log, which has no primary key or replica identity: every UPDATE and DELETE on it would then fail on node1; nothing was changed\. HINT: add a primary key .*publish only \[insert, truncate\]/);
  await nothingCreated();

  // a subscription naming a publication that is not declared
  replaceInConfig(c, 'publication: sales\n', 'publication: salez\n');
  r = await c.run('logical', 'apply');
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /logical\.subscriptions\[0\]\.publication: subscription sales_ext names publication 'salez', which is not declared\. HINT: declare it under logical\.publications, or use one of: sales\./);
  replaceInConfig(c, 'publication: salez\n', 'publication: sales\n');

  // the subscriber's existing table has an incompatible column type
  replaceInConfig(c, 'tables: [public.orders, public.log]', 'tables: [public.orders]');
  await ext.sql('shop', 'CREATE TABLE orders (id bigint PRIMARY KEY, note integer, qty int)');
  r = await c.run('logical', 'apply');
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^pgmaestro: public\.orders\.note is integer on 127\.0\.0\.1:2500 \(database shop\) but text on node1; rows from node1 could fail to load or change meaning there; nothing was changed\./);
  await nothingCreated();

  // fixed: the subscription on PostgreSQL 15 copies the rows and follows the changes
  await ext.sql('shop', 'DROP TABLE orders');
  r = await c.run('logical', 'apply');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /wrote the passfile .* on 127\.0\.0\.1:2500/);
  assert.match(r.stdout, /created subscription sales_ext on 127\.0\.0\.1:2500 \(database shop\)/);
  assert.match(r.stdout, /initial copy done/);
  assert.equal(fs.statSync(passfile).mode & 0o777, 0o600, 'the subscriber reads a 0600 passfile');
  const conninfo = (await ext.sql<{ c: string }>('shop', 'SELECT subconninfo AS c FROM pg_subscription'))[0].c;
  assert.match(conninfo, new RegExp(`passfile=${passfile.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
  assert.doesNotMatch(conninfo, /password/);
  await sql("UPDATE orders SET note = 'changed' WHERE id < 10");
  await sql('DELETE FROM orders WHERE id > 490');
  await c.until('the external subscriber has the primary\'s rows', async () => (await fingerprint(EXTERNAL, ext.password, 'shop', 'orders')).sum === (await fingerprint(P, pw, 'shop', 'orders')).sum, 30_000);
  r = await c.run('logical', 'apply');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^logical replication is as declared/);
  r = await c.run('logical', 'status', '--json');
  const st = JSON.parse(r.stdout);
  assert.equal(st.subscriptions[0].state, 'streaming');
  assert.deepEqual(st.subscriptions[0].tables, [{ name: 'public.orders', state: 'ready' }]);
});
