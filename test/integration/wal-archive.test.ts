import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Repository } from '../../src/backup/repository.js';
import { PosixStorage } from '../../src/backup/storage-posix.js';
import { parseCompression } from '../../src/backup/codec.js';
import { archivePosition, checkContinuity, readArchived, readHistories, readRecord } from '../../src/backup/wal-archive.js';
import { archiveStatus } from '../../src/backup/wal-status.js';
import { parseSegmentName, parseSizeSetting, segmentStartLsn } from '../../src/backup/wal-names.js';
import { openCluster } from '../../src/cluster/context.js';
import { loadConfig } from '../../src/config/load.js';
import { TestCluster } from '../helpers/cluster.js';
import { spoolRestoreCommand, spoolWal } from '../../src/restore/wal-fetch.js';
import { CLI, PG15_BIN, REPO } from '../helpers/paths.js';

/**
 * Continuous WAL archiving by the daemon against real PostgreSQL: segments
 * arrive whole and byte-identical to the primary's pg_wal, none is skipped
 * across a SIGKILL of the daemon under write load, and the archive follows a
 * promotion onto the new timeline. Ports 26500-26599.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function repoOf(c: TestCluster): Repository {
  return new Repository(new PosixStorage(path.join(c.dir, 'backups')), parseCompression('none'), 'test');
}

const isArchived = (c: TestCluster, name: string) => fs.existsSync(path.join(c.dir, 'backups', 'wal', `${name}.json`));
const daemonLog = (c: TestCluster) => fs.readFileSync(path.join(c.dir, 'logs', 'pgmaestro.log'), 'utf8');

/**
 * Waits until `name` is archived. An archiver catching up a backlog under load
 * may take long, so the limit is on standing still: it fails when no segment
 * was archived for `stallMs`. On timeout, the daemon's last log lines say why.
 */
async function untilArchived(c: TestCluster, name: string, stallMs = 30_000): Promise<void> {
  const walDir = path.join(c.dir, 'backups', 'wal');
  const count = () => (fs.existsSync(walDir) ? fs.readdirSync(walDir).filter((f) => f.endsWith('.json')).length : 0);
  let seen = count();
  let movedAt = Date.now();
  while (!isArchived(c, name)) {
    const now = count();
    if (now !== seen) [seen, movedAt] = [now, Date.now()];
    if (Date.now() - movedAt > stallMs) {
      throw new Error(`${name} not archived: the archive did not grow for ${stallMs / 1000} s (${seen} segment records); daemon log:\n${daemonLog(c).split('\n').slice(-15).join('\n')}`);
    }
    await sleep(250);
  }
}

/** Writes some rows, then ends the segment; returns the name of the segment just completed. */
async function writeAndSwitch(c: TestCluster, port: number, rows = 2000): Promise<string> {
  await c.sql(port, `INSERT INTO t (v) SELECT md5(g::text) FROM generate_series(1, ${rows}) g`);
  return (await c.sql<{ f: string }>(port, 'SELECT pg_walfile_name(pg_switch_wal()) AS f'))[0].f;
}

async function segmentSize(c: TestCluster, port: number): Promise<number> {
  return parseSizeSetting((await c.sql<{ wal_segment_size: string }>(port, 'SHOW wal_segment_size'))[0].wal_segment_size);
}

/** No gap from the oldest archived segment to the newest, and every stored file matches its record. */
async function assertArchiveIntact(c: TestCluster, segSize: number): Promise<{ first: string; last: string; timeline: number }> {
  const repo = repoOf(c);
  const entries = [...(await repo.walEntries()).values()];
  const names = entries.map((e) => e.name);
  const oldest = names.filter((n) => parseSegmentName(n, segSize)).sort((a, b) => (parseSegmentName(a, segSize)!.segno < parseSegmentName(b, segSize)!.segno ? -1 : 1))[0];
  const id = parseSegmentName(oldest, segSize)!;
  const r = checkContinuity(names, { lsn: segmentStartLsn(id.segno, segSize), timeline: id.timeline }, segSize, await readHistories(repo, entries));
  assert.deepEqual(r.missing, [], `gaps in the archive: ${r.missing.join(', ')}`);
  for (const e of entries) {
    const stored = fs.readFileSync(path.join(c.dir, 'backups', 'wal', e.stored));
    assert.equal(crypto.createHash('sha256').update(stored).digest('hex'), e.sha256, `${e.name} matches its record`);
    if (parseSegmentName(e.name, segSize)) assert.equal(e.size, segSize, `${e.name} is a whole segment`);
  }
  return { first: r.first!, last: r.last!, timeline: r.timeline };
}

