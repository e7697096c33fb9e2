import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { run } from '../../src/postgres/exec.js';
import { TestCluster } from '../helpers/cluster.js';
import { PG15_BIN } from '../helpers/paths.js';

/**
 * The ro and auto endpoints of a three-node PostgreSQL 18 cluster, used by
 * real clients (pg, psql, pgbench). Ports 10000-10002, endpoints 11000-11002.
 */
const PORT = 10000;
const RO = PORT + 1001;
const AUTO = PORT + 1002;
let c: TestCluster;
let password = '';
const open: pg.Client[] = [];

async function client(port: number, extra: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
  const cl = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres', connectionTimeoutMillis: 10_000, ...extra });
  cl.on('error', () => undefined);
  open.push(cl);
  await cl.connect();
  return cl;
}
const portOf = async (cl: pg.Client, sql = 'SELECT inet_server_port() AS p') => Number((await cl.query<{ p: number }>(sql)).rows[0].p);
const pgbench = (args: string[]) => run(`${PG15_BIN}/pgbench`, ['-h', '127.0.0.1', '-U', 'postgres', ...args, 'postgres'], { env: { ...process.env, PGPASSWORD: password }, timeoutMs: 120_000 });

before(async () => {
  c = await TestCluster.init('tr-ep', { portBase: PORT });
  // A server certificate for auto's TLS (self-signed, for 127.0.0.1)
  const tls = path.join(c.dir, 'tls');
  fs.mkdirSync(tls, { mode: 0o700 });
  const cert = await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', path.join(tls, 'server.key'), '-out', path.join(tls, 'server.crt')]);
  assert.equal(cert.code, 0, cert.stderr);
  // A lag limit of 1 MiB, none in seconds, a short drain; commits without fsync (a test machine).
  const text = fs
    .readFileSync(c.file, 'utf8')
    .replace('\nnodes:\n', `\nendpoints:\n  max_lag: 1048576\n  max_lag_seconds: 3600\n  ro_drain: 2s\n  tls_cert: ${tls}/server.crt\n  tls_key: ${tls}/server.key\n\nnodes:\n`)
    .replace('    shared_buffers: 128MB\n', '    shared_buffers: 128MB\n    fsync: off\n');
  fs.writeFileSync(c.file, text);
  const r = await c.run('up');
  assert.equal(r.code, 0, r.stderr);
  password = c.password();
});
after(async () => {
  for (const cl of open) await cl.end().catch(() => undefined);
  await c?.destroy();
});

test('status shows the three endpoints, their processes and DSNs', async () => {
  const st = await c.status();
  assert.equal(st.endpoints.rw, `127.0.0.1:${PORT + 1000}`);
  assert.equal(st.endpoints.ro, `127.0.0.1:${RO}`);
  assert.equal(st.endpoints.auto, `127.0.0.1:${AUTO}`);
  for (const k of ['rw', 'ro', 'auto']) {
    const d = st.endpoints.details[k];
    assert.equal(d.running, true, k);
    assert.ok(d.pid && d.pid !== st.daemon.pid, `${k} runs in a process of its own`);
  }
  assert.match(st.endpoints.dsn.multi_host_rw, /^postgresql:\/\/postgres@127\.0\.0\.1:10000,127\.0\.0\.1:10001,127\.0\.0\.1:10002\/postgres\?target_session_attrs=read-write$/);
  const human = await c.run('status');
  assert.match(human.stdout, /dsn auto postgresql:\/\/postgres@127\.0\.0\.1:11002\/postgres/);
});

