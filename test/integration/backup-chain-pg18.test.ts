import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { TestCluster } from '../helpers/cluster.js';
import { backup, dropRestore, fingerprint, list, restoreTo } from '../helpers/backup.js';

/** Full + three incrementals with every kind of change; restore gives exactly the source. Then corruption. */
const PORT = 26600;
let c: TestCluster;
const restores: string[] = [];

before(async () => {
  c = await TestCluster.init('bk-chain', { portBase: PORT, replicas: 1 });
  const r = await c.run('up');
  assert.equal(r.code, 0, r.stderr);
});
after(async () => {
  for (const d of restores) await dropRestore(d);
  await c?.destroy();
});

test('an incremental needs a full backup to build on', async () => {
  const r = await c.run('backup', 'incr');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /there is no full backup on timeline 1 for an incremental to build on\. HINT: take one first/);
  assert.deepEqual(await list(c), []);
});

test('full, then three incrementals with inserts, updates, deletes, truncate, drop and a new database; restore equals the source', async () => {
  const sql = (q: string, db = 'postgres') => c.sql(PORT, q).then(() => undefined, (e) => { throw new Error(`${db}: ${q}: ${e}`); });
  await sql('CREATE TABLE big (id int primary key, v text, n int)');
  await sql("INSERT INTO big SELECT g, md5(g::text), g FROM generate_series(1, 200000) g");
  await sql('CREATE TABLE doomed (id int primary key)');
  await sql('INSERT INTO doomed SELECT generate_series(1, 1000)');
  await sql('CREATE TABLE emptied (id int primary key, v text)');
  await sql("INSERT INTO emptied SELECT g, 'x' FROM generate_series(1, 5000) g");
  const full = await backup(c, 'full');
  assert.equal(full.type, 'full');

  await sql('UPDATE big SET n = n + 1 WHERE id % 100 = 0');
  await sql('INSERT INTO big SELECT g, md5(g::text), 0 FROM generate_series(200001, 201000) g');
  const i1 = await backup(c, 'incr');
  assert.equal(i1.parent, full.id);

  await sql('DELETE FROM big WHERE id % 1000 = 7');
  await sql('TRUNCATE emptied');
  await sql('DROP TABLE doomed');
  const i2 = await backup(c, 'incr');
  assert.equal(i2.parent, i1.id);

  await sql('CREATE DATABASE newdb');
  await c.sql(PORT, 'SELECT 1');
  const pg = await import('pg');
  const nc = new pg.default.Client({ host: '127.0.0.1', port: PORT, user: 'postgres', password: c.password(), database: 'newdb' });
  await nc.connect();
  await nc.query("CREATE TABLE born (id int primary key, v text); INSERT INTO born SELECT g, 'n' || g FROM generate_series(1, 3000) g");
  await nc.end();
  await sql("INSERT INTO emptied SELECT g, 'again' FROM generate_series(1, 10) g");
  const i3 = await backup(c, 'incr');
  assert.equal(i3.parent, i2.id);
  assert.ok(i3.size_bytes < full.size_bytes, `the incremental (${i3.size_bytes}) is smaller than the full (${full.size_bytes})`);
  const incrementalFiles = fs.readdirSync(path.join(c.dir, 'backups', 'backups', i1.id, 'data', 'base'), { recursive: true }).filter((f) => String(f).includes('INCREMENTAL.'));
  assert.ok(incrementalFiles.length > 0, 'the first incremental holds INCREMENTAL files');

  const source = await fingerprint(c.password(), PORT);
  const { dir, r } = await restoreTo(c, PORT + 50, '--latest');
  restores.push(dir);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`restore ${full.id} \\(full\\) \\+ ${i1.id} \\(incr\\) \\+ ${i2.id} \\(incr\\) \\+ ${i3.id} \\(incr\\)`));
  assert.deepEqual(await fingerprint(c.password(), PORT + 50), source);
  assert.ok(!('postgres.public.doomed' in source));
  assert.equal(source['newdb.public.born'].split(':')[0], '3000');
});

test('verify --restore: every checksum, the chain, WAL continuity, and amcheck on a restored copy', async () => {
  const r = await c.run('backup', 'verify', '--restore');
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /every file matches its checksum/);
  assert.match(r.stdout, /amcheck found no corruption in \d+ indexes/);
});

test('restore --node rebuilds a replica from the repository; it catches up from the archive and streams', async () => {
  await c.sql(PORT, 'INSERT INTO big SELECT g, md5(g::text), 1 FROM generate_series(300001, 300500) g');
  const r = await c.run('restore', '--node', 'node2');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /node2 rebuilt from \S+ \+ .* and streams from node1/);
  const st = await c.status();
  assert.equal(c.node(st, 'node2').role, 'replica');
  const want = await fingerprint(c.password(), PORT);
  await c.until('node2 equals the primary', async () => JSON.stringify(await fingerprint(c.password(), PORT + 1)) === JSON.stringify(want));
  const refused = await c.run('restore', '--node', 'node1');
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /node1 is the running primary; rebuilding it from the repository would discard its newer data/);
});

test('one flipped byte: verify fails naming the file, and restore refuses that backup', async () => {
  const backups = await list(c);
  const victim = backups[backups.length - 1]; // every file of the newest backup is read by a restore
  const filesJson = JSON.parse(fs.readFileSync(path.join(c.dir, 'backups', 'backups', victim.id, 'files.json'), 'utf8')) as { entries: { kind: string; stored: string; size: number }[] };
  const target = filesJson.entries.find((e) => e.kind === 'file' && e.size > 8192 && e.stored.includes('base/'))!;
  const file = path.join(c.dir, 'backups', 'backups', victim.id, target.stored);
  const bytes = fs.readFileSync(file);
  bytes[Math.floor(bytes.length / 2)] ^= 0x01;
  fs.writeFileSync(file, bytes);

  const v = await c.run('backup', 'verify', victim.id);
  assert.equal(v.code, 1);
  assert.ok(v.stderr.includes(target.stored), `verify names ${target.stored}: ${v.stderr}`);

  const { dir, r } = await restoreTo(c, PORT + 51, '--latest');
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`backup ${victim.id} is damaged: ${target.stored.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} does not match its checksum`));
  assert.equal(fs.existsSync(dir), false, 'the refused restore left nothing behind');
});

test('a logical backup of an 18 server needs pg_dump 18 or later: used when installed, else the error says what to install', async () => {
  const r = await c.run('backup', 'logical', '--db', 'postgres');
  if (fs.existsSync('/usr/lib/postgresql/18/bin/pg_dump')) {
    assert.equal(r.code, 0, r.stderr);
  } else {
    assert.equal(r.code, 2);
    assert.match(r.stderr, /pg_dump must be of PostgreSQL 18 or later to work with this server, and only pg_dump 15 is installed\. HINT: install the client tools of PostgreSQL 18 \(Debian: apt-get install postgresql-client-18/);
    assert.equal((await list(c)).filter((b) => b.type === 'logical').length, 0);
  }
});
