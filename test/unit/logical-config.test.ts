import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { parseIndexStatement } from '../../src/config/load-logical.js';
import { renderHba, renderQueryHba, renderQueryNodeConf, renderSharedConf, renderStandbyConf } from '../../src/config/render.js';
import { PgmError } from '../../src/errors.js';
import { slotLevel, slotSentences, type SlotObservation } from '../../src/ha/slots.js';

function file(text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-lcfg-'));
  fs.writeFileSync(path.join(dir, 'pgmaestro.yaml'), text);
  return path.join(dir, 'pgmaestro.yaml');
}

const nodes = `nodes:
  - name: node1
    port: 6001
    data_dir: data/node1
  - name: node2
    port: 6002
    data_dir: data/node2
  - name: query1
    kind: query
    port: 6003
    data_dir: data/query1
    indexes:
      - "CREATE INDEX orders_note_trgm ON public.orders USING gin (note gin_trgm_ops)"
      - { database: shop, sql: "CREATE UNIQUE INDEX IF NOT EXISTS c_mail ON customers (lower(email));" }
`;
const logical = `logical:
  publications:
    - name: sales
      database: shop
      tables: [public.orders, { name: customers, where: "region = 'eu'", columns: [id, email] }]
  subscriptions:
    - name: sales_query
      publication: sales
      to: query1
    - name: sales_ext
      publication: sales
      to: { dsn: "postgresql://admin@10.0.0.9:5432/shop", passfile: /var/lib/postgresql/pgm.pgpass }
`;

function refused(text: string, pattern: RegExp): void {
  const f = file(text);
  assert.throws(
    () => loadConfig(f),
    (err: unknown) => {
      assert.ok(err instanceof PgmError, String(err));
      assert.equal(err.code, 'config.invalid');
      assert.match(err.render(), pattern);
      assert.ok(err.hint);
      return true;
    },
  );
}

test('query nodes and logical replication load apart from the members', () => {
  const cfg = loadConfig(file(`cluster: demo\n${nodes}${logical}`));
  assert.deepEqual(cfg.nodes.map((n) => n.name), ['node1', 'node2'], 'a query node is never a member');
  assert.deepEqual(cfg.queryNodes!.map((n) => n.name), ['query1']);
  assert.deepEqual(cfg.queryNodes![0].indexes.map((i) => [i.database, i.schema, i.table, i.name]), [
    ['shop', 'public', 'orders', 'orders_note_trgm'],
    ['shop', 'public', 'customers', 'c_mail'],
  ]);
  assert.deepEqual(cfg.queryEndpoint, { host: '127.0.0.1', port: 7004 });
  const lg = cfg.logical!;
  assert.equal(lg.role, 'pgm_logical');
  assert.equal(lg.slotWarnBytes, 1024 ** 3);
  assert.deepEqual(lg.publications[0].scope, { kind: 'tables', tables: [{ schema: 'public', name: 'orders', where: null, columns: null }, { schema: 'public', name: 'customers', where: "region = 'eu'", columns: ['id', 'email'] }] });
  assert.deepEqual(lg.subscriptions[0], { name: 'sales_query', publication: 'sales', target: { kind: 'node', node: 'query1' }, database: 'shop', enabled: true });
  const ext = lg.subscriptions[1].target;
  assert.equal(ext.kind, 'dsn');
  if (ext.kind === 'dsn') assert.deepEqual([ext.host, ext.port, ext.user, ext.database, ext.from], ['10.0.0.9', 5432, 'admin', 'shop', ['10.0.0.9/32']]);
  const plain = loadConfig(file(`cluster: demo\nnodes:\n  - name: node1\n    port: 6001\n    data_dir: d\n`));
  assert.equal(plain.queryEndpoint, null, 'no query endpoint without query nodes');
});

