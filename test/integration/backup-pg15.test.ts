import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { TestCluster } from '../helpers/cluster.js';
import { PG15_BIN } from '../helpers/paths.js';
import { backup, dropRestore, fingerprint, list, restoreTo } from '../helpers/backup.js';

/** Backups on PostgreSQL 15 with a gzip repository: full, cold, logical, refusals, interruptions, a full or read-only disk. */
const PORT = 26700;
let c: TestCluster;
const restores: string[] = [];
const mounts: string[] = [];

before(async () => {
  c = await TestCluster.init('bk-pg15', { portBase: PORT, replicas: 1, binDir: PG15_BIN });
  fs.writeFileSync(c.file, fs.readFileSync(c.file, 'utf8').replace('compression: none', 'compression: gzip'));
  const r = await c.run('up');
  assert.equal(r.code, 0, r.stderr);
  await c.sql(PORT, 'CREATE TABLE items (id int primary key, v text)');
  await c.sql(PORT, "INSERT INTO items SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 300000) g");
  await c.sql(PORT, 'CREATE TABLE other (id int primary key)');
  await c.sql(PORT, 'INSERT INTO other SELECT generate_series(1, 100)');
});
after(async () => {
  for (const d of restores) await dropRestore(d);
  for (const m of mounts) {
    try {
      execFileSync('umount', ['-l', m]);
    } catch {
      // not mounted
    }
  }
  await c?.destroy();
});

test('pg15: a hot full backup from the replica, compressed, restores to the same data', async () => {
  const b = await backup(c, 'full');
  assert.equal(b.type, 'full');
  const stored = JSON.parse(fs.readFileSync(path.join(c.dir, 'backups', 'backups', b.id, 'files.json'), 'utf8')) as { entries: { kind: string; stored?: string }[] };
  assert.ok(stored.entries.some((e) => e.stored?.endsWith('.gz')), 'files are stored gzip-compressed');
  const info = JSON.parse(fs.readFileSync(path.join(c.dir, 'backups', 'backups', b.id, 'backup.json'), 'utf8')) as { node: string };
  assert.equal(info.node, 'node2', 'taken from the replica by default');
  const source = await fingerprint(c.password(), PORT);
  const { dir, r } = await restoreTo(c, PORT + 50, '--latest');
  restores.push(dir);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await fingerprint(c.password(), PORT + 50), source);
});

test('pg15: an incremental backup is refused naming the cause', async () => {
  const before = await list(c);
  const r = await c.run('backup', 'incr');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /incremental backups need PostgreSQL 17 or later, and node2 runs 15\.\d+\. HINT:/);
  assert.deepEqual(await list(c), before);
});

test('pg15: a cold backup stops the node, copies it, starts it again; it restores', async () => {
  const pidBefore = (await c.status()).nodes[1].pid;
  const b = await backup(c, 'cold', '--node', 'node2');
  assert.equal(b.type, 'cold');
  const st = await c.status();
  assert.equal(st.nodes[1].role, 'replica');
  assert.notEqual(st.nodes[1].pid, pidBefore, 'node2 was restarted');
  const { dir, r } = await restoreTo(c, PORT + 51, '--latest');
  restores.push(dir);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await c.sql<{ n: string }>(PORT + 51, 'SELECT count(*) AS n FROM items'))[0].n, '300000');
});

test('pg15: logical backups (custom with tables, plain, directory, all) restore into a new database', async () => {
  const custom = await backup(c, 'logical', '--db', 'postgres', '--table', 'items');
  const plain = await backup(c, 'logical', '--db', 'postgres', '--format', 'plain');
  const dir = await backup(c, 'logical', '--db', 'postgres', '--format', 'directory');
  const all = await backup(c, 'logical', '--all');
  assert.deepEqual([custom, plain, dir, all].map((b) => b.type), ['logical', 'logical', 'logical', 'logical']);
  for (const [b, db] of [[custom, 'from_custom'], [plain, 'from_plain'], [dir, 'from_dir']] as const) {
    const r = await c.run('restore', '--logical', b.id, '--db', db);
    assert.equal(r.code, 0, r.stderr);
  }
  const count = async (db: string, t: string) => {
    const pg = (await import('pg')).default;
    const cl = new pg.Client({ host: '127.0.0.1', port: PORT, user: 'postgres', password: c.password(), database: db });
    await cl.connect();
    try {
      return (await cl.query(`SELECT count(*)::int AS n FROM ${t}`)).rows[0].n as number;
    } catch {
      return -1;
    } finally {
      await cl.end();
    }
  };
  assert.equal(await count('from_custom', 'items'), 300000);
  assert.equal(await count('from_custom', 'other'), -1, 'only the chosen table');
  assert.equal(await count('from_plain', 'other'), 100);
  assert.equal(await count('from_dir', 'items'), 300000);
  const listed = await list(c);
  assert.ok(listed.some((b) => b.id === all.id), 'logical backups are catalogued with the physical ones');
});

