import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { TestCluster } from '../helpers/cluster.js';
import { CLI } from '../helpers/paths.js';
import { backup, dropRestore, list, restoreTo } from '../helpers/backup.js';
import { S3Server, useS3 } from '../helpers/s3.js';

/**
 * Disaster recovery against a real S3-compatible server (s3rver), PostgreSQL 18,
 * zstd: full + incremental + PITR + verify + expire on S3; S3 that stops
 * answering; wrong credentials and a missing bucket; and the disaster itself — every postmaster and the daemon killed,
 * every data directory deleted, restore --latest from S3 has every row
 * committed more than wal_flush_interval + 1 s before the kill.
 * Ports: cluster 13000-13009 (endpoint 14000), restores 13050-13069, S3 13500.
 */
const PORT = 13000;
const BUCKET = 'pgm-dr';
let c: TestCluster;
let s3: S3Server;
const restores: string[] = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  c = await TestCluster.init('bk-dr', { portBase: PORT, replicas: 1 });
  s3 = await S3Server.start(path.join(c.dir, 's3'), 13500, BUCKET);
  const creds = s3.credentials(c.dir);
  useS3(c.file, s3, BUCKET, 'dr', creds);
  fs.writeFileSync(c.file, fs.readFileSync(c.file, 'utf8').replace(/compression: \S+/, 'compression: zstd:3').replace('    max_connections: 100', '    max_connections: 100\n    max_slot_wal_keep_size: 64MB'));
  const r = await c.run('up');
  assert.equal(r.code, 0, r.stderr);
  await c.sql(PORT, 'CREATE TABLE big (id int primary key, v text)');
  await c.sql(PORT, "INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 30000) g");
  await c.sql(PORT, 'CREATE TABLE ticks (n int primary key, at timestamptz default clock_timestamp())');
});
after(async () => {
  for (const d of restores) await dropRestore(d);
  await c?.destroy();
  s3?.stop();
});

/** Where s3rver keeps an object's bytes on disk. */
function objectFile(key: string): string {
  return path.join(s3.dir, BUCKET, 'dr', `${key}._S3rver_object`);
}

test('s3: a full and an incremental backup, a restore to a noted time, verify and expire, all on S3', async () => {
  const full = await backup(c, 'full');
  await c.sql(PORT, 'UPDATE big SET v = v || v WHERE id % 50 = 0');
  const incr = await backup(c, 'incr');
  assert.equal(incr.parent, full.id);
  assert.ok(fs.existsSync(objectFile(`backups/${incr.id}/backup.json`)), 'the marker is an object in the bucket');
  await c.sql(PORT, 'INSERT INTO ticks (n) VALUES (1)');
  const [mark] = await c.sql<{ t: string }>(PORT, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS t");
  await sleep(300);
  await c.sql(PORT, 'INSERT INTO ticks (n) VALUES (2)');
  await sleep(2500); // the segment in progress is flushed every second
  const at = await restoreTo(c, PORT + 50, '--time', mark.t);
  restores.push(at.dir);
  assert.equal(at.r.code, 0, at.r.stderr);
  assert.match(at.r.stdout, new RegExp(`restore ${full.id} \\(full\\) \\+ ${incr.id} \\(incr\\)`));
  assert.deepEqual((await c.sql<{ n: number }>(PORT + 50, 'SELECT n FROM ticks ORDER BY n')).map((x) => x.n), [1]);
  const v = await c.run('backup', 'verify', incr.id);
  assert.equal(v.code, 0, v.stderr);
  assert.match(v.stdout, new RegExp(`${incr.id} \\(incr\\): every file matches its checksum`));
  // reads from S3 are checked too: one flipped byte in the incremental's pack of small files
  const pack = objectFile(`backups/${incr.id}/packs/0.zst`);
  const orig = fs.readFileSync(pack);
  const flipped = Buffer.from(orig);
  flipped[orig.length >> 1] ^= 0x20;
  fs.writeFileSync(pack, flipped);
  try {
    const bad = await c.run('backup', 'verify', incr.id);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, new RegExp(`backup ${incr.id} is damaged: packs/0\\.zst \\(data/\\S+ at offset \\d+\\) does not match its checksum`));
  } finally {
    fs.writeFileSync(pack, orig);
  }
  const e = await c.run('backup', 'expire', '--dry-run', '--json');
  assert.equal(e.code, 0, e.stderr);
  assert.deepEqual(JSON.parse(e.stdout).remove, []);
  const l = await c.run('backup', 'list', '--json');
  const window = JSON.parse(l.stdout).window as { ranges: { restorable: boolean; from: string }[] };
  assert.ok(window.ranges.some((r) => r.restorable && r.from <= full.stop_time), JSON.stringify(window));
});

