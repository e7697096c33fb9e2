import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { TestCluster } from '../helpers/cluster.js';
import { setHa } from '../helpers/ha.js';
import { netnsUnsupported } from '../../src/ha/netns.js';

/**
 * Each node in its own network namespace (ha.isolation: netns). The primary is
 * cut off: a replica is promoted; when the link returns, the old primary is
 * fenced; through the endpoint, writes only ever land on one primary.
 */
const PORT = 29000;
const ENDPOINT = PORT + 1000;
const VIP = '10.213.254.100';
let c: TestCluster;
const skip = await netnsUnsupported();

before(async () => {
  if (skip) return;
  c = await TestCluster.init('ha-iso', { portBase: PORT });
  setHa(c, ['restart_first: false', 'failover_timeout: 3s', 'isolation: netns', `vip: ${VIP}/32`]);
  fs.writeFileSync(c.file, fs.readFileSync(c.file, 'utf8').replace(/(    data_dir: data\/node\d\n)/g, '$1    vip_interface: eth0\n'));
  const r = await c.run('up');
  assert.equal(r.code, 0, r.stderr);
  await c.sql(ENDPOINT, 'CREATE TABLE acked (id int primary key)');
});
after(async () => {
  await c?.destroy();
});

test('isolated primary: a replica is promoted; the returning old primary is fenced; writes land on one primary at a time', { skip: skip ?? false }, async () => {
  const lab = JSON.parse(fs.readFileSync(path.join(c.dir, 'state', 'lab.json'), 'utf8')) as { hosts: { name: string; address: string; hostIf: string }[] };
  const host = (n: string) => lab.hosts.find((h) => h.name === n)!;
  const st = await c.status();
  assert.equal(c.node(st, 'node1').host, host('node1').address, 'the nodes listen on their own lab addresses');

  // the VIP: on exactly one host at any time (sampled every 100 ms)
  const holders = async () => {
    const out: string[] = [];
    for (const h of lab.hosts) {
      const r = execFileSync('ip', ['netns', 'exec', `${(h as unknown as { netns: string }).netns}`, 'ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0']).toString();
      if (r.includes(` ${VIP}/`)) out.push(h.name);
    }
    return out;
  };
  await c.until('the VIP on node1', async () => JSON.stringify(await holders()) === '["node1"]', 15_000);
  let maxHolders = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      maxHolders = Math.max(maxHolders, (await holders()).length);
      await new Promise((res) => setTimeout(res, 100));
    }
  })();

  // writes through the endpoint, each noting which server took it
  const landed: { at: number; addr: string }[] = [];
  let stop = false;
  let id = 0;
  const writer = (async () => {
    while (!stop) {
      const cl = new pg.Client({ host: '127.0.0.1', port: ENDPOINT, user: 'postgres', password: c.password(), database: 'postgres', connectionTimeoutMillis: 15_000 });
      cl.on('error', () => undefined);
      try {
        await cl.connect();
        const r = await cl.query<{ a: string }>('INSERT INTO acked VALUES ($1) RETURNING host(inet_server_addr()) AS a', [++id]);
        landed.push({ at: Date.now(), addr: r.rows[0].a });
      } catch {
        await new Promise((res) => setTimeout(res, 50));
      } finally {
        await cl.end().catch(() => undefined);
      }
    }
  })();
  await c.until('writes on node1', async () => landed.length > 5);

  const cutAt = Date.now();
  execFileSync('ip', ['link', 'set', host('node1').hostIf, 'down']);
  await c.until('a write on the new primary', async () => landed.some((w) => w.at > cutAt && w.addr !== host('node1').address), 60_000);
  const during = await c.status();
  assert.notEqual(during.primary, 'node1');
  assert.equal(c.node(during, 'node1').role, 'fenced');

  // the link returns: the old primary, still a primary on the old timeline, is fenced (stopped)
  execFileSync('ip', ['link', 'set', host('node1').hostIf, 'up']);
  await c.until('node1 stopped by the fence', async () => c.node(await c.status(), 'node1').pid === null, 30_000);
  await new Promise((res) => setTimeout(res, 2000));
  stop = true;
  await writer;
  sampling = false;
  await sampler;
  assert.equal(maxHolders, 1, 'the VIP was never on two hosts');
  assert.deepEqual(await holders(), [(await c.status()).primary], 'the VIP is on the new primary');

  // one switch of primary, never back: no write through the endpoint reached node1 after the new primary's first
  const firstNew = landed.findIndex((w) => w.addr !== host('node1').address);
  assert.ok(firstNew > 0);
  assert.deepEqual(landed.slice(firstNew).filter((w) => w.addr === host('node1').address), [], 'no write reached the old primary after the switch');
  assert.equal(new Set(landed.slice(firstNew).map((w) => w.addr)).size, 1, 'one new primary');
  assert.match((await c.run('events')).stdout, /fenced node1/);
  console.log(`# isolated primary: first write on ${landed[firstNew].addr} ${((landed[firstNew].at - cutAt) / 1000).toFixed(1)} s after the cut`);
});
