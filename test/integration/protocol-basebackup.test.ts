import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ReplicationConnection } from '../../src/protocol/connection.js';
import { cloneInto } from '../../src/protocol/clone.js';
import { baseBackup, uploadManifest } from '../../src/protocol/basebackup.js';
import { formatLsn, parseLsn } from '../../src/postgres/lsn.js';
import { PG18_BIN } from '../helpers/paths.js';

/**
 * Against real servers: initdb (SCRAM), a table and a tablespace, then
 * cloneInto() a new directory, start the clone standalone, and find the rows.
 * Also exercises the walsender commands the clone does not use.
 */

const servers = [
  { name: 'PostgreSQL 18 (embedded)', bin: PG18_BIN, port: 23410 },
  { name: 'PostgreSQL 15 (Debian)', bin: '/usr/lib/postgresql/15/bin', port: 23420 },
].filter((s) => fs.existsSync(path.join(s.bin, 'initdb')));

const PASSWORD = "s3cret 'pw";
const isRoot = process.getuid?.() === 0;
const pgUid = isRoot ? Number(execFileSync('id', ['-u', 'postgres']).toString().trim()) : os.userInfo().uid;
const pgGid = isRoot ? Number(execFileSync('id', ['-g', 'postgres']).toString().trim()) : os.userInfo().gid;

/** Runs a PostgreSQL program as the postgres OS user (PostgreSQL refuses root). */
function pg(bin: string, program: string, args: string[]): string {
  const file = path.join(bin, program);
  const [cmd, argv] = isRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
  return execFileSync(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 }).toString();
}

function ownedDir(dir: string): string {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chownSync(dir, pgUid, pgGid);
  return dir;
}

function startServer(bin: string, dataDir: string, port: number, extraConf: string[] = []): void {
  fs.appendFileSync(path.join(dataDir, 'postgresql.conf'), [`port = ${port}`, "listen_addresses = '127.0.0.1'", "unix_socket_directories = ''", ...extraConf, ''].join('\n'));
  pg(bin, 'pg_ctl', ['-w', '-t', '60', '-D', dataDir, '-l', path.join(path.dirname(dataDir), `${path.basename(dataDir)}.log`), 'start']);
}

function stopServer(bin: string, dataDir: string, mode: 'fast' | 'immediate' = 'immediate'): void {
  try {
    pg(bin, 'pg_ctl', ['-w', '-D', dataDir, '-m', mode, 'stop']);
  } catch {
    // not running
  }
}

const connect = (port: number, replication: 'true' | false) =>
  ReplicationConnection.connect({ host: '127.0.0.1', port, user: 'postgres', password: PASSWORD, database: 'postgres', replication, applicationName: 'pgm_test' });

