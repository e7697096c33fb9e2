import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { TestCluster } from '../helpers/cluster.js';
import { backup, dropRestore, list, restoreTo } from '../helpers/backup.js';

/**
 * Point-in-time exactness: rows committed in steps, the time and LSN noted
 * after each; a restore to each mark has every row committed before it and
 * none after. Then retention: expire as of a later moment keeps what the
 * window needs, and its oldest point still restores.
 */
const PORT = 26800;
let c: TestCluster;
const restores: string[] = [];
interface Mark {
  step: number;
  time: string;
  lsn: string;
}
const marks: Mark[] = [];

async function step(n: number): Promise<Mark> {
  await c.sql(PORT, 'INSERT INTO steps VALUES ($1, clock_timestamp())', [n]);
  const [row] = await c.sql<{ t: string; l: string }>(PORT, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS t, pg_current_wal_lsn()::text AS l");
  await new Promise((r) => setTimeout(r, 300));
  return { step: n, time: row.t, lsn: row.l };
}

async function archivedPast(lsn: string): Promise<void> {
  await c.sql(PORT, 'SELECT pg_switch_wal()');
  await c.until(`WAL archived past ${lsn}`, async () => {
    const r = await c.run('status', '--json');
    const st = JSON.parse(r.stdout) as { archive?: { archived_lsn: string | null } };
    const a = st.archive?.archived_lsn;
    if (!a) return false;
    const [ah, al] = a.split('/').map((x) => parseInt(x, 16));
    const [bh, bl] = lsn.split('/').map((x) => parseInt(x, 16));
    return ah > bh || (ah === bh && al > bl);
  }, 60_000);
}

before(async () => {
  c = await TestCluster.init('bk-pitr', { portBase: PORT, replicas: 1 });
  const r = await c.run('up');
  assert.equal(r.code, 0, r.stderr);
  await c.sql(PORT, 'CREATE TABLE steps (n int primary key, at timestamptz)');
});
after(async () => {
  for (const d of restores) await dropRestore(d);
  await c?.destroy();
});

test('pitr: a restore to each noted time and LSN has exactly the rows committed before it', async () => {
  await backup(c, 'full');
  for (let n = 1; n <= 4; n++) marks.push(await step(n));
  await archivedPast(marks[marks.length - 1].lsn);
  let port = PORT + 50;
  for (const m of [marks[0], marks[2]]) {
    for (const target of [['--time', m.time], ['--lsn', m.lsn]]) {
      const { dir, r } = await restoreTo(c, port, ...target);
      restores.push(dir);
      assert.equal(r.code, 0, `${target.join(' ')}: ${r.stderr}`);
      const rows = (await c.sql<{ n: number }>(port, 'SELECT n FROM steps ORDER BY n')).map((x) => x.n);
      assert.deepEqual(rows, Array.from({ length: m.step }, (_, i) => i + 1), `restore to ${target.join(' ')} has steps 1..${m.step}`);
      port++;
    }
  }
});

test('pitr: a named restore point and a transaction id are reachable targets too', async () => {
  await c.sql(PORT, "SELECT pg_create_restore_point('before-five')");
  const [x] = await c.sql<{ xid: string }>(PORT, 'WITH i AS (INSERT INTO steps VALUES (5, now()) RETURNING 1) SELECT pg_current_xact_id()::text AS xid FROM i');
  await c.sql(PORT, 'INSERT INTO steps VALUES (6, now())');
  const [l] = await c.sql<{ l: string }>(PORT, 'SELECT pg_current_wal_lsn()::text AS l');
  await archivedPast(l.l);
  const named = await restoreTo(c, PORT + 60, '--name', 'before-five');
  restores.push(named.dir);
  assert.equal(named.r.code, 0, named.r.stderr);
  assert.deepEqual((await c.sql<{ n: number }>(PORT + 60, 'SELECT max(n) AS n FROM steps'))[0].n, 4);
  const byXid = await restoreTo(c, PORT + 61, '--xid', x.xid);
  restores.push(byXid.dir);
  assert.equal(byXid.r.code, 0, byXid.r.stderr);
  assert.deepEqual((await c.sql<{ n: number }>(PORT + 61, 'SELECT max(n) AS n FROM steps'))[0].n, 5);
});

test('retention: expire as of a later moment keeps what the window needs; its oldest point still restores, older ones are refused', async () => {
  const [a, b] = [(await list(c))[0], await backup(c, 'full')];
  const mark = await step(7);
  await new Promise((r) => setTimeout(r, 1000));
  const cBackup = await backup(c, 'full');
  await step(8);
  const [l] = await c.sql<{ l: string }>(PORT, 'SELECT pg_current_wal_lsn()::text AS l');
  await archivedPast(l.l);
  // The window (21 d) evaluated at mark + 21 d starts at the mark: b is the newest backup before it.
  const at = new Date(Date.parse(mark.time) + 21 * 86400_000).toISOString();
  const dry = await c.run('backup', 'expire', '--at', at, '--dry-run', '--json');
  assert.equal(dry.code, 0, dry.stderr);
  assert.deepEqual(JSON.parse(dry.stdout).remove, [a.id]);
  assert.equal((await list(c)).length, 3, 'a dry run removes nothing');
  const walBefore = fs.readdirSync(path.join(c.dir, 'backups', 'wal')).length;
  const r = await c.run('backup', 'expire', '--at', at);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual((await list(c)).map((x) => x.id), [b.id, cBackup.id]);
  assert.ok(fs.readdirSync(path.join(c.dir, 'backups', 'wal')).length < walBefore, 'WAL older than the kept backups was removed');
  const oldest = await restoreTo(c, PORT + 70, '--time', mark.time);
  restores.push(oldest.dir);
  assert.equal(oldest.r.code, 0, oldest.r.stderr);
  assert.match(oldest.r.stdout, new RegExp(`restore ${b.id} \\(full\\)`));
  assert.equal((await c.sql<{ n: number }>(PORT + 70, 'SELECT max(n) AS n FROM steps'))[0].n, 7);
  const tooOld = await restoreTo(c, PORT + 71, '--time', marks[0].time);
  assert.equal(tooOld.r.code, 2);
  assert.match(tooOld.r.stderr, /is outside what the repository can reach/);
});