test('bad logical configuration is refused with the key and what to do', () => {
  const base = `cluster: demo\n${nodes}`;
  refused(base + logical.replace('publication: sales\n      to: query1', 'publication: salez\n      to: query1'), /logical\.subscriptions\[0\]\.publication: subscription sales_query names publication 'salez', which is not declared/);
  refused(base + logical.replace('to: query1', 'to: node2'), /logical\.subscriptions\[0\]\.to: node2 is a physical node of this cluster/);
  refused(base + logical.replace('to: query1', 'to: query9'), /there is no query node 'query9'/);
  refused(base + logical.replace('tables: [public.orders,', 'all_tables: true\n      tables: [public.orders,'), /publication sales gives both tables and all_tables/);
  refused(base + logical.replace('admin@10.0.0.9', 'admin:pw@10.0.0.9'), /the dsn carries a password/);
  refused(base + logical.replace('admin@10.0.0.9', 'admin@db.example'), /the subscriber's host 'db\.example' is a name.*HINT: set from:/);
  refused(base + logical.replace('name: sales_ext', 'name: sales_query'), /subscription name 'sales_query' is already used/);
  refused(base + logical + '  role: postgres\n', /logical\.role: 'postgres' is already the cluster's superuser/);
  refused(base.replace('    port: 6002\n    data_dir: data/node2\n', '    port: 6002\n    data_dir: data/node2\n    indexes: ["CREATE INDEX x ON t (a)"]\n') + logical, /nodes\[1\]\.indexes: node2 is a physical node, a byte copy of its primary/);
  refused(base.replace('CREATE INDEX orders_note_trgm ON', 'CREATE INDEX ON') + logical, /nodes\[2\]\.indexes\[0\]: .* is not one CREATE INDEX statement with a name/);
  refused(`cluster: demo\nnodes:\n  - name: q\n    kind: query\n    port: 6001\n    data_dir: d\n`, /every node is of kind query/);
  refused(base + logical + 'endpoints:\n  query: 127.0.0.1:6001\n', /endpoints\.query: 127\.0\.0\.1:6001 is also node node1's port/);
});

test('multi-host (dcs): query nodes are refused until an agent can run them; a subscription by dsn loads', () => {
  const hosted = (text: string) => `cluster: demo\ndcs:\n  etcd:\n    endpoints: [http://127.0.0.1:2379]\nhosts:\n  - { name: a, agent: 127.0.0.1:8008 }\n${text.replace(/    port: (\d+)\n/g, '    host: a\n    port: $1\n')}`;
  refused(hosted(nodes) + logical, /nodes\[2\]\.kind: query nodes cannot run in a multi-host cluster \(dcs\) yet.*HINT: subscribe an independent server by dsn/);
  refused(hosted(nodes).replace('    host: a\n    port: 6003', '    port: 6003') + logical, /nodes\[2\]\.kind: query nodes cannot run in a multi-host cluster/);
  const physical = nodes.slice(0, nodes.indexOf('  - name: query1'));
  const dsnOnly = logical.slice(0, logical.indexOf('    - name: sales_query')) + logical.slice(logical.indexOf('    - name: sales_ext'));
  const cfg = loadConfig(file(hosted(physical) + dsnOnly));
  assert.equal(cfg.queryNodes?.length, 0);
  assert.deepEqual(cfg.logical?.subscriptions.map((x) => [x.name, x.target.kind]), [['sales_ext', 'dsn']]);
  assert.equal(cfg.dcs?.kind, 'etcd');
});

test('index statements: name, schema and table, or nothing', () => {
  assert.deepEqual(parseIndexStatement('create index concurrently if not exists ix ON only app.t using gin (x)'), { name: 'ix', schema: 'app', table: 't' });
  assert.equal(parseIndexStatement('CREATE INDEX a ON t (x); DROP TABLE t'), null);
  assert.equal(parseIndexStatement('DROP INDEX a'), null);
});

test('a publishing cluster writes logical WAL, keeps failover slots on its standbys (17+) and lets only subscribers in', () => {
  const cfg = loadConfig(file(`cluster: demo\n${nodes}${logical}`));
  assert.match(renderSharedConf(cfg, 18), /^wal_level = 'logical'$/m);
  assert.match(renderSharedConf(cfg, 18), /^sync_replication_slots = on$/m);
  assert.doesNotMatch(renderSharedConf(cfg, 16), /sync_replication_slots/);
  assert.match(renderStandbyConf(cfg, cfg.nodes[1], cfg.nodes[0], '/s/replication.pgpass'), /primary_conninfo = '.* dbname=postgres /);
  const hba = renderHba(cfg).split('\n');
  assert.ok(hba.some((l) => /^host\s+shop\s+pgm_logical\s+127\.0\.0\.1\/32\s+scram-sha-256$/.test(l)), 'the query node, into shop only');
  assert.ok(hba.some((l) => /^host\s+shop\s+pgm_logical\s+10\.0\.0\.9\/32\s+scram-sha-256$/.test(l)), 'the DSN subscriber from its address');
  assert.ok(hba.indexOf(hba.find((l) => /^host\s+all\s+pgm_logical\s+all\s+reject$/.test(l))!) < hba.indexOf(hba.find((l) => /^host\s+all\s+all\s/.test(l))!), 'nowhere else, before the clients line');
  assert.ok(hba.some((l) => /^host\s+postgres\s+replicator\s+127\.0\.0\.1\/32\s+scram-sha-256$/.test(l)), 'the slot sync worker reads database postgres');
  const plain = loadConfig(file(`cluster: demo\nnodes:\n  - name: node1\n    port: 6001\n    data_dir: d\n`));
  assert.match(renderSharedConf(plain, 18), /^wal_level = 'replica'$/m);
  assert.doesNotMatch(renderHba(plain), /pgm_logical|host\s+postgres\s+replicator/);

  const q = renderQueryNodeConf(cfg, cfg.queryNodes![0]);
  assert.match(q, /^port = 6003$/m);
  assert.match(q, /^default_transaction_read_only = on$/m);
  assert.match(q, /^synchronous_standby_names = ''$/m);
  const qh = renderQueryHba(cfg);
  assert.match(qh, /^host\s+replication\s+all\s+all\s+reject$/m);
  assert.doesNotMatch(qh, /scram-sha-256\n.*replication\s+replicator/);
});

test('a logical slot past logical.slot_warn gets one warning; a lost one says how to recover', () => {
  const MB = 1048576;
  const s = (over: Partial<SlotObservation>): SlotObservation => ({ name: 'sales_query', kind: 'logical', node: 'sales_query', active: false, retainedBytes: 0, walStatus: 'reserved', safeWalSize: null, ...over });
  assert.equal(slotLevel(s({ retainedBytes: 300 * MB }), 2048 * MB, 256 * MB), 'warn');
  assert.equal(slotLevel(s({ retainedBytes: 300 * MB, kind: 'replica' }), 2048 * MB, 256 * MB), 'ok', 'slot_warn is for logical slots');
  const r = slotSentences(new Map(), [s({ retainedBytes: 300 * MB })], 2048 * MB, 'node1', 256 * MB);
  assert.match(r.sentences[0], /^warning: subscription sales_query's logical slot sales_query holds 300 MiB of WAL on node1, above logical\.slot_warn \(256 MiB\): nothing streams from it/);
  assert.deepEqual(slotSentences(r.levels, [s({ retainedBytes: 310 * MB })], 2048 * MB, 'node1', 256 * MB).sentences, []);
  assert.match(slotSentences(r.levels, [s({ walStatus: 'lost', retainedBytes: null })], 2048 * MB, 'node1', 256 * MB).sentences[0], /pgmaestro logical resync sales_query/);
});