/** The archived copy of `name` equals the node's own pg_wal file. */
async function assertSameAsPgWal(c: TestCluster, dataDir: string, name: string): Promise<void> {
  const repo = repoOf(c);
  const archived = await readArchived(repo, (await readRecord(repo, name))!);
  const own = fs.readFileSync(path.join(dataDir, 'pg_wal', name));
  assert.equal(archived.length, own.length);
  assert.ok(archived.equals(own), `${name}: the archived bytes equal ${dataDir}/pg_wal/${name}`);
}

function archiveSuite(label: string, opts: { portBase: number; binDir?: string; gzip?: boolean }): void {
  describe(label, { concurrency: 1 }, () => {
    let c: TestCluster;
    const port = opts.portBase;
    let segSize = 0;
    before(async () => {
      c = await TestCluster.init(label, { portBase: port, replicas: 0, binDir: opts.binDir });
      if (opts.gzip) fs.writeFileSync(c.file, fs.readFileSync(c.file, 'utf8').replace('compression: none', 'compression: gzip'));
      const r = await c.run('up');
      assert.equal(r.code, 0, r.stderr);
      await c.sql(port, 'CREATE TABLE t (id bigserial PRIMARY KEY, v text)');
      segSize = await segmentSize(c, port);
    });
    after(async () => {
      await c?.destroy();
    });

    test(`${label}: the daemon archives every completed segment, byte for byte as in pg_wal`, async () => {
      const done: string[] = [];
      for (let i = 0; i < 4; i++) done.push(await writeAndSwitch(c, port));
      await untilArchived(c, done[3], 30_000);
      for (const name of done) assert.ok(isArchived(c, name), name);
      const st = await c.status();
      await assertSameAsPgWal(c, c.node(st, 'node1').data_dir, done[3]);
      if (opts.gzip) assert.match((await readRecord(repoOf(c), done[3]))!.stored, /\.gz$/);
      assert.match(daemonLog(c), new RegExp(`wal archiver: archived ${done[3]} \\(16 MiB\\) at `));
      const slot = await c.sql<{ active: boolean }>(port, "SELECT active FROM pg_replication_slots WHERE slot_name = 'pgm_archiver'");
      assert.deepEqual(slot, [{ active: true }], daemonLog(c));
      await assertArchiveIntact(c, segSize);

      const ctx = await openCluster(loadConfig(c.file));
      const status = await archiveStatus(ctx, repoOf(c));
      assert.equal(status.last_segment, archivePosition((await repoOf(c).walEntries()).values())!.segment);
      assert.equal(status.timeline, 1);
      assert.ok(status.lag_bytes !== null && status.lag_bytes >= 0 && status.lag_bytes < 2 * segSize, `lag ${status.lag_bytes}`);
    });

    test(`${label}: no segment is skipped when the daemon is killed with SIGKILL under write load and restarted`, async (t) => {
      let running = true;
      const switched: string[] = [];
      const load = (async () => {
        while (running) {
          switched.push(await writeAndSwitch(c, port, 500));
          await sleep(30);
        }
      })();
      try {
        await c.until('segments written under load', async () => switched.length >= 3, 30_000);
        await untilArchived(c, switched[2]);
        await c.stopKeepers(); // the daemon stays down until up starts it
        const pid = (await c.status()).daemon.pid!;
        process.kill(pid, 'SIGKILL');
        await c.until('daemon gone', async () => !(await c.status()).daemon.running, 10_000);
        const whileDown = switched.length;
        await c.until('WAL written while the daemon is down', async () => switched.length >= whileDown + 3, 30_000);
        const r = await c.run('up');
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /daemon: started/);
        const afterUp = switched.length;
        await c.until('more WAL after the restart', async () => switched.length >= afterUp + 3, 30_000);
      } finally {
        running = false;
        await load;
      }
      const final = await writeAndSwitch(c, port);
      await untilArchived(c, final, 30_000);
      for (const name of switched) assert.ok(isArchived(c, name), `${name} archived`);
      const intact = await assertArchiveIntact(c, segSize);
      assert.equal(intact.last, archivePosition((await repoOf(c).walEntries()).values())!.segment);
      t.diagnostic(`${switched.length} segments switched under load; archive ${intact.first}..${intact.last}, ${(await repoOf(c).walEntries()).size} files, no gap`);
      assert.match(daemonLog(c), /on timeline 1 from [0-9A-F]+\/[0-9A-F]+, after [0-9A-F]{24}, the newest archived segment on this history/);
      await assertSameAsPgWal(c, c.node(await c.status(), 'node1').data_dir, final);
    });
  });
}

