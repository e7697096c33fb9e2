import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from '../helpers/cluster.js';
import { PG15_BIN } from '../helpers/paths.js';
import { setHa } from '../helpers/ha.js';

/** On PostgreSQL 15 the old primary rejoins through pg_rewind; a failover with no eligible candidate is refused. */
const PORT = 29400;
let c: TestCluster;

before(async () => {
  c = await TestCluster.init('ha-rw15', { portBase: PORT, replicas: 1, binDir: PG15_BIN });
  setHa(c, ['restart_first: false', 'failover_timeout: 3s']);
  const r = await c.run('up');
  assert.equal(r.code, 0, r.stderr);
  await c.sql(PORT, 'CREATE TABLE t (id int primary key)');
  await c.sql(PORT, 'INSERT INTO t SELECT generate_series(1, 1000)');
});
after(async () => {
  await c?.destroy();
});

test('pg15: forced failover, then the old primary rejoins through pg_rewind', async () => {
  const f = await c.run('failover', '--to', 'node2');
  assert.equal(f.code, 0, f.stderr);
  assert.match(f.stdout, /promoted node2 \(timeline 2\)/);
  await c.sql(PORT + 1, 'INSERT INTO t SELECT generate_series(1001, 2000)');
  const r = await c.run('rejoin', 'node1');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /node1 rejoined as a replica of node2 through pg_rewind/);
  await c.until('node1 caught up', async () => (await c.sql<{ n: string }>(PORT, 'SELECT count(*) AS n FROM t'))[0].n === '2000');
  const st = await c.status();
  assert.deepEqual(st.nodes.map((n) => n.role), ['replica', 'primary']);
});

test('pg15: failover with no eligible candidate is refused and changes nothing', async () => {
  const st = await c.status();
  process.kill(c.node(st, 'node1').pid!, 'SIGKILL');
  await c.until('node1 down', async () => c.node(await c.status(), 'node1').role === 'down');
  const r = await c.run('failover');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /cannot fail over: .*node1/);
  assert.equal((await c.status()).primary, 'node2');
  const up = await c.run('up');
  assert.equal(up.code, 0, up.stderr);
});
