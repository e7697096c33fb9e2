import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from '../helpers/cluster.js';
import { setHa, Writer } from '../helpers/ha.js';

/** synchronous: quorum 1 — every commit acknowledged before a crash is present after the failover. */
const PORT = 29300;
let c: TestCluster;

before(async () => {
  c = await TestCluster.init('ha-sync', { portBase: PORT });
  setHa(c, ['restart_first: false', 'failover_timeout: 3s', 'synchronous: quorum 1']);
  const r = await c.run('up');
  assert.equal(r.code, 0, r.stderr);
  await c.sql(PORT, 'CREATE TABLE acked (id int primary key)');
});
after(async () => {
  await c?.destroy();
});

test('quorum 1: no acknowledged commit is lost by a failover (counted)', async () => {
  const [sync] = await c.sql<{ s: string }>(PORT, "SELECT current_setting('synchronous_standby_names') AS s");
  assert.equal(sync.s, 'ANY 1 (node1, node2, node3)');
  const w = new Writer(PORT + 1000, c.password()).start();
  await c.until('writes flowing', async () => w.acked.length > 50);
  const st = await c.status();
  const killedAt = Date.now();
  process.kill(c.node(st, 'node1').pid!, 'SIGKILL');
  await c.until('writes after the failover', async () => w.lastAckAt > killedAt + 500, 60_000);
  await w.stop();
  const after = await c.status();
  assert.notEqual(after.primary, 'node1');
  const present = new Set((await c.sql<{ id: number }>(c.node(after, after.primary).port, 'SELECT id FROM acked')).map((r) => r.id));
  const lost = w.acked.filter((id) => !present.has(id));
  assert.equal(lost.length, 0, `acknowledged commits lost: ${lost.join(', ')}`);
  console.log(`# quorum 1: ${w.acked.length} acknowledged commits, 0 lost`);
});
