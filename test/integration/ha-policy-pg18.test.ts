import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { TestCluster } from '../helpers/cluster.js';
import { setHa, Writer } from '../helpers/ha.js';

/** restart_first: the crashed primary restarts in place; a primary frozen (SIGSTOP) for less than the timeout is not failed over. */
const PORT = 29200;
let c: TestCluster;

before(async () => {
  c = await TestCluster.init('ha-pol', { portBase: PORT, replicas: 1 });
  setHa(c, ['restart_first: true', 'failover_timeout: 4s']);
  const r = await c.run('up');
  assert.equal(r.code, 0, r.stderr);
  await c.sql(PORT, 'CREATE TABLE acked (id int primary key)');
});
after(async () => {
  await c?.destroy();
});

test('restart first: a crashed primary on a reachable host restarts in place; no promotion', async () => {
  const st = await c.status();
  const oldPid = c.node(st, 'node1').pid!;
  const w = new Writer(PORT + 1000, c.password()).start();
  await c.until('writes flowing', async () => w.acked.length > 10);
  const killedAt = Date.now();
  process.kill(oldPid, 'SIGKILL');
  await c.until('writes again', async () => w.lastAckAt > killedAt + 500, 60_000);
  await w.stop();
  const after = await c.status();
  assert.equal(after.primary, 'node1');
  assert.equal(c.node(after, 'node1').role, 'primary');
  assert.notEqual(c.node(after, 'node1').pid, oldPid);
  assert.equal(c.node(after, 'node2').role, 'replica');
  const events = (await c.run('events')).stdout;
  assert.match(events, /restart/i);
  assert.doesNotMatch(events, /promoted/);
});

test('not dead: a primary frozen for less than failover_timeout is not failed over', async () => {
  const st = await c.status();
  const pid = c.node(st, 'node1').pid!;
  process.kill(pid, 'SIGSTOP');
  await new Promise((r) => setTimeout(r, 2500));
  process.kill(pid, 'SIGCONT');
  await new Promise((r) => setTimeout(r, 3000));
  const after = await c.status();
  assert.equal(after.primary, 'node1');
  assert.equal(c.node(after, 'node1').pid, pid);
  assert.deepEqual(after.nodes.map((n) => n.role), ['primary', 'replica']);
  assert.doesNotMatch((await c.run('events')).stdout, /promoted|fenced/);
});

test('a daemon that restarts in the middle of a failover finishes it', async () => {
  await c.stopKeepers();
  const st = await c.status();
  process.kill(st.daemon.pid!, 'SIGKILL');
  await c.until('daemon gone', async () => !(await c.status()).daemon.running, 10_000);
  // what a daemon killed right after recording its decision leaves behind
  const stateFile = path.join(c.dir, 'state', 'state.json');
  const state = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
  fs.writeFileSync(stateFile, JSON.stringify({ ...state, pending: { kind: 'failover', from: 'node1', to: 'node2', reason: 'test: interrupted', at: new Date().toISOString() } }));
  const r = await c.run('up');
  assert.equal(r.code, 0, r.stderr);
  await c.until('the failover finished', async () => (await c.status()).primary === 'node2', 30_000);
  const after = await c.status();
  assert.equal(c.node(after, 'node2').role, 'primary');
  assert.equal(c.node(after, 'node1').role, 'fenced');
  assert.equal(JSON.parse(fs.readFileSync(stateFile, 'utf8')).pending, null);
  assert.match((await c.run('events')).stdout, /resuming the failover from node1 to node2 that was in progress since .*\n(.*\n)*.*promoted node2 \(timeline 2\) in [\d.]+ s: test: interrupted \(resumed\)/);
});