test('auto: pgbench -S runs on the replicas, tpcb-like on the primary, with consistent results; prepared statements work in transaction pooling', async () => {
  const init = await pgbench(['-p', String(PORT), '-i', '-s', '1', '-q']);
  assert.equal(init.code, 0, init.stderr);
  await c.until('pgbench tables on the replicas', async () => (await c.sql<{ n: string }>(PORT + 2, 'SELECT count(*) AS n FROM pgbench_branches'))[0].n === '1');
  const before = (await c.status()).endpoints.details.auto.routes!;
  for (const mode of ['simple', 'prepared']) {
    const r = await pgbench(['-p', String(AUTO), '-S', '-c', '4', '-j', '2', '-t', '200', '-n', '-M', mode]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /number of failed transactions: 0/);
  }
  const mid = (await c.status()).endpoints.details.auto.routes!;
  assert.ok(mid.replica - before.replica >= 1600, `select-only went to replicas (${JSON.stringify(mid)})`);
  for (const mode of ['simple', 'prepared']) {
    const r = await pgbench(['-p', String(AUTO), '-c', '4', '-j', '2', '-t', '100', '-n', '-M', mode]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /number of failed transactions: 0/);
  }
  const end = (await c.status()).endpoints.details.auto.routes!;
  // every run above reported no failed transaction: an UPDATE that reached a replica would have failed (a standby refuses it)
  assert.ok(end.primary > mid.primary, `tpcb-like went to the primary (${JSON.stringify(end)})`);
  const [sums] = await c.sql<{ a: string; b: string; t: string; h: string; n: string }>(
    PORT,
    'SELECT (SELECT sum(abalance) FROM pgbench_accounts) a, (SELECT sum(bbalance) FROM pgbench_branches) b, (SELECT sum(tbalance) FROM pgbench_tellers) t, (SELECT sum(delta) FROM pgbench_history) h, (SELECT count(*) FROM pgbench_history) n',
  );
  assert.equal(sums.n, '800', 'every transaction committed once');
  assert.ok(sums.a === sums.h && sums.b === sums.h && sums.t === sums.h, `balances match the history: ${JSON.stringify(sums)}`);
});

test('auto: volatile functions and a deleting CTE go to the primary, BEGIN READ ONLY to a replica, a rejected statement gets the primary error', async () => {
  await c.sql(PORT, "CREATE FUNCTION vol() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1'");
  await c.sql(PORT, 'CREATE TABLE gone (x int)');
  await c.until('replicated', async () => (await c.sql<{ n: string }>(PORT + 1, "SELECT count(*) AS n FROM pg_proc WHERE proname = 'vol'"))[0].n === '1');
  const a = await client(AUTO);
  assert.notEqual(await portOf(a), PORT, 'a plain read goes to a replica');
  assert.equal(await portOf(a, 'SELECT vol(), inet_server_port() AS p'), PORT);
  assert.equal(await portOf(a, 'WITH d AS (DELETE FROM gone RETURNING 1) SELECT inet_server_port() AS p'), PORT);
  assert.equal(await portOf(a, 'SELECT inet_server_port() AS p /* pgmaestro:primary */'), PORT);
  // A session that has written reads only from a replica known to have replayed its
  // last commit (read-your-writes); the monitor commits on the primary every cycle
  // (its write probe), so right after a write that is the primary. A session that
  // has not written shows where read-only transactions go.
  const b = await client(AUTO);
  await b.query('BEGIN READ ONLY');
  assert.notEqual(await portOf(b), PORT, 'BEGIN READ ONLY goes to a replica');
  await b.query('COMMIT');
  await b.query('BEGIN');
  await b.query('SET TRANSACTION READ ONLY');
  assert.notEqual(await portOf(b), PORT, 'SET TRANSACTION READ ONLY first goes to a replica');
  await b.query('COMMIT');
  await b.query('BEGIN');
  assert.equal(await portOf(b), PORT, 'a plain BEGIN goes to the primary');
  await b.query('COMMIT');
  await a.query("SET pgmaestro.route = 'primary'");
  assert.equal(await portOf(a), PORT);
  await a.query('RESET pgmaestro.route');
  const e = await a.query('SELEC 1').then(() => null, (err: pg.DatabaseError) => err);
  assert.equal(e?.code, '42601');
  assert.equal(e?.message, 'syntax error at or near "SELEC"');
  assert.equal(await portOf(a, 'SELECT 1 AS p'), 1, 'the session goes on');
});

