import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { Endpoint } from '../../src/router/tcp.js';
import { run } from '../../src/postgres/exec.js';
import { PG15_BIN, ScratchPg } from '../helpers/netns.js';

/**
 * The endpoint in front of two real PostgreSQL 18 servers on loopback, used by
 * real clients (pg, psql, pgbench). Ports 27020-27029.
 */

const HOST = '127.0.0.1';
const EP_PORT = 27022;
let A: ScratchPg;
let B: ScratchPg;
let ep: Endpoint;
const lines: string[] = [];
const clients: pg.Client[] = [];

async function connect(port = EP_PORT, timeoutMs = 15_000): Promise<pg.Client> {
  const c = new pg.Client({ host: HOST, port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: timeoutMs });
  c.on('error', () => undefined); // a dropped idle client reports here; the test looks at its next query
  clients.push(c);
  await c.connect();
  return c;
}

async function serverPort(c: pg.Client): Promise<number> {
  return Number((await c.query<{ port: string }>("SELECT current_setting('port') AS port")).rows[0].port);
}

/** Client sessions on `server` other than the asking one. */
async function sessions(server: ScratchPg): Promise<number> {
  const c = await connect(server.port);
  try {
    const r = await c.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()");
    return Number(r.rows[0].n);
  } finally {
    await c.end();
  }
}

before(async () => {
  [A, B] = await Promise.all([ScratchPg.start({ name: 'a', port: 27020, host: HOST }), ScratchPg.start({ name: 'b', port: 27021, host: HOST })]);
  ep = new Endpoint({ host: HOST, port: EP_PORT, holdMs: 5_000, connectTimeoutMs: 2_000, log: (s) => lines.push(s) });
  await ep.listen();
  ep.setTarget(A.target, 'initial primary');
});

after(async () => {
  for (const c of clients) await c.end().catch(() => undefined);
  await ep?.close();
  await Promise.all([A?.stop(), B?.stop()]);
});

test('pg and psql reach the target through the endpoint', async () => {
  const c = await connect();
  assert.equal(await serverPort(c), 27020);
  await c.end();
  const psql = await run(`${PG15_BIN}/psql`, ['-h', HOST, '-p', String(EP_PORT), '-U', 'postgres', '-d', 'postgres', '-XAtc', 'SELECT inet_server_port()']);
  assert.equal(psql.code, 0, psql.stderr);
  assert.equal(psql.stdout.trim(), '27020');
});

test('a target change drops every session on the old server; new sessions reach the new one', async () => {
  const old = await Promise.all(Array.from({ length: 20 }, () => connect()));
  for (const c of old) assert.equal(await serverPort(c), 27020);
  // One of them sits in an open transaction with a write in it.
  await old[0].query('CREATE TABLE IF NOT EXISTS t (x int)');
  await old[0].query('BEGIN');
  await old[0].query('INSERT INTO t VALUES (1)');
  const sentence = ep.setTarget(B.target, 'switchover');
  assert.equal(sentence, 'endpoint 127.0.0.1:27022 now forwards to b (127.0.0.1:27021): switchover; dropped 20 connections to a');
  for (const c of old) await assert.rejects(c.query('SELECT 1'), 'the next query of a dropped client fails');
  // The old server lost every session, and the open transaction was rolled back.
  let left = -1;
  for (let i = 0; i < 50 && left !== 0; i++, await new Promise((r) => setTimeout(r, 100))) left = await sessions(A);
  assert.equal(left, 0, 'no session survives on the old server');
  const check = await connect(A.port);
  assert.equal((await check.query('SELECT count(*)::int AS n FROM t')).rows[0].n, 0);
  await check.end();
  const c = await connect();
  assert.equal(await serverPort(c), 27021);
  await c.end();
});

test('with no target, a new connection waits and succeeds once a target is set within holdMs', async () => {
  ep.setTarget(null, 'fencing b');
  const t0 = Date.now();
  const pending = connect();
  await new Promise((r) => setTimeout(r, 700));
  assert.equal(ep.stats.held, 1);
  assert.match(ep.setTarget(A.target, 'a promoted'), /now forwards to a .*: a promoted; released 1 held connection$/);
  const c = await pending;
  assert.ok(Date.now() - t0 >= 650, 'the client waited for the target');
  assert.equal(await serverPort(c), 27020);
  await c.end();
});

test('with no target for longer than holdMs, or an unreachable target, the client gets an error', async () => {
  const short = new Endpoint({ host: HOST, port: 27023, holdMs: 500 });
  await short.listen();
  try {
    short.setTarget(null, 'fencing');
    const t0 = Date.now();
    await assert.rejects(connect(27023));
    assert.ok(Date.now() - t0 >= 450, `rejected after ${Date.now() - t0} ms`);
    short.setTarget({ name: 'down', host: HOST, port: 27029 }, 'test');
    // an unreachable target is tried again every 250 ms while the client waits (up to holdMs), then the client is closed
    const t1 = Date.now();
    await assert.rejects(connect(27023));
    assert.ok(Date.now() - t1 >= 450, `rejected after ${Date.now() - t1} ms`);
    assert.ok(short.stats.unreachable >= 1 && short.stats.unreachable <= 3, `${short.stats.unreachable} failed attempts to reach the target`);
    assert.equal(short.stats.holdExpired, 2, 'both clients were closed when their wait ran out');
    assert.equal(short.stats.forwarded, 0);
  } finally {
    await short.close();
  }
});

test('pgbench through the endpoint, compared with direct (figures)', async () => {
  const pgbench = `${PG15_BIN}/pgbench`;
  const common = ['-h', HOST, '-U', 'postgres'];
  const init = await run(pgbench, [...common, '-p', String(A.port), '-i', '-s', '2', '-q', 'postgres']);
  assert.equal(init.code, 0, init.stderr);
  const tps = async (port: number, extra: string[]) => {
    const r = await run(pgbench, [...common, '-p', String(port), '-T', '4', '-c', '8', '-j', '4', '-n', ...extra, 'postgres'], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    const m = /tps = ([\d.]+)/.exec(r.stdout);
    assert.ok(m, r.stdout);
    return Number(m[1]);
  };
  const figures: Record<string, number> = {};
  for (const [mode, extra] of [['tpcb-like', []], ['select-only', ['-S']]] as const) {
    figures[`${mode} direct`] = await tps(A.port, [...extra]);
    figures[`${mode} endpoint`] = await tps(EP_PORT, [...extra]);
  }
  const report = Object.entries(figures).map(([k, v]) => `${k}: ${v.toFixed(0)} tps`).join(', ');
  console.log(`pgbench (8 clients, 4 s, scale 2, fsync off): ${report}`);
  for (const v of Object.values(figures)) assert.ok(v > 0);
  for (let i = 0; i < 50 && ep.stats.active > 0; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(ep.stats.active, 0, 'pgbench closed its connections and the endpoint kept none');
});