test('s3 stops answering during a backup: it fails cleanly; the archiver waits, and once S3 answers the archive has no gap', async () => {
  const before = (await list(c)).length;
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'backup', 'full', '-c', c.file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number>((r) => child.once('exit', (code) => r(code ?? 1)));
  await c.until('the backup is uploading', async () => /backup \S+ from/.test(stderr), 30_000);
  s3.pause();
  let code: number;
  try {
    await c.sql(PORT, "INSERT INTO big SELECT g, 'paused' FROM generate_series(200001, 260000) g");
    await c.sql(PORT, 'SELECT pg_switch_wal()');
    code = await exited;
  } finally {
    s3.resume();
  }
  assert.equal(code, 1, stderr);
  assert.match(stderr, /S3 at http:\/\/127\.0\.0\.1:13500 did not complete a request/);
  assert.equal((await list(c)).length, before, 'no marker');
  await c.sql(PORT, 'SELECT pg_switch_wal()');
  const [l] = await c.sql<{ l: string }>(PORT, 'SELECT pg_current_wal_lsn()::text AS l');
  await c.until('the archive caught up', async () => {
    const st = await c.status();
    return st.archive?.archived_lsn !== null && st.archive?.lag_bytes !== null && st.archive!.lag_bytes! < 1 << 20 && st.archive!.archived_lsn! >= l.l;
  }, 60_000);
  const l2 = JSON.parse((await c.run('backup', 'list', '--json')).stdout) as { window: { ranges: { restorable: boolean; reason: string }[] } };
  assert.ok(!l2.window.ranges.some((r) => /WAL/.test(r.reason)), `no WAL is missing from the archive: ${JSON.stringify(l2.window)}`);
});

test('wrong credentials or a missing bucket: one sentence saying so', async () => {
  const original = fs.readFileSync(c.file, 'utf8');
  try {
    const wrong = s3.credentials(path.join(c.dir, 'secrets'), 'NOT-A-KEY', 'not-the-secret');
    fs.writeFileSync(c.file, original.replace(/credentials_file: \S+/, `credentials_file: ${wrong}`));
    const r1 = await c.run('backup', 'list');
    assert.equal(r1.code, 1);
    assert.match(r1.stderr, /^pgmaestro: S3 at http:\/\/127\.0\.0\.1:13500 refused the credentials for s3:\/\/pgm-dr\/dr \([\w ]+\)\. HINT: check backup\.s3\.credentials_file/);
    assert.ok(!r1.stderr.includes('not-the-secret'), 'the secret is not printed');
    fs.writeFileSync(c.file, original.replace(`s3://${BUCKET}/dr`, 's3://no-such-bucket/dr'));
    const r2 = await c.run('backup', 'list');
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /^pgmaestro: the S3 bucket no-such-bucket does not exist at http:\/\/127\.0\.0\.1:13500\. HINT:/);
    assert.equal(r2.stderr.trim().split('\n').length, 1);
  } finally {
    fs.writeFileSync(c.file, original);
  }
});

test('the disaster: every postmaster and the daemon killed, every data directory gone; restore --latest from S3 has every row committed up to 2 s before', async () => {
  let running = true;
  const committed: { n: number; at: number }[] = [];
  const load = (async () => {
    for (let n = 100; running; n++) {
      await c.sql(PORT, 'INSERT INTO ticks (n) VALUES ($1)', [n]);
      committed.push({ n, at: Date.now() });
      await sleep(20);
    }
  })();
  await sleep(4000);
  const st = await c.status();
  const killedAt = Date.now();
  // the host is lost: pgmaestro's own processes (supervisor, endpoints, daemon) die with every postmaster
  c.killOwnProcesses();
  for (const pid of st.nodes.map((n) => n.pid)) if (pid) process.kill(pid, 'SIGKILL');
  running = false;
  await load.catch(() => undefined);
  for (const n of st.nodes) fs.rmSync(n.data_dir, { recursive: true, force: true });
  fs.rmSync(path.join(c.dir, 'state'), { recursive: true, force: true });
  const { dir, r } = await restoreTo(c, PORT + 53, '--latest');
  restores.push(dir);
  assert.equal(r.code, 0, r.stderr);
  const have = new Set((await c.sql<{ n: number }>(PORT + 53, 'SELECT n FROM ticks WHERE n >= 100')).map((x) => x.n));
  const due = committed.filter((x) => x.at < killedAt - 2000);
  assert.ok(due.length > 50, `rows were committed before the kill (${due.length})`);
  const lost = due.filter((x) => !have.has(x.n));
  assert.deepEqual(lost, [], `every row committed more than 2 s before the kill is restored (${have.size} restored, ${committed.length} committed)`);
  await c.sql(PORT + 53, 'CREATE EXTENSION IF NOT EXISTS amcheck');
  const idx = await c.sql<{ n: string }>(PORT + 53, "SELECT count(bt_index_check(c.oid, true))::text AS n FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND c.relkind = 'i' AND c.relpersistence <> 't'");
  assert.ok(Number(idx[0].n) > 10, 'amcheck ran on every btree index and found nothing');
});