test('auto: read-your-writes — with replay paused on both replicas, 10 000 write-then-read pairs in one session always see the write', async () => {
  await c.sql(PORT, 'CREATE TABLE ryw (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY)');
  await c.until('replicated', async () => (await c.sql<{ n: string }>(PORT + 2, "SELECT count(*) AS n FROM pg_class WHERE relname = 'ryw'"))[0].n === '1');
  await Promise.all([c.sql(PORT + 1, 'SELECT pg_wal_replay_pause()'), c.sql(PORT + 2, 'SELECT pg_wal_replay_pause()')]);
  try {
    // node-postgres, simple and unnamed extended protocol
    const a = await client(AUTO);
    let misses = 0;
    for (let i = 0; i < 500; i++) {
      const id = (await a.query<{ id: string }>(i % 2 ? 'INSERT INTO ryw DEFAULT VALUES RETURNING id' : { text: 'INSERT INTO ryw DEFAULT VALUES RETURNING id', values: [] })).rows[0].id;
      const n = (await a.query<{ n: number }>('SELECT count(*)::int AS n FROM ryw WHERE id = $1', [id])).rows[0].n;
      if (n !== 1) misses++;
    }
    assert.equal(misses, 0);
    const other = await client(AUTO);
    assert.notEqual(await portOf(other), PORT, 'another session, with no write of its own, still reads from a (lagging) replica');
    // pgbench, prepared protocol (named statements, re-bound each time): a read that misses the row divides by zero, which fails the run
    const script = path.join(c.dir, 'ryw.sql');
    fs.writeFileSync(script, 'INSERT INTO ryw DEFAULT VALUES RETURNING id \\gset\nSELECT 1 / count(*) FROM ryw WHERE id = :id;\n');
    const r = await pgbench(['-p', String(AUTO), '-n', '-c', '1', '-t', '10000', '-M', 'prepared', '-f', script]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /number of transactions actually processed: 10000\/10000/);
    assert.match(r.stdout, /number of failed transactions: 0/);
  } finally {
    await Promise.all([c.sql(PORT + 1, 'SELECT pg_wal_replay_resume()'), c.sql(PORT + 2, 'SELECT pg_wal_replay_resume()')]);
  }
});

