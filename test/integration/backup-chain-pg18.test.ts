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
  const catalog = JSON.parse(fs.readFileSync(path.join(c.dir, 'backups', 'backups', i1.id, 'files.json'), 'utf8')) as { entries: { kind: string; path: string; stored: string }[] };
  const incrementalFiles = catalog.entries.filter((e) => e.kind === 'file' && e.path.includes('/INCREMENTAL.'));
  assert.ok(incrementalFiles.length > 0, 'the first incremental holds INCREMENTAL files');
  assert.ok(incrementalFiles.some((e) => e.stored.startsWith('packs/')), 'small files are packed');

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

test('one flipped byte in a data file, files.json, backup_manifest or backup.json, of a full and of an incremental: verify names it, restore refuses, undone it passes', async () => {
  const backups = await list(c);
  const [full, newest] = [backups[0], backups[backups.length - 1]];
  const dirOf = (id: string) => path.join(c.dir, 'backups', 'backups', id);
  type Entry = { kind: string; path: string; stored: string; offset?: number; size: number; stored_size: number };
  const entriesOf = (id: string) => (JSON.parse(fs.readFileSync(path.join(dirOf(id), 'files.json'), 'utf8')) as { entries: Entry[] }).entries.filter((e) => e.kind === 'file');
  // of the full: the largest relation file no incremental changed, so a restore of the newest rebuilds it from every block of the full's copy
  const unchanged = (p: string) => backups.slice(1).every((b) => entriesOf(b.id).some((e) => e.path === p.replace(/\/([^/]+)$/, '/INCREMENTAL.$1') && e.size === 12));
  const ofFull = entriesOf(full.id).filter((e) => e.size > 8192 && e.path.startsWith('data/base/') && unchanged(e.path)).sort((x, y) => y.size - x.size)[0];
  // of the newest: its largest INCREMENTAL file (every page of it is used)
  const ofNewest = entriesOf(newest.id).filter((e) => e.path.includes('/INCREMENTAL.')).sort((x, y) => y.size - x.size)[0];
  assert.ok(ofFull && ofNewest, 'a file to damage in each');
  const flipAt = (file: string, at: number) => {
    const orig = fs.readFileSync(file);
    const b = Buffer.from(orig);
    b[at] ^= 0x20;
    fs.writeFileSync(file, b);
    return () => fs.writeFileSync(file, orig);
  };
  let restoreChecks = 0;
  for (const [b, data] of [[full, ofFull], [newest, ofNewest]] as const) {
    const records: [string, () => () => void][] = [
      [data.stored, () => flipAt(path.join(dirOf(b.id), data.stored), (data.offset ?? 0) + Math.floor(data.stored_size / 2))],
      ...['files.json', 'backup_manifest', 'backup.json'].map((n) => [n, () => flipAt(path.join(dirOf(b.id), n), Math.floor(fs.statSync(path.join(dirOf(b.id), n)).size / 2))] as [string, () => () => void]),
    ];
    for (const [name, damage] of records) {
      const undo = damage();
      try {
        const v = await c.run('backup', 'verify', newest.id);
        assert.equal(v.code, 1, `${b.type} ${name}: verify fails`);
        assert.ok(v.stderr.includes(name), `${b.type} ${name}: verify names it: ${v.stderr}`);
        if (restoreChecks++ % 2 === 1) continue; // each kind of record is refused by a restore once, of one backup or the other
        const { dir, r } = await restoreTo(c, PORT + 51, '--latest');
        assert.equal(r.code, 1, `${b.type} ${name}: restore refuses`);
        assert.ok(r.stderr.includes(name), `${b.type} ${name}: restore names it: ${r.stderr}`);
        assert.equal(fs.existsSync(dir) || fs.existsSync(`${dir}_wal`), false, 'the refused restore left nothing behind');
      } finally {
        undo();
      }
    }
  }
  const ok = await c.run('backup', 'verify');
  assert.equal(ok.code, 0, ok.stderr);
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
