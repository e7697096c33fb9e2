import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from '../helpers/cluster.js';
import { setHa, Writer } from '../helpers/ha.js';

/** Crash of the primary with restart_first off, under writes through the endpoint; then rejoin; then two switchovers. */
const PORT = 29100;
const ENDPOINT = PORT + 1000;
let c: TestCluster;

before(async () => {
  c = await TestCluster.init('ha-fo', { portBase: PORT });
  setHa(c, ['restart_first: false', 'failover_timeout: 3s']);
  const r = await c.run('up');
  assert.equal(r.code, 0, r.stderr);
  await c.sql(PORT, 'CREATE TABLE acked (id int primary key)');
});
after(async () => {
  await c?.destroy();
});

const countVia = async (port: number) => Number((await c.sql<{ n: string }>(port, 'SELECT count(*) AS n FROM acked'))[0].n);

test('crash: a replica is promoted, writes through the same endpoint succeed again, the old primary is fenced', async () => {
  const st = await c.status();
  assert.equal(st.endpoints.rw, `127.0.0.1:${ENDPOINT}`);
  const w = new Writer(ENDPOINT, c.password()).start();
  await c.until('writes flowing', async () => w.acked.length > 20);
  const killedAt = Date.now();
  process.kill(c.node(st, 'node1').pid!, 'SIGKILL');
  await c.until('a write after the failover', async () => w.lastAckAt > killedAt + 500, 60_000);
  await w.stop();
  const after = await c.status();
  assert.notEqual(after.primary, 'node1');
  assert.equal(c.node(after, 'node1').role, 'fenced');
  const events = (await c.run('events')).stdout;
  assert.match(events, /promoted node[23]: node1 postmaster down for \d+\.\d s/);
  const newPrimaryPort = c.node(after, after.primary).port;
  const rows = await countVia(newPrimaryPort);
  assert.ok(rows >= w.acked.length - 1, `async replication: at most the last in-flight commit may be lost (${rows} of ${w.acked.length})`);
  console.log(`# failover: first successful write ${((w.lastAckAt - killedAt) / 1000).toFixed(1)} s after SIGKILL; ${w.errors} failed attempts`);
});

test('rejoin: the old primary streams from the new one with all of its data', async () => {
  const r = await c.run('rejoin', 'node1');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /node1 rejoined as a replica of node[23] through/);
  const st = await c.status();
  assert.equal(c.node(st, 'node1').role, 'replica');
  const primaryPort = c.node(st, st.primary).port;
  await c.sql(primaryPort, 'INSERT INTO acked SELECT g FROM generate_series(1000000, 1000100) g');
  const want = await countVia(primaryPort);
  await c.until('node1 has all the data', async () => (await countVia(PORT)) === want);
});

test('switchover twice in a row returns to the original primary with no data lost', async () => {
  const st0 = await c.status();
  const original = st0.primary;
  const other = st0.nodes.find((n) => n.role === 'replica' && n.name !== original)!.name;
  const w = new Writer(ENDPOINT, c.password()).start();
  await c.until('writes flowing', async () => w.acked.length > 10);
  const s1 = await c.run('switchover', '--to', other);
  assert.equal(s1.code, 0, s1.stderr);
  assert.match(s1.stdout, new RegExp(`switched over to ${other} \\(timeline \\d+\\)`));
  const s2 = await c.run('switchover', '--to', original);
  assert.equal(s2.code, 0, s2.stderr);
  await w.stop();
  const st = await c.status();
  assert.equal(st.primary, original);
  assert.deepEqual(st.nodes.map((n) => n.role).sort(), ['primary', 'replica', 'replica']);
  const present = new Set((await c.sql<{ id: number }>(c.node(st, original).port, 'SELECT id FROM acked')).map((r) => r.id));
  const lost = w.acked.filter((id) => !present.has(id));
  assert.deepEqual(lost, [], 'every acknowledged commit survived both switchovers');
});

test('bad input: switchover to an unknown, the current primary or a down node, rejoin of the primary: refused, nothing changed', async () => {
  const before = await c.status();
  const unknown = await c.run('switchover', '--to', 'node9');
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /cannot switch over to node9: no node is named node9\. HINT: choose one of/);
  const self = await c.run('switchover', '--to', before.primary);
  assert.equal(self.code, 2);
  assert.match(self.stderr, /it is already the primary/);
  const rj = await c.run('rejoin', before.primary);
  assert.equal(rj.code, 2);
  assert.match(rj.stderr, /is the current primary; only another node can rejoin it/);
  const replica = before.nodes.find((n) => n.role === 'replica')!;
  process.kill(replica.pid!, 'SIGKILL');
  await c.until(`${replica.name} down`, async () => c.node(await c.status(), replica.name).role === 'down');
  const down = await c.run('switchover', '--to', replica.name);
  assert.equal(down.code, 2);
  assert.match(down.stderr, new RegExp(`cannot switch over to ${replica.name}: it `));
  const afterRefusals = await c.status();
  assert.equal(afterRefusals.primary, before.primary);
  const up = await c.run('up');
  assert.equal(up.code, 0, up.stderr);
});
