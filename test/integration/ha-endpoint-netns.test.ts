import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { Endpoint } from '../../src/router/tcp.js';
import { NetLab } from '../../src/ha/netns.js';
import { labSkipReason, ScratchPg } from '../helpers/netns.js';

/**
 * The endpoint in the root namespace in front of PostgreSQL 18 servers that run
 * on two lab hosts (each in its own network namespace): a host cut off the
 * bridge times out and closes the client; a tbf-shaped link slows transfers.
 * Ports 27060-27069 (the servers share a port, as separate hosts would).
 */

const skip = await labSkipReason();
const HOST = '127.0.0.1';
const EP_PORT = 27062;
let lab: NetLab;
let A: ScratchPg;
let B: ScratchPg;
let ep: Endpoint;
const lines: string[] = [];

async function connect(timeoutMs = 10_000): Promise<pg.Client> {
  const c = new pg.Client({ host: HOST, port: EP_PORT, user: 'postgres', database: 'postgres', connectionTimeoutMillis: timeoutMs });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

before(async () => {
  if (skip) return;
  lab = await NetLab.create(`ep${process.pid % 100000}`, ['a', 'b']);
  [A, B] = await Promise.all([
    ScratchPg.start({ name: 'a', port: 27060, host: lab.host('a').address, lab, labHost: 'a' }),
    ScratchPg.start({ name: 'b', port: 27060, host: lab.host('b').address, lab, labHost: 'b' }),
  ]);
  ep = new Endpoint({ host: HOST, port: EP_PORT, connectTimeoutMs: 1_000, holdMs: 5_000, log: (s) => lines.push(s) });
  await ep.listen();
});

after(async () => {
  await ep?.close();
  await Promise.all([A?.stop(), B?.stop()]);
  await lab?.destroy();
});

test('a target cut off the network times out and closes the client; re-pointing recovers', { skip: skip ?? false }, async () => {
  ep.setTarget(A.target, 'initial primary');
  const c = await connect();
  assert.equal((await c.query('SELECT host(inet_server_addr()) AS a')).rows[0].a, lab.host('a').address);
  await c.end();

  await lab.cut('a');
  try {
    const t0 = Date.now();
    await assert.rejects(connect());
    const waited = Date.now() - t0;
    // an unreachable target is tried again every 250 ms while the client waits: it is closed when its hold (5 s) runs out
    assert.ok(waited >= 4_900 && waited < 9_000, `closed after ${waited} ms`);
    assert.match(lines.at(-1) ?? '', /cannot reach a \(10\.213\.\d+\.11:27060\) \((ETIMEDOUT|EHOSTUNREACH)\)/);

    // A client whose connection to a is still being opened moves to b.
    const pending = connect();
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(ep.stats.connecting, 1);
    assert.match(ep.setTarget(B.target, 'a is cut off'), /now forwards to b .*: a is cut off; dropped 0 connections to a; redirected 1 connection still opening to a(; closed \d+ connections? held longer than 5 s)?$/);
    const d = await pending;
    assert.equal((await d.query('SELECT host(inet_server_addr()) AS a')).rows[0].a, lab.host('b').address);
    await d.end();
  } finally {
    await lab.restore('a');
  }
});

test('tbf on a host link: what delay it gives (figures)', { skip: skip ?? false }, async () => {
  ep.setTarget(B.target, 'delay test');
  const measure = async (label: string) => {
    const t0 = Date.now();
    const c = await connect(30_000);
    const connectMs = Date.now() - t0;
    const t1 = Date.now();
    await c.query('SELECT 1');
    const smallMs = Date.now() - t1;
    const t2 = Date.now();
    await c.query("SELECT repeat('x', 16000)");
    const bigMs = Date.now() - t2;
    await c.end();
    return { label, connectMs, smallMs, bigMs };
  };
  const plain = await measure('no shaping');
  await lab.delay('b', { rateKbit: 64, burstBytes: 1600, latencyMs: 4_000 });
  let shaped;
  try {
    shaped = await measure('tbf 64 kbit, burst 1600 B');
  } finally {
    await lab.undelay('b');
  }
  const after = await measure('shaping removed');
  for (const m of [plain, shaped, after]) console.log(`${m.label}: connect+auth ${m.connectMs} ms, SELECT 1 ${m.smallMs} ms, 16 kB result ${m.bigMs} ms`);
  assert.ok(shaped.bigMs > 1_000, 'a 16 kB answer at 64 kbit takes seconds');
  assert.ok(after.bigMs < 1_000, 'removing the shaping restores the link');
});
