import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { TestCluster } from './cluster.js';
import { PG15_BIN } from './paths.js';

/**
 * A dead replica never fills the primary's disk (against one installation):
 * with the slot bound at 64 MB, 400 MB of WAL written while the replica is
 * stopped keep pg_wal near the bound; the slot is reported lost and the
 * replica rebuilt (by the daemon, or by rejoin when auto_reclone is off);
 * a replica that is back in time is never rebuilt.
 */
export function slotSuite(label: string, opts: { portBase: number; binDir?: string }): void {
  let c: TestCluster;
  const P = opts.portBase;
  const MB = 1048576;

  before(async () => {
    c = await TestCluster.init(label, { portBase: P, replicas: 1, binDir: opts.binDir });
    let text = fs.readFileSync(c.file, 'utf8').replace('wal_archive: true', 'wal_archive: false');
    text = text.replace('  settings:\n', '  settings:\n    max_slot_wal_keep_size: 64MB\n    max_wal_size: 64MB\n    min_wal_size: 32MB\n');
    fs.writeFileSync(c.file, text);
    const r = await c.run('up');
    assert.equal(r.code, 0, r.stderr);
    // stored plain: neither compressed nor toasted, so the WAL is as large as the rows
    await c.sql(P, 'CREATE TABLE filler (id bigserial, v text)');
    await c.sql(P, 'ALTER TABLE filler ALTER v SET STORAGE PLAIN');
  });
  after(async () => {
    await c?.destroy();
  });

  const stopReplica = async () => {
    const n = c.node(await c.status(), 'node2');
    process.kill(n.pid!, 'SIGTERM');
    await c.until('node2 stopped', async () => c.node(await c.status(), 'node2').pid === null);
    return n;
  };
  /** Writes about `mb` MB of WAL with pgbench (inserts of 200 rows of 2 kB each), sampling the primary's pg_wal meanwhile; returns the largest size seen. */
  const writeWal = async (mb: number): Promise<number> => {
    const script = path.join(c.dir, 'filler.sql');
    fs.writeFileSync(script, "INSERT INTO filler (v) SELECT repeat(md5(random()::text), 64) FROM generate_series(1, 200);\n");
    const pgWal = path.join(c.node(await c.status(), 'node1').data_dir, 'pg_wal');
    const size = () => fs.readdirSync(pgWal).filter((f) => /^[0-9A-F]{24}$/.test(f)).reduce((a, f) => a + fs.statSync(path.join(pgWal, f)).size, 0);
    let max = size();
    const start = (await c.sql<{ l: string }>(P, 'SELECT pg_current_wal_lsn()::text AS l'))[0].l;
    const timer = setInterval(() => (max = Math.max(max, size())), 100);
    const bench = spawn(path.join(PG15_BIN, 'pgbench'), ['-n', '-f', script, '-c', '2', '-t', String(Math.ceil(mb / 0.45 / 2)), '-h', '127.0.0.1', '-p', String(P), '-U', 'postgres', 'postgres'], {
      env: { ...process.env, PGPASSWORD: c.password() },
      stdio: 'ignore',
    });
    const code = await new Promise((r) => bench.once('close', r));
    clearInterval(timer);
    assert.equal(code, 0, 'pgbench ran');
    // settle the new rows (hint bits, visibility map) now rather than in an autovacuum during a rebuild
    await c.sql(P, 'VACUUM filler');
    await c.sql(P, 'CHECKPOINT');
    const written = Number((await c.sql<{ d: string }>(P, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '${start}')::bigint AS d`))[0].d);
    assert.ok(written >= mb * MB * 0.9, `${written} bytes of WAL written`);
    return Math.max(max, size());
  };
  const rows = async (port: number) => Number((await c.sql<{ n: string }>(port, 'SELECT count(*) AS n FROM filler'))[0].n);
  const events = async () => (await c.run('events', '-n', '500')).stdout;

  test(`${label}: a replica back within the bound keeps its slot: never rebuilt, never reported lost`, async () => {
    const before = fs.readFileSync(path.join(c.node(await c.status(), 'node2').data_dir, 'pgmaestro.json'), 'utf8');
    const inode = fs.statSync(path.join(c.node(await c.status(), 'node2').data_dir, 'PG_VERSION')).ino;
    await stopReplica();
    await writeWal(20);
    const r = await c.run('up');
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /lost|rebuild|cloned/);
    await c.until('node2 caught up', async () => (await rows(P + 1)) === (await rows(P)));
    const st = await c.status();
    const node2 = c.node(st, 'node2');
    assert.equal(fs.statSync(path.join(node2.data_dir, 'PG_VERSION')).ino, inode, 'the same data directory');
    assert.equal(fs.readFileSync(path.join(node2.data_dir, 'pgmaestro.json'), 'utf8'), before);
    assert.doesNotMatch(await events(), /was lost|rebuilt/);
    const slot = (st as unknown as { slots: { name: string; kind: string; wal_status: string; retained_bytes: number; safe_wal_size: number }[] }).slots.find((s) => s.name === 'pgm_node2')!;
    assert.equal(slot.kind, 'replica');
    assert.match(slot.wal_status, /reserved|extended/);
    assert.equal(typeof slot.safe_wal_size, 'number');
  });

  test(`${label}: 400 MB of WAL with the replica stopped: pg_wal stays near the bound, the slot is lost, the daemon rebuilds the replica`, async () => {
    await stopReplica();
    const max = await writeWal(400);
    console.log(`# ${label}: the primary's pg_wal peaked at ${(max / MB).toFixed(0)} MB while 400 MB of WAL were written (bound 64 MB, max_wal_size 64 MB)`);
    assert.ok(max < (64 + 64 + 8 * 16) * MB, `pg_wal peaked at ${max} bytes`);
    await c.until('the slot reported lost and node2 rebuilt by the daemon', async () => /rebuilt node2 after its slot was lost/.test(await events()), 180_000);
    const ev = await events();
    assert.match(ev, /replica node2's slot pgm_node2 was lost/);
    await c.until('node2 has every row', async () => (await rows(P + 1)) === (await rows(P)), 60_000);
    assert.equal(c.node(await c.status(), 'node2').role, 'replica');
  });

  test(`${label}: with ha.auto_reclone off, up says the replica must be rebuilt, and rejoin does it`, async () => {
    fs.writeFileSync(c.file, fs.readFileSync(c.file, 'utf8').replace('\nnodes:\n', '\nha:\n  auto_reclone: false\n\nnodes:\n'));
    await stopReplica();
    await writeWal(400);
    await c.until('the slot is lost', async () => {
      const st = (await c.status()) as unknown as { slots: { name: string; wal_status: string }[] };
      return st.slots.find((s) => s.name === 'pgm_node2')?.wal_status === 'lost';
    }, 60_000);
    const r = await c.run('up');
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /node2: its replication slot on node1 was lost \(node1 removed WAL it still needed\); it cannot stream again until it is rebuilt/);
    assert.match(r.stderr, /node2 lost its replication slot on node1 and cannot stream until rebuilt; the rest of the cluster is up\. HINT: rebuild with pgmaestro rejoin node2/);
    assert.doesNotMatch(await events(), /rebuilt node2 after its slot was lost[\s\S]*rebuilt node2 after its slot was lost/, 'the daemon did not rebuild it a second time');
    const j = await c.run('rejoin', 'node2');
    assert.equal(j.code, 0, j.stdout + j.stderr);
    assert.match(j.stdout, /node2 rejoined as a replica of node1 through a fresh clone/);
    await c.until('node2 has every row', async () => (await rows(P + 1)) === (await rows(P)), 60_000);
  });
}
