import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { PG18_BIN } from '../helpers/paths.js';
import { ReplicationConnection } from '../../src/protocol/connection.js';
import { baseBackup, uploadManifest } from '../../src/protocol/basebackup.js';
import { cloneInto } from '../../src/protocol/clone.js';
import { tarSink } from '../../src/protocol/tar-extract.js';
import { WrittenTree } from '../../src/protocol/written-tree.js';
import { combineInto } from '../../src/restore/combine.js';
import { directoryMember } from '../../src/restore/combine-dir.js';
import type { DirectoryMember } from '../../src/restore/combine-dir.js';
import { incrementalName, isIncrementalName, readIncremental } from '../../src/restore/incremental-file.js';

/**
 * Against real PostgreSQL 18: a full backup and three incrementals taken with
 * pgmaestro's protocol client while tables are updated, deleted from,
 * truncated by VACUUM and regrown, TRUNCATEd, dropped and created, and a
 * database created; then combineInto() rebuilds the data directory, which
 * must start, recover from the newest backup's WAL and hold exactly the data
 * the source had, with intact indexes and heaps.
 */

const BIN = PG18_BIN;
const PORT = 23640;
const PASSWORD = 'combine pw';
const isRoot = process.getuid?.() === 0;
const idOf = (flag: '-u' | '-g') => Number(execFileSync('id', [flag, isRoot ? 'postgres' : String(process.getuid?.())]).toString().trim());
const pgUid = idOf('-u');
const pgGid = idOf('-g');

let tmp = '';
const running: string[] = [];

/** Runs a PostgreSQL program as the postgres OS user (PostgreSQL refuses root). */
function pgRun(program: string, args: string[]): string {
  const file = path.join(BIN, program);
  const [cmd, argv] = isRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
  return execFileSync(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 }).toString();
}

function start(dataDir: string, port: number, conf: string[] = []): void {
  fs.appendFileSync(path.join(dataDir, 'postgresql.conf'), [`port = ${port}`, "listen_addresses = '127.0.0.1'", "unix_socket_directories = ''", ...conf, ''].join('\n'));
  pgRun('pg_ctl', ['-w', '-t', '120', '-D', dataDir, '-l', `${dataDir}.log`, 'start']);
  running.push(dataDir);
}

async function sql<T extends pg.QueryResultRow>(port: number, text: string, database = 'postgres'): Promise<T[]> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password: PASSWORD, database });
  await c.connect();
  try {
    return (await c.query<T>(text)).rows;
  } finally {
    await c.end();
  }
}

const replication = () => ReplicationConnection.connect({ host: '127.0.0.1', port: PORT, user: 'postgres', password: PASSWORD, replication: 'true', applicationName: 'pgm_combine_test' });

/** An incremental backup against `parent`'s manifest, unpacked into `dir`. */
async function incrementalInto(dir: string, parent: string, label: string): Promise<void> {
  const conn = await replication();
  try {
    await uploadManifest(conn, fs.readFileSync(path.join(parent, 'backup_manifest')));
    const tree = new WrittenTree({});
    await tree.prepareRoot(dir);
    await baseBackup(conn, { label, incremental: true, wal: true, checkpoint: 'fast', manifest: true }, {
      async archive(name) {
        assert.equal(name, 'base.tar', 'no tablespaces in this test');
        return tarSink(dir, tree, (_rel, original) => original);
      },
      async manifest() {
        const f = await tree.openFile(path.join(dir, 'backup_manifest'));
        return { write: (c) => f.write(c), end: () => f.close() };
      },
    });
    await tree.syncAll();
  } finally {
    await conn.close();
  }
}

/** Every table's content digest in every database (templates aside), and the database list. */
async function snapshot(port: number): Promise<{ databases: string[]; tables: Record<string, string> }> {
  const databases = (await sql<{ datname: string }>(port, 'SELECT datname FROM pg_database ORDER BY 1')).map((r) => r.datname);
  const tables: Record<string, string> = {};
  for (const db of databases.filter((d) => !d.startsWith('template'))) {
    const names = await sql<{ relname: string }>(port, "SELECT relname FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace ORDER BY 1", db);
    for (const { relname } of names) {
      const [row] = await sql<{ n: string; digest: string | null }>(port, `SELECT count(*) AS n, md5(string_agg(t::text, ',' ORDER BY id)) AS digest FROM ${relname} t`, db);
      tables[`${db}.${relname}`] = `${row.n} rows ${row.digest}`;
    }
  }
  return { databases, tables };
}