test('pg15: bad input: unknown backup id, a target before the oldest backup, a logical restore without --db', async () => {
  const v = await c.run('backup', 'verify', 'nosuch');
  assert.equal(v.code, 2);
  assert.match(v.stderr, /there is no backup 'nosuch' in .*HINT: pgmaestro backup list shows/);
  const before = await c.run('restore', '--target-dir', path.join(c.dir, 'never'), '--port', String(PORT + 52), '--time', '2001-01-01T00:00:00Z');
  assert.equal(before.code, 2);
  assert.match(before.stderr, /the time 2001-01-01T00:00:00\.000Z is outside what the repository can reach, which is from \S+ \(LSN [0-9A-F/]+\) to/);
  assert.equal(fs.existsSync(path.join(c.dir, 'never')), false);
  const nodb = await c.run('restore', '--logical', 'x');
  assert.equal(nodb.code, 2);
  assert.match(nodb.stderr, /restore --logical needs --db NAME/);
});

test('pg15: a backup killed halfway leaves no catalog entry and nothing a later backup or expire trips on', async () => {
  const before = (await list(c)).length;
  const child = spawn(process.execPath, ['--import', 'tsx', path.resolve('src/cli/main.ts'), 'backup', 'full', '-c', c.file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const backupsDir = path.join(c.dir, 'backups', 'backups');
  const unmarked = () => fs.readdirSync(backupsDir).filter((d) => !fs.existsSync(path.join(backupsDir, d, 'backup.json')));
  let exited = false;
  child.once('exit', () => (exited = true));
  // halfway by its own progress lines (every 10 %): its large files become visible only once complete
  await c.until('the backup a fifth done', async () => exited || (stderr.match(/ MiB of [\d.]+ MiB at /g) ?? []).length >= 3, 120_000);
  assert.equal(exited, false, `the backup ended before it could be killed halfway: ${stderr}`);
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  assert.equal((await list(c)).length, before, 'the killed backup is not listed');
  assert.equal(unmarked().length, 1, 'its folder without a marker is still there');
  const again = await backup(c, 'full');
  assert.equal(again.type, 'full');
  assert.deepEqual(unmarked(), [], 'the next backup removed the leftovers');
  const exp = await c.run('backup', 'expire', '--dry-run');
  assert.equal(exp.code, 0, exp.stderr);
  const v = await c.run('backup', 'verify', again.id);
  assert.equal(v.code, 0, v.stderr);
});

function mountTmpfs(dir: string, options: string): boolean {
  fs.mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'ignore' });
    mounts.push(dir);
    return true;
  } catch {
    return false;
  }
}

test('pg15: a repository on a full disk or a read-only disk: one clear error, no catalog entry, the cluster untouched', async (t) => {
  const full = path.join(c.dir, 'fulldisk');
  const ro = path.join(c.dir, 'rodisk');
  if (!mountTmpfs(full, 'size=4m,mode=0755') || !mountTmpfs(ro, 'ro,mode=0755')) return t.skip('needs root to mount tmpfs');
  const original = fs.readFileSync(c.file, 'utf8');
  try {
    fs.writeFileSync(c.file, original.replace('repository: backups', `repository: ${full}`));
    const r1 = await c.run('backup', 'full');
    assert.equal(r1.code, 1);
    assert.match(r1.stderr, /in the backup repository: the disk is full\. HINT:/);
    assert.equal(r1.stderr.trim().split('\n').filter((l) => l.startsWith('pgmaestro:')).length, 1, 'one error sentence (progress lines aside)');
    assert.deepEqual(await list(c), []);
    fs.writeFileSync(c.file, original.replace('repository: backups', `repository: ${ro}`));
    const r2 = await c.run('backup', 'full');
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /read-only/);
  } finally {
    fs.writeFileSync(c.file, original);
  }
  const st = await c.status();
  assert.deepEqual(st.nodes.map((n) => n.role), ['primary', 'replica']);
});
