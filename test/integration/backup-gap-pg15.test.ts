import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { TestCluster } from '../helpers/cluster.js';
import { PG15_BIN } from '../helpers/paths.js';
import { backup, dropRestore, list, restoreTo } from '../helpers/backup.js';

/**
 * Issue 15's archiver case on PostgreSQL 15: the daemon is stopped while
 * 400 MB of WAL is written with max_slot_wal_keep_size at 64 MB, so the
 * primary drops WAL the archive never had. Started again, the daemon records
 * the gap (event log, backup list), the recovery window says it cannot be
 * restored across it, a full backup follows on its own, and a restore to a
 * time after that backup works. Ports 13100-13109 (endpoint 14100), restore 13150.
 */
const PORT = 13100;
let c: TestCluster;
const restores: string[] = [];

before(async () => {
  c = await TestCluster.init('bk-gap', { portBase: PORT, replicas: 0, binDir: PG15_BIN });
  fs.writeFileSync(c.file, fs.readFileSync(c.file, 'utf8').replace('    max_connections: 100', '    max_connections: 100\n    max_slot_wal_keep_size: 64MB'));
  const r = await c.run('up');
  assert.equal(r.code, 0, r.stderr);
  await c.sql(PORT, 'CREATE TABLE w (id bigserial primary key, v text)');
  await c.sql(PORT, 'CREATE TABLE marks (n int primary key)');
});
after(async () => {
  for (const d of restores) await dropRestore(d);
  await c?.destroy();
});

const events = (): string[] => {
  try {
    return fs.readFileSync(path.join(c.dir, 'state', 'events.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { sentence: string }).sentence);
  } catch {
    return [];
  }
};

test('the daemon down while 400 MB of WAL is written: the gap is reported, a full backup follows by itself, a later time restores', async () => {
  const first = await backup(c, 'full');
  await c.stopKeepers(); // the daemon stays down only without its keepers
  const st = await c.status();
  process.kill(st.daemon.pid!, 'SIGTERM');
  await c.until('the daemon stopped', async () => !(await c.status()).daemon.running, 30_000);
  for (let i = 0; i < 4; i++) await c.sql(PORT, "INSERT INTO w (v) SELECT repeat('x', 1000) FROM generate_series(1, 100000)");
  await c.sql(PORT, 'CHECKPOINT');
  await c.sql(PORT, 'CHECKPOINT');
  const [slot] = await c.sql<{ wal_status: string }>(PORT, "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'pgm_archiver'");
  assert.equal(slot.wal_status, 'lost', 'the bound made the primary drop WAL the archiver had not taken');

  const up = await c.run('up');
  assert.equal(up.code, 0, up.stderr);
  await c.until('the gap recorded and a full backup taken after it', async () => {
    const ev = events();
    const gap = ev.findIndex((s) => /^WAL gap: node1 removed WAL from \S+ to \S+ before it was archived/.test(s));
    return gap >= 0 && ev.slice(gap).some((s) => /^scheduled full backup \S+F from node1/.test(s));
  }, 120_000);
  const backups = await list(c);
  const healing = backups[backups.length - 1];
  assert.notEqual(healing.id, first.id);
  const l = await c.run('backup', 'list');
  assert.equal(l.code, 0, l.stderr);
  assert.match(l.stdout, /WAL gap: node1 removed WAL from \S+ to \S+ before it was archived/);
  const json = JSON.parse((await c.run('backup', 'list', '--json')).stdout) as { window: { restorable: boolean; ranges: { restorable: boolean; reason: string; to: string }[] } };
  const broken = json.window.ranges.find((r) => !r.restorable && /WAL gap/.test(r.reason));
  assert.ok(broken, `the window names the gap: ${JSON.stringify(json.window)}`);
  assert.match(broken.reason, new RegExp(`healed by backup ${healing.id}`));
  assert.ok(broken.to <= healing.stop_time);

  await c.sql(PORT, 'INSERT INTO marks VALUES (1)');
  const [mark] = await c.sql<{ t: string }>(PORT, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS t");
  await new Promise((r) => setTimeout(r, 300));
  await c.sql(PORT, 'INSERT INTO marks VALUES (2)');
  await new Promise((r) => setTimeout(r, 2500));
  const { dir, r } = await restoreTo(c, PORT + 50, '--time', mark.t);
  restores.push(dir);
  assert.equal(r.code, 0, r.stderr);
  const base = /^restore (\S+) \(full\)/.exec(r.stdout)?.[1] ?? '';
  assert.ok(base >= healing.id, `restored from the healing backup or a later one (${base})`);
  assert.deepEqual((await c.sql<{ n: number }>(PORT + 50, 'SELECT n FROM marks ORDER BY n')).map((x) => x.n), [1]);
});