for (const server of servers) {
  test(`protocol against ${server.name}: clone a cluster with a tablespace and start it`, { timeout: 300_000 }, async (t) => {
    const tmp = ownedDir(fs.mkdtempSync('/tmp/pgm-protocol-'));
    const dataDir = path.join(tmp, 'primary');
    const cloneDir = path.join(tmp, 'clone');
    const tsDir = ownedDir(path.join(tmp, 'ts_primary'));
    const log = (name: string) => path.join(tmp, `${name}.log`);
    const dumpLogs = () => {
      for (const f of ['primary', 'clone']) if (fs.existsSync(log(f))) t.diagnostic(`${f}.log:\n${fs.readFileSync(log(f), 'utf8')}`);
    };
    try {
      // A primary with SCRAM for both replication and normal connections.
      fs.writeFileSync(path.join(tmp, 'pw'), PASSWORD + '\n', { mode: 0o600 });
      fs.chownSync(path.join(tmp, 'pw'), pgUid, pgGid);
      pg(server.bin, 'initdb', ['-D', dataDir, '--auth=scram-sha-256', `--pwfile=${path.join(tmp, 'pw')}`, '-U', 'postgres', '--data-checksums']);
      fs.writeFileSync(
        path.join(dataDir, 'pg_hba.conf'),
        'host replication postgres 127.0.0.1/32 scram-sha-256\nhost all postgres 127.0.0.1/32 scram-sha-256\n',
      );
      const version = Number(pg(server.bin, 'postgres', ['--version']).match(/(\d+)/)?.[1]);
      startServer(server.bin, dataDir, server.port, ['wal_level = replica', ...(version >= 17 ? ['summarize_wal = on'] : [])]);

      const sql = await connect(server.port, false);
      await sql.query('CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 5000) g');
      await sql.query(`CREATE TABLESPACE ts LOCATION '${tsDir}'`);
      await sql.query('CREATE TABLE t_ts TABLESPACE ts AS SELECT g AS id FROM generate_series(1, 777) g');
      const [oidResult] = await sql.query("SELECT oid FROM pg_tablespace WHERE spcname = 'ts'");
      const tsOid = Number(oidResult.rows[0][0]);
      const [multi1, multi2] = await sql.query("SELECT 1 AS a; SELECT NULL::text AS b, 'x' AS c");
      assert.deepEqual(multi1.rows, [['1']]);
      assert.deepEqual(multi2, { command: 'SELECT 1', fields: [{ name: 'b', typeOid: 25 }, { name: 'c', typeOid: 25 }], rows: [[null, 'x']] });
      await assert.rejects(sql.query('SELECT * FROM no_such_table'), (err: { code: string; data: { sqlstate: string }; message: string }) => {
        assert.equal(err.code, 'protocol.server_error');
        assert.equal(err.data.sqlstate, '42P01');
        assert.match(err.message, /no_such_table/);
        return true;
      });
      assert.deepEqual((await sql.query('SELECT 2'))[0].rows, [['2']], 'usable after an error');
      await sql.close();
      await assert.rejects(
        ReplicationConnection.connect({ host: '127.0.0.1', port: server.port, user: 'postgres', password: 'wrong', replication: 'true' }),
        { code: 'protocol.auth_failed', message: new RegExp(`127\\.0\\.0\\.1:${server.port} refused user "postgres": password authentication failed`) },
      );

      // Replication connection: commands, errors, a short WAL stream.
      const repl = await connect(server.port, 'true');
      const ident = await repl.identifySystem();
      assert.match(ident.systemId, /^\d+$/);
      assert.equal(ident.timeline, 1);
      assert.equal(ident.dbname, null);
      await assert.rejects(repl.timelineHistory(1), { code: 'protocol.server_error' });
      const segStart = ident.xlogpos - (ident.xlogpos % 16777216n);
      const stream = await repl.startReplication({ lsn: segStart, timeline: 1 });
      let walBytes = 0;
      for await (const m of stream) {
        if (m.kind === 'xlogdata') {
          assert.ok(m.start >= segStart);
          walBytes += m.data.length;
          if (m.start + BigInt(m.data.length) >= ident.xlogpos) break;
        }
      }
      await stream.sendStandbyStatus(segStart, segStart, 0n);
      assert.equal(await stream.stop(), null);
      assert.ok(walBytes > 0, 'received WAL');
      assert.equal((await repl.identifySystem()).systemId, ident.systemId, 'usable after stopping the stream');

      // Clone, with ownership for the postgres user.
      const progress: number[] = [];
      const tsTargets: [number, string][] = [];
      const result = await cloneInto(repl, {
        targetDir: cloneDir,
        tablespaceTarget: (oid, location) => {
          tsTargets.push([oid, location]);
          return path.join(tmp, 'clone_ts', String(oid));
        },
        uid: pgUid,
        gid: pgGid,
        label: "clone 'test'",
        onProgress: (done) => progress.push(done),
      });
      await repl.close();
      t.diagnostic(`cloned ${result.bytes} bytes, ${formatLsn(result.startLsn)}..${formatLsn(result.endLsn)}, tablespaces ${JSON.stringify(result.tablespaces)}`);
      assert.deepEqual(tsTargets, [[tsOid, tsDir]]);
      assert.equal(result.startTimeline, 1);
      assert.ok(result.endLsn > result.startLsn);
      assert.ok(result.bytes > 1_000_000 && progress.at(-1) === result.bytes);
      assert.equal(result.tablespaces.length, 2);
      assert.equal(result.tablespaces.find((ts) => ts.oid === null)?.location, null);
      assert.equal(fs.readlinkSync(path.join(cloneDir, 'pg_tblspc', String(tsOid))), path.join(tmp, 'clone_ts', String(tsOid)));
      const manifest = JSON.parse(fs.readFileSync(path.join(cloneDir, 'backup_manifest'), 'utf8'));
      assert.ok(manifest.Files.length > 100);
      assert.equal(fs.statSync(path.join(cloneDir, 'PG_VERSION')).mode & 0o777, 0o600);
      assert.equal(fs.statSync(path.join(cloneDir, 'base')).mode & 0o777, 0o700);
      assert.equal(fs.statSync(path.join(cloneDir, 'base')).uid, pgUid);
      assert.equal(fs.lstatSync(path.join(cloneDir, 'pg_tblspc', String(tsOid))).uid, pgUid);
      assert.match(fs.readFileSync(path.join(cloneDir, 'backup_label'), 'utf8'), /LABEL: clone 'test'/);
      assert.ok(fs.readdirSync(path.join(cloneDir, 'pg_wal')).some((f) => /^[0-9A-F]{24}$/.test(f)), 'WAL included');

      // Incremental backup against the clone's manifest (PostgreSQL 17+).
      if (version >= 17) {
        const inc = await connect(server.port, 'true');
        await uploadManifest(inc, fs.readFileSync(path.join(cloneDir, 'backup_manifest')));
        const names: string[] = [];
        let incFiles = 0;
        await baseBackup(inc, { label: 'inc', incremental: true }, {
          archive: async (name) => {
            names.push(name);
            return { write: async (c) => void (incFiles += (c.toString('latin1').match(/INCREMENTAL\.\d+/g) ?? []).length), end: async () => {} };
          },
          manifest: async () => ({ write: async () => {}, end: async () => {} }),
        });
        await inc.close();
        assert.deepEqual(names, [`${tsOid}.tar`, 'base.tar'], 'tablespaces first, the main archive last');
        assert.ok(incFiles > 0, 'the incremental backup has INCREMENTAL.* files');
      }

      // The clone starts on its own (backup_label + included WAL) and has the data.
      startServer(server.bin, cloneDir, server.port + 1);
      const check = await connect(server.port + 1, false);
      assert.deepEqual((await check.query('SELECT count(*), sum(id) FROM t'))[0].rows, [['5000', '12502500']]);
      assert.deepEqual((await check.query('SELECT count(*) FROM t_ts'))[0].rows, [['777']]);
      assert.deepEqual((await check.query('SELECT pg_is_in_recovery()'))[0].rows, [['f']]);
      await check.close();

      // Archive recovery (recovery.signal) moves the clone to timeline 2; then
      // streaming timeline 1 from it ends at the switch point with a result row.
      stopServer(server.bin, cloneDir, 'fast');
      fs.writeFileSync(path.join(cloneDir, 'recovery.signal'), '');
      startServer(server.bin, cloneDir, server.port + 1, ["restore_command = 'false'"]);
      const promoted = await connect(server.port + 1, 'true');
      for (let i = 0; (await promoted.identifySystem()).timeline !== 2; i++) {
        assert.ok(i < 100, 'the clone reaches timeline 2');
        await new Promise((r) => setTimeout(r, 100));
      }
      const history = await promoted.timelineHistory(2);
      assert.equal(history.filename, '00000002.history');
      const switchText = /^1\t([0-9A-F]+\/[0-9A-F]+)\t/.exec(history.content.toString())?.[1];
      assert.ok(switchText, `history names the switch point: ${JSON.stringify(history.content.toString())}`);
      const switchLsn = parseLsn(switchText);
      const tl1 = await promoted.startReplication({ lsn: switchLsn - (switchLsn % 16777216n), timeline: 1 });
      let tl1End = 0n;
      let tl1Messages = 0;
      for await (const m of tl1) {
        tl1Messages++;
        if (m.kind === 'xlogdata') tl1End = m.start + BigInt(m.data.length);
      }
      t.diagnostic(`timeline 1 ends at ${switchText}; streamed ${tl1Messages} messages up to ${formatLsn(tl1End)}`);
      assert.ok(tl1.done);
      assert.ok(tl1End <= switchLsn);
      assert.deepEqual(tl1.timelineEnd, { nextTimeline: 2, startLsn: switchLsn });
      assert.equal((await promoted.identifySystem()).timeline, 2, 'usable after the timeline ended');
      await promoted.close();
    } catch (err) {
      dumpLogs();
      throw err;
    } finally {
      stopServer(server.bin, cloneDir);
      stopServer(server.bin, dataDir);
      if (!process.env.PGM_KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
}

test('protocol: connection errors name host:port and give a hint', async () => {
  await assert.rejects(
    ReplicationConnection.connect({ host: '127.0.0.1', port: 23499, user: 'u', password: 'p', replication: 'true' }),
    (err: { code: string; message: string; hint: string }) => {
      assert.equal(err.code, 'protocol.error');
      assert.match(err.message, /127\.0\.0\.1:23499: connection refused/);
      assert.ok(err.hint);
      return true;
    },
  );
});