/**
 * Promotion through a switchover (the fast shutdown must not wait on the archiver),
 * point the state's `primary` at it. With `lagging`, the daemon is down
 * while the old timeline gains segments, so the archiver must stream the old
 * timeline to its end from the new primary (kept there by wal_keep_size),
 * archive its last segment as .partial, then follow onto timeline 2.
 * With `restorePort` (PostgreSQL 15, whose pg_basebackup is at hand), a base
 * backup taken on timeline 1 without WAL is recovered with the repository's
 * restore_command alone, through the switch, to the end of timeline 2.
 */
function timelineSuite(label: string, opts: { portBase: number; binDir?: string; lagging: boolean; restorePort?: number }): void {
  describe(label, { concurrency: 1 }, () => {
    let c: TestCluster;
    const [p1, p2] = [opts.portBase, opts.portBase + 1];
    before(async () => {
      c = await TestCluster.init(label, { portBase: p1, replicas: 1, binDir: opts.binDir });
      fs.writeFileSync(c.file, fs.readFileSync(c.file, 'utf8').replace('    log_min_duration_statement: 1000\n', '    log_min_duration_statement: 1000\n    wal_keep_size: 1GB\n'));
      const r = await c.run('up');
      assert.equal(r.code, 0, r.stderr);
      await c.sql(p1, 'CREATE TABLE t (id bigserial PRIMARY KEY, v text)');
    });
    after(async () => {
      await c?.destroy();
    });

    test(`${label}: after a promotion the archive continues on timeline 2 with no gap across the switch`, async (t) => {
      const segSize = await segmentSize(c, p1);
      let last = '';
      for (let i = 0; i < 3; i++) last = await writeAndSwitch(c, p1);
      await untilArchived(c, last, 30_000);
      const backupDir = path.join(c.dir, 'restored');
      if (opts.restorePort) baseBackup(c, p1, backupDir);
      if (opts.lagging) await c.stopKeepers(); // the daemon stays down until up starts it
      const st = await c.status();
      if (opts.lagging) {
        process.kill(st.daemon.pid!, 'SIGKILL');
        await c.until('daemon gone', async () => !(await c.status()).daemon.running, 10_000);
        for (let i = 0; i < 3; i++) last = await writeAndSwitch(c, p1);
      }
      await c.sql(p1, "INSERT INTO t (v) VALUES ('the last row of timeline 1')");

      // 1. the replica has everything; the primary stops (fast), the replica is promoted
      const end = (await c.sql<{ l: string }>(p1, 'SELECT pg_current_wal_lsn()::text AS l'))[0].l;
      await c.until('replica caught up', async () => (await c.sql<{ ok: boolean }>(p2, 'SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [end]))[0].ok, 30_000);
      // a switchover stops the primary with a fast shutdown, which waits until every
      // walsender's client confirmed all WAL: the archiver must answer, or this hangs
      const sw = await c.run('switchover', '--to', 'node2');
      assert.equal(sw.code, 0, sw.stderr);
      if (opts.lagging) startDaemon(c);

      // 2. timeline 2 gets WAL; the archiver follows
      let last2 = '';
      await c.sql(p2, "INSERT INTO t (v) VALUES ('a row of timeline 2')");
      for (let i = 0; i < 3; i++) last2 = await writeAndSwitch(c, p2);
      assert.match(last2, /^00000002/);
      await untilArchived(c, last2, 60_000);

      // 3. one path from the first segment of timeline 1 to the newest of timeline 2
      assert.ok(isArchived(c, '00000002.history'));
      const intact = await assertArchiveIntact(c, segSize);
      assert.match(intact.first, /^00000001/);
      assert.equal(intact.last, last2);
      assert.equal(intact.timeline, 2);
      const node2 = c.node(await c.status(), 'node2');
      await assertSameAsPgWal(c, node2.data_dir, last2);
      const repo = repoOf(c);
      const switchSeg = [...(await repo.walEntries()).keys()].filter((n) => /^00000002[0-9A-F]{16}$/.test(n)).sort()[0];
      await assertSameAsPgWal(c, node2.data_dir, switchSeg);
      const partial = await readRecord(repo, `00000001${switchSeg.slice(8)}.partial`);
      if (opts.lagging) {
        // the old timeline's last segment, up to the switch: a prefix of the new timeline's copy
        assert.ok(partial, 'the end of timeline 1 is archived as .partial');
        assert.ok(partial.size > 0 && partial.size < segSize);
        assert.ok((await readArchived(repo, partial)).equals((await readArchived(repo, (await readRecord(repo, switchSeg))!)).subarray(0, partial.size)));
        assert.match(daemonLog(c), /timeline 1 ended at [0-9A-F]+\/[0-9A-F]+; (archived|already had) 00000002\.history and continue on timeline 2/);
      } else {
        assert.equal(partial, null, 'caught up: streaming resumes on timeline 2 directly');
        assert.match(daemonLog(c), /archiving WAL from node2 .* on timeline 2 from /);
      }
      t.diagnostic(`archive ${intact.first}..${intact.last}${partial ? `, ${partial.name} (${partial.size} bytes)` : ''}, no gap`);
      const ctx = await openCluster(loadConfig(c.file));
      const status = await archiveStatus(ctx, repo);
      assert.equal(status.timeline, 2);
      assert.equal(status.last_segment, last2);

      // 4. the archive is what a restore needs: a timeline-1 backup recovers through the switch
      if (opts.restorePort) {
        await recoverFromArchive(c, backupDir, opts.restorePort);
        const rows = await c.sql<{ v: string }>(opts.restorePort, "SELECT v FROM t WHERE v IN ('the last row of timeline 1', 'a row of timeline 2') ORDER BY id");
        assert.deepEqual(rows.map((r) => r.v), ['the last row of timeline 1', 'a row of timeline 2']);
        const tli = await c.sql<{ f: string }>(opts.restorePort, 'SELECT pg_walfile_name(pg_current_wal_lsn()) AS f');
        assert.match(tli[0].f, /^00000003/, 'recovery followed timeline 2 to its end, then promoted');
        const serverLog = fs.readdirSync(path.join(backupDir, 'log')).map((f) => fs.readFileSync(path.join(backupDir, 'log', f), 'utf8')).join('');
        assert.match(serverLog, /restored log file "00000002\.history" from archive/);
        assert.match(serverLog, new RegExp(`restored log file "${switchSeg}" from archive`), 'the switch segment comes from the new timeline');
        execFileSync('runuser', ['-u', 'postgres', '--', path.join(PG15_BIN, 'pg_ctl'), '-D', backupDir, '-m', 'immediate', 'stop'], { stdio: 'pipe' });
      }
    });
  });
}

/** A base backup without WAL (-X none): recovering it needs the archive from its start on. */
function baseBackup(c: TestCluster, port: number, dir: string): void {
  execFileSync(path.join(PG15_BIN, 'pg_basebackup'), ['-D', dir, '-X', 'none', '-c', 'fast', '--no-manifest', '-h', '127.0.0.1', '-p', String(port), '-U', 'replicator', '-w'], {
    env: { ...process.env, PGPASSFILE: path.join(c.dir, 'secrets', 'replication.pgpass') },
    stdio: 'pipe',
  });
}

/** Starts the backup in `dir` with recovery.signal and the repository's restore_command; waits until recovery ended. */
async function recoverFromArchive(c: TestCluster, dir: string, port: number): Promise<void> {
  const label = fs.readFileSync(path.join(dir, 'backup_label'), 'utf8');
  const from = { lsn: /START WAL LOCATION: (\S+)/.exec(label)![1], timeline: Number(/START TIMELINE: (\d+)/.exec(label)![1]) };
  const owner = { name: 'postgres', uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) };
  await spoolWal(repoOf(c), from, { kind: 'latest' }, `${dir}_wal`, owner);
  const command = spoolRestoreCommand(`${dir}_wal`).replace(/'/g, "''");
  fs.appendFileSync(path.join(dir, 'postgresql.auto.conf'), `port = ${port}\nrestore_command = '${command}'\nrecovery_target_timeline = 'latest'\n`);
  fs.writeFileSync(path.join(dir, 'recovery.signal'), '');
  execFileSync('chown', ['-R', 'postgres:postgres', dir]);
  fs.chmodSync(dir, 0o700);
  execFileSync('runuser', ['-u', 'postgres', '--', path.join(PG15_BIN, 'pg_ctl'), '-D', dir, '-l', path.join(dir, 'recovery.log'), '-w', '-t', '120', 'start'], { stdio: 'pipe' });
  await c.until('recovery finished', async () => (await c.sql<{ r: boolean }>(port, 'SELECT pg_is_in_recovery() AS r'))[0].r === false, 120_000);
}

/** Starts the daemon directly (`up` would try to bring the stopped old primary back). */
function startDaemon(c: TestCluster): void {
  const out = fs.openSync(path.join(c.dir, 'logs', 'pgmaestro.log'), 'a');
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'daemon', '-c', c.file], { detached: true, stdio: ['ignore', out, out], cwd: REPO });
  fs.closeSync(out);
  child.unref();
}

describe('WAL archive', { concurrency: true }, () => {
  archiveSuite('wal-pg18', { portBase: 26500 });
  archiveSuite('wal-pg15', { portBase: 26510, binDir: PG15_BIN, gzip: true });
  timelineSuite('wal-tl-pg18', { portBase: 26520, lagging: false });
  timelineSuite('wal-tl-pg15', { portBase: 26530, binDir: PG15_BIN, lagging: true, restorePort: 26539 });
});