before(() => {
  tmp = fs.mkdtempSync('/tmp/pgm-combine-');
  fs.chmodSync(tmp, 0o755);
  fs.chownSync(tmp, pgUid, pgGid); // the servers write their logs beside their data directories
});

after(() => {
  for (const dir of running.reverse()) {
    try {
      pgRun('pg_ctl', ['-w', '-D', dir, '-m', 'immediate', 'stop']);
    } catch {
      // not running
    }
  }
  if (tmp && !process.env.PGM_KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
});

test('combineInto rebuilds a PostgreSQL 18 data directory from a full and three incremental backups', { timeout: 600_000 }, async (t) => {
  const source = path.join(tmp, 'source');
  const backups = [0, 1, 2, 3].map((k) => path.join(tmp, `b${k}`));
  const restored = path.join(tmp, 'restored');
  try {
    // A primary that summarizes WAL, with SCRAM for replication and SQL.
    fs.writeFileSync(path.join(tmp, 'pw'), `${PASSWORD}\n`, { mode: 0o600 });
    fs.chownSync(path.join(tmp, 'pw'), pgUid, pgGid);
    pgRun('initdb', ['-D', source, '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${path.join(tmp, 'pw')}`, '--data-checksums']);
    fs.writeFileSync(path.join(source, 'pg_hba.conf'), 'host replication postgres 127.0.0.1/32 scram-sha-256\nhost all postgres 127.0.0.1/32 scram-sha-256\n');
    start(source, PORT, ['wal_level = replica', 'summarize_wal = on', 'autovacuum = off']);

    // Tables, then the full backup.
    const q = (text: string, db?: string) => sql(PORT, text, db);
    await q('CREATE TABLE t_upd (id int PRIMARY KEY, v text)');
    await q('INSERT INTO t_upd SELECT g, md5(g::text) FROM generate_series(1, 20000) g');
    await q('CREATE TABLE t_del (id int PRIMARY KEY, v text)');
    await q('INSERT INTO t_del SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 20000) g');
    await q('CREATE TABLE t_trunc (id int PRIMARY KEY, v text)');
    await q('INSERT INTO t_trunc SELECT g, md5(g::text) FROM generate_series(1, 5000) g');
    await q('CREATE TABLE t_drop AS SELECT g AS id FROM generate_series(1, 5000) g');
    await q('CREATE TABLE t_ins (id int PRIMARY KEY, v text)');
    await q("INSERT INTO t_ins SELECT g, 'v' || g FROM generate_series(1, 10000) g");
    await q('VACUUM ANALYZE');
    const full = await replication();
    await cloneInto(full, { targetDir: backups[0], tablespaceTarget: () => assert.fail('no tablespaces'), label: 'full' });
    await full.close();

    // Incremental 1: updates, a VACUUM truncation, TRUNCATE, DROP, inserts, a new database.
    await q("UPDATE t_upd SET v = v || 'x' WHERE id % 1000 = 0");
    await q('DELETE FROM t_del WHERE id > 12000');
    await q('VACUUM t_del');
    await q('TRUNCATE t_trunc');
    await q("INSERT INTO t_trunc SELECT g, 'again' || g FROM generate_series(1, 100) g");
    await q('DROP TABLE t_drop');
    await q("INSERT INTO t_ins SELECT g, 'w' || g FROM generate_series(10001, 10500) g");
    await q('CREATE DATABASE db2');
    await q('CREATE TABLE d2 (id int PRIMARY KEY, v text)', 'db2');
    await q('INSERT INTO d2 SELECT g, md5(g::text) FROM generate_series(1, 3000) g', 'db2');
    await incrementalInto(backups[1], backups[0], 'incr 1');

    // Incremental 2: the truncated table regrows, a new table, more updates.
    await q('INSERT INTO t_del SELECT g, md5(g::text) FROM generate_series(12001, 16000) g');
    await q("UPDATE t_upd SET v = 'second' WHERE id % 997 = 0");
    await q('CREATE TABLE t_new AS SELECT g AS id, g * 2 AS v FROM generate_series(1, 2000) g');
    await q("UPDATE d2 SET v = 'changed' WHERE id % 100 = 0", 'db2');
    await incrementalInto(backups[2], backups[1], 'incr 2');

    // Incremental 3: deletes and VACUUM, a few updates.
    await q('DELETE FROM t_ins WHERE id % 7 = 0');
    await q('VACUUM t_ins');
    await q("UPDATE t_upd SET v = 'third' WHERE id BETWEEN 100 AND 120");
    await q('DELETE FROM d2 WHERE id > 2900', 'db2');
    await q("UPDATE t_new SET v = -v WHERE id = 1");
    await incrementalInto(backups[3], backups[2], 'incr 3');
    const expected = await snapshot(PORT);

    // The chain really is incremental: relation files came as INCREMENTAL.* in every incremental.
    const chain: DirectoryMember[] = [];
    for (const [k, dir] of backups.entries()) chain.push(await directoryMember(`b${k}`, dir));
    for (const m of chain.slice(1)) {
      const incremental = [...m.files].filter(isIncrementalName);
      const whole = [...m.files].filter((f) => /^base\/\d+\/\d+$/.test(f));
      t.diagnostic(`${m.id}: ${incremental.length} INCREMENTAL files, ${whole.length} whole main-fork relation files`);
      assert.ok(incremental.length > 50, `${m.id} has INCREMENTAL files`);
      assert.ok(whole.length > 0, `${m.id} has whole relation files (new or rewritten relations)`);
    }

    // The user tables' files along the chain: t_upd is INCREMENTAL on top of the full every time.
    for (const table of ['t_upd', 't_del', 't_ins']) {
      const [{ rel }] = await sql<{ rel: string }>(PORT, `SELECT pg_relation_filepath('${table}') AS rel`);
      const shapes: string[] = [];
      for (const m of chain) {
        if (m.files.has(rel)) shapes.push(`${m.id} whole ${fs.statSync(path.join(m.dir, rel)).size / 8192} blocks`);
        else if (m.files.has(incrementalName(rel))) {
          const inc = await readIncremental(m.open(incrementalName(rel)), m.id);
          await inc.close();
          shapes.push(`${m.id} INCREMENTAL ${inc.header.blocks.length} blocks, truncation length ${inc.header.truncationBlockLength}`);
        } else shapes.push(`${m.id} absent`);
      }
      t.diagnostic(`${table} (${rel}): ${shapes.join('; ')}`);
      if (table === 't_upd') assert.deepEqual(shapes.map((s) => s.split(' ')[1]), ['whole', 'INCREMENTAL', 'INCREMENTAL', 'INCREMENTAL']);
    }

    // Combine, add the directories that hold no files, start it.
    const result = await combineInto(chain, restored, { uid: pgUid, gid: pgGid });
    t.diagnostic(`combined: ${JSON.stringify(result)}`);
    assert.equal(result.reconstructed, [...chain[3].files].filter(isIncrementalName).length);
    assert.ok(result.reconstructed > 50);
    for (const rel of chain[3].dirs) {
      const dir = path.join(restored, rel);
      if (fs.existsSync(dir)) continue;
      fs.mkdirSync(dir, { mode: 0o700 });
      fs.chownSync(dir, pgUid, pgGid);
    }
    const restoredFiles = await directoryMember('restored', restored);
    assert.ok(![...restoredFiles.files].some(isIncrementalName), 'no INCREMENTAL file left');
    assert.ok(!restoredFiles.files.has('backup_manifest'));
    assert.doesNotMatch(fs.readFileSync(path.join(restored, 'backup_label'), 'utf8'), /INCREMENTAL/);
    assert.equal(fs.statSync(path.join(restored, 'global', 'pg_control')).uid, pgUid);
    start(restored, PORT + 1);

    // Same databases, same rows; indexes and heaps check clean.
    assert.deepEqual((await sql<{ r: boolean }>(PORT + 1, 'SELECT pg_is_in_recovery() AS r'))[0].r, false);
    const got = await snapshot(PORT + 1);
    assert.deepEqual(got, expected);
    assert.ok(got.databases.includes('db2') && !('postgres.t_drop' in got.tables) && 'postgres.t_new' in got.tables);
    assert.equal(got.tables['postgres.t_del'].split(' ')[0], '16000');
    for (const db of got.databases.filter((d) => !d.startsWith('template'))) {
      await sql(PORT + 1, 'CREATE EXTENSION IF NOT EXISTS amcheck', db);
      const checked = await sql(PORT + 1, "SELECT bt_index_check(c.oid, true) FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND c.relpersistence <> 't'", db);
      assert.ok(checked.length > 10, `${db}: btree indexes checked`);
      const heapProblems = await sql(PORT + 1, "SELECT c.relname, v.* FROM pg_class c, verify_heapam(c.oid) v WHERE c.relkind = 'r' AND c.relpersistence <> 't'", db);
      assert.deepEqual(heapProblems, [], `${db}: heap pages verify`);
    }
  } catch (err) {
    for (const log of [`${source}.log`, `${restored}.log`]) if (fs.existsSync(log)) t.diagnostic(`${path.basename(log)}:\n${fs.readFileSync(log, 'utf8')}`);
    throw err;
  }
});