test('auto: COPY in and out, a COPY that fails mid-way, TLS for a client that asks, application_name on the server', async () => {
  await c.sql(PORT, 'CREATE TABLE copyt (id int PRIMARY KEY, name text)');
  const file = path.join(c.dir, 'copy.sql');
  fs.writeFileSync(file, ['COPY copyt FROM STDIN;', '1\tone', '2\ttwo', '3\tthree', '\\.', 'COPY copyt FROM STDIN;', '4\tfour', 'x\tbad', '\\.', "SELECT 'after ' || count(*) FROM copyt;", 'COPY (SELECT id, name FROM copyt ORDER BY id) TO STDOUT;', ''].join('\n'));
  const psql = (args: string[], dsn = `postgresql://postgres@127.0.0.1:${AUTO}/postgres`) => run(`${PG15_BIN}/psql`, ['-XAt', ...args, dsn], { env: { ...process.env, PGPASSWORD: password } });
  const copied = await psql(['-q', '-f', file]);
  assert.match(copied.stderr, /invalid input syntax for type integer: "x"/, 'the failed COPY reports its error');
  assert.equal(copied.stdout.trim(), ['after 3', '1\tone', '2\ttwo', '3\tthree'].join('\n'), 'three rows in, the failed COPY left none, the same three out');

  // TLS: verified against the endpoint's certificate; the router connection is encrypted end to end from the client's side
  const tls = await psql(['-c', '\\conninfo'], `postgresql://postgres@127.0.0.1:${AUTO}/postgres?sslmode=verify-full&sslrootcert=${path.join(c.dir, 'tls', 'server.crt')}`);
  assert.equal(tls.code, 0, tls.stderr);
  assert.match(tls.stdout, /SSL connection \(protocol: TLSv1\.[23]/);
  const secure = await client(AUTO, { ssl: { ca: fs.readFileSync(path.join(c.dir, 'tls', 'server.crt'), 'utf8') } });
  assert.equal(await portOf(secure, 'SELECT 5 AS p'), 5);
  assert.equal((secure as unknown as { connection: { stream: { encrypted?: boolean } } }).connection.stream.encrypted, true);
  const plain = await psql(['-c', 'SELECT 6'], `postgresql://postgres@127.0.0.1:${AUTO}/postgres?sslmode=disable`);
  assert.equal(plain.stdout.trim(), '6', 'TLS is offered, not required');

  const named = await client(AUTO, { application_name: 'shop-web' });
  assert.equal((await named.query<{ a: string }>('SELECT application_name AS a FROM pg_stat_activity WHERE pid = pg_backend_pid()')).rows[0].a, 'shop-web');
  assert.equal((await named.query<{ a: string }>('SELECT application_name AS a FROM pg_stat_activity WHERE pid = pg_backend_pid() /* pgmaestro:primary */')).rows[0].a, 'shop-web');
});

test('auto: a cancel stops the right query; a wrong password gets PostgreSQL\'s error; psql works', async () => {
  const a = await client(AUTO);
  const b = await client(AUTO);
  const t0 = Date.now();
  const slowA = a.query('SELECT pg_sleep(5) /* pgmaestro:primary */').then(() => 'done', (e: Error) => e.message);
  const slowB = b.query('SELECT pg_sleep(1.5) /* pgmaestro:primary */').then(() => 'done', (e: Error) => e.message);
  await new Promise((r) => setTimeout(r, 500));
  const con = new pg.Client({ host: '127.0.0.1', port: AUTO, user: 'postgres', password }) as unknown as { connection: { cancel(pid: number, key: number): void; connect(port: number, host: string): void; on(e: string, f: () => void): void } };
  await new Promise<void>((resolve) => {
    con.connection.on('connect', () => {
      con.connection.cancel((a as unknown as { processID: number }).processID, (a as unknown as { secretKey: number }).secretKey);
      resolve();
    });
    con.connection.connect(AUTO, '127.0.0.1');
  });
  assert.equal(await slowA, 'canceling statement due to user request');
  assert.ok(Date.now() - t0 < 4000);
  assert.equal(await slowB, 'done', 'the other session was not cancelled');

  const direct = await new pg.Client({ host: '127.0.0.1', port: PORT, user: 'postgres', password: 'wrong' }).connect().then(() => null, (e: Error) => e.message);
  const routed = await new pg.Client({ host: '127.0.0.1', port: AUTO, user: 'postgres', password: 'wrong' }).connect().then(() => null, (e: Error) => e.message);
  assert.equal(routed, direct);
  assert.equal(routed, 'password authentication failed for user "postgres"');
  const psql = await run(`${PG15_BIN}/psql`, ['-XAt', '-c', 'SELECT 40 + 2', `postgresql://postgres@127.0.0.1:${AUTO}/postgres`], { env: { ...process.env, PGPASSWORD: password } });
  assert.equal(psql.stdout.trim(), '42', psql.stderr);
});

test('auto: bad input ends only the guilty client; the router and other clients go on', async () => {
  const bystander = await client(AUTO);
  const raw = (bytes: Buffer, wait = 1000) =>
    new Promise<string>((resolve) => {
      const s = net.connect(AUTO, '127.0.0.1');
      let got = '';
      s.on('data', (d) => (got += d.toString('latin1')));
      s.on('error', () => undefined);
      s.on('close', () => resolve(got));
      s.on('connect', () => s.write(bytes));
      setTimeout(() => {
        s.destroy();
        resolve(got);
      }, wait);
    });
  const unknownDb = await new pg.Client({ host: '127.0.0.1', port: AUTO, user: 'postgres', password, database: 'nodb' }).connect().then(() => null, (e: Error) => e.message);
  assert.equal(unknownDb, 'database "nodb" does not exist');
  const unknownUser = await new pg.Client({ host: '127.0.0.1', port: AUTO, user: 'nobody', password: 'x' }).connect().then(() => null, (e: Error) => e.message);
  assert.equal(unknownUser, 'password authentication failed for user "nobody"');
  assert.match(await raw(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')), /invalid length of startup packet/);
  const huge = Buffer.alloc(8);
  huge.writeUInt32BE(0x40000000, 0);
  huge.writeUInt32BE(196608, 4);
  assert.match(await raw(huge), /invalid length of startup packet/);
  const half = Buffer.alloc(30);
  half.writeUInt32BE(100, 0);
  half.writeUInt32BE(196608, 4);
  await raw(half, 200); // vanishes mid-message
  assert.equal(await portOf(bystander, 'SELECT 7 AS p'), 7);
  const fresh = await client(AUTO);
  assert.equal(await portOf(fresh, 'SELECT 8 AS p'), 8);
  // an authenticated client sending a 1 GiB message: it is closed, nothing else is
  const victim = await client(AUTO);
  const sock = (victim as unknown as { connection: { stream: net.Socket } }).connection.stream;
  const msg = Buffer.alloc(5);
  msg.write('Q', 0);
  msg.writeUInt32BE(0x40000000, 1);
  sock.write(msg);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await portOf(bystander, 'SELECT 9 AS p'), 9);
  const st = await c.status();
  assert.equal(st.endpoints.details.auto.restarts, 0, 'the router process never died');
});

test('ro (last: it stops a replica): 20 connections spread over both replicas; a paused replica past max_lag gets none; with no replica, the primary', async () => {
  const spread = async () => {
    const seen = new Map<number, number>();
    const cls = await Promise.all(Array.from({ length: 20 }, () => client(RO)));
    for (const cl of cls) {
      const p = await portOf(cl);
      seen.set(p, (seen.get(p) ?? 0) + 1);
    }
    await Promise.all(cls.map((cl) => cl.end()));
    return seen;
  };
  const both = await spread();
  assert.deepEqual([...both.keys()].sort(), [PORT + 1, PORT + 2]);
  assert.ok(both.get(PORT + 1)! >= 8 && both.get(PORT + 2)! >= 8, `least connections spreads evenly: ${JSON.stringify([...both])}`);

  // two connections held open (one on each replica, by least connections); node3 paused, then some 3 MiB of WAL on the primary: node3 is past max_lag
  const held = await Promise.all([client(RO), client(RO)]);
  const heldPorts = await Promise.all(held.map((h) => portOf(h)));
  assert.deepEqual([...heldPorts].sort(), [PORT + 1, PORT + 2]);
  await c.sql(PORT + 2, 'SELECT pg_wal_replay_pause()');
  await c.sql(PORT, 'CREATE TABLE filler AS SELECT g, repeat(md5(g::text), 20) AS pad FROM generate_series(1, 4500) g');
  await c.until('node3 out of ro', async () => (await c.status()).endpoints.details.ro.replicas?.node3 !== 'eligible', 10_000);
  const one = await spread();
  assert.deepEqual([...one.keys()], [PORT + 1]);
  // node3's open connection is closed after ro_drain; node2's goes on
  const onNode3 = held[heldPorts.indexOf(PORT + 2)];
  const onNode2 = held[heldPorts.indexOf(PORT + 1)];
  await c.until('the drained connection closed', async () => onNode3.query('SELECT 1').then(() => false, () => true), 10_000);
  assert.equal(await portOf(onNode2), PORT + 1);

  // node2 stopped too: the fallback (primary) takes new connections
  const st = await c.status();
  process.kill(c.node(st, 'node2').pid!, 'SIGKILL');
  await c.until('node2 out of ro', async () => (await c.status()).endpoints.details.ro.replicas?.node2 !== 'eligible', 10_000);
  const fallback = await client(RO);
  assert.equal(await portOf(fallback), PORT);
  await fallback.end();
});
