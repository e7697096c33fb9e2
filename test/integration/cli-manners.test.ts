import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { resolveBinaries } from '../../src/postgres/binaries.js';
import { initdb } from '../../src/postgres/control.js';
import { resolveOsUser } from '../../src/postgres/osuser.js';
import { runClientTool } from '../../src/postgres/tools.js';
import { TestCluster, cli, tempDir } from '../helpers/cluster.js';
import { CLI, PG15_BIN } from '../helpers/paths.js';

/**
 * The command line's manners on a real cluster (PostgreSQL 15, which has
 * every client tool): quiet on a closed pipe, the first real cause of a child
 * tool's failure in the sentence, exit statuses as the README lists them.
 */
const PORT = 22020;
let c: TestCluster;

before(async () => {
  c = await TestCluster.init('manners', { portBase: PORT, replicas: 1, binDir: PG15_BIN });
  const r = await c.run('up');
  assert.equal(r.code, 0, r.stderr);
  await c.sql(PORT, 'CREATE DATABASE shop');
});
after(async () => {
  await c?.destroy();
});

const shop = async (text: string) => {
  const pg = await import('pg');
  const cl = new pg.default.Client({ host: '127.0.0.1', port: PORT, user: 'postgres', password: c.password(), database: 'shop' });
  await cl.connect();
  try {
    return (await cl.query(text)).rows;
  } finally {
    await cl.end();
  }
};

/** Runs the CLI with its stdout a pipe whose reading end is already closed. */
function withClosedStdout(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

function piped(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const quoted = args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', `"${process.execPath}" --import tsx "${CLI}" ${quoted} | head -1`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('every reporting command piped into head -1 prints its first line and nothing else; a closed stdout ends it quietly with status 141', async () => {
  // enough events and a backup that the outputs outgrow a pipe's buffer
  const events = path.join(c.dir, 'state', 'events.jsonl');
  fs.appendFileSync(events, Array.from({ length: 3000 }, (_, i) => JSON.stringify({ at: new Date().toISOString(), sentence: `test event ${i}` })).join('\n') + '\n');
  const b = await c.run('backup', 'full');
  assert.equal(b.code, 0, b.stderr);
  const f = ['-c', c.file];
  const commands = [
    ['status', ...f],
    ['status', '--json', ...f],
    ['events', '-n', '5000', ...f],
    ['events', '-n', '5000', '--json', ...f],
    ['backup', 'list', ...f],
    ['backup', 'list', '--json', ...f],
    ['backup', 'verify', ...f],
    ['schema'],
    ['--help'],
  ];
  await Promise.all(commands.map(async (args) => {
    const r = await piped(args);
    assert.equal(r.stderr, '', `${args.join(' ')} | head -1 wrote to stderr: ${r.stderr}`);
    assert.equal(r.stdout.split('\n').filter((l) => l !== '').length, 1, `${args.join(' ')} | head -1: ${r.stdout}`);
    const closed = await withClosedStdout(args);
    assert.equal(closed.stderr, '', `${args.join(' ')} with a closed stdout wrote: ${closed.stderr}`);
    assert.equal(closed.code, 141, `${args.join(' ')} with a closed stdout exited ${closed.code}`);
  }));
});

test('pg_restore and psql: a logical restore into a database that already holds the table names the relation', async () => {
  await shop('CREATE TABLE o (id int PRIMARY KEY, note text)');
  await shop("INSERT INTO o SELECT g, 'n' || g FROM generate_series(1, 100) g");
  for (const [format, tool, want] of [
    ['custom', 'pg_restore', /pg_restore failed: error: could not execute query: ERROR: relation "o" already exists \(full output in \S+pg_restore-\S+\.log\)\. HINT:/],
    ['plain', 'psql', /psql failed: ERROR: relation "o" already exists \(full output in \S+psql-\S+\.log\)\. HINT:/],
  ] as const) {
    const b = await c.run('backup', 'logical', '--db', 'shop', '--format', format, '--json');
    assert.equal(b.code, 0, b.stderr);
    const id = (JSON.parse(b.stdout) as { id: string }).id;
    const r = await c.run('restore', '--logical', id, '--db', 'shop');
    assert.equal(r.code, 1, `${tool}: ${r.stderr}`);
    assert.match(r.stderr, want);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  }
});

test('pg_dump: a dump of a database that does not exist says so', async () => {
  const r = await c.run('backup', 'logical', '--db', 'nosuch');
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /pg_dump failed: error: .*FATAL: database "nosuch" does not exist \(full output in /);
});

test('pg_dumpall, pg_rewind and initdb: their first error line reaches the sentence', async () => {
  const logs = tempDir('manners-logs');
  try {
    await assert.rejects(
      runClientTool(path.join(PG15_BIN, 'pg_dumpall'), ['-h', '127.0.0.1', '-p', String(PORT + 9), '-U', 'postgres', '--no-password'], { keepDir: logs, code: 'backup.failed', hint: 'h' }),
      /^PgmError: pg_dumpall failed: error: connection to server at "127\.0\.0\.1", port 22029 failed: Connection refused/,
    );
    const user = await resolveOsUser('postgres');
    await assert.rejects(
      runClientTool(path.join(PG15_BIN, 'pg_rewind'), ['--target-pgdata', logs, '--source-server', `host=127.0.0.1 port=${PORT} user=postgres`], { user, env: { PGPASSFILE: path.join(c.dir, 'secrets', 'superuser.pgpass') }, keepDir: logs, code: 'restore.failed', hint: 'h' }),
      /pg_rewind failed: (error|fatal): could not open file ".*global\/pg_control" for reading: No such file or directory/,
    );
    const bins = await resolveBinaries(PG15_BIN, user);
    const full = tempDir('manners-full');
    fs.writeFileSync(path.join(full, 'something'), 'x');
    if (user.uid !== undefined) fs.chownSync(full, user.uid, user.gid!);
    const pw = path.join(full, '..', `${path.basename(full)}.pw`);
    fs.writeFileSync(pw, 'secret\n', { mode: 0o644 });
    try {
      await assert.rejects(initdb(bins, user, full, { superuser: 'postgres', pwfile: pw, logsDir: logs }), /initdb of \S+ failed: error: directory "\S+" exists but is not empty \(full output in /);
    } finally {
      fs.rmSync(full, { recursive: true, force: true });
      fs.rmSync(pw, { force: true });
    }
  } finally {
    fs.rmSync(logs, { recursive: true, force: true });
  }
});

test('pg_ctl: a node that cannot start names the setting its server refused; fixed, up brings it back', async () => {
  const st = await c.status();
  const replica = c.node(st, 'node2');
  const auto = path.join(replica.data_dir, 'postgresql.auto.conf');
  const original = fs.readFileSync(auto, 'utf8');
  process.kill(replica.pid!, 'SIGTERM');
  await c.until('node2 stopped', async () => c.node(await c.status(), 'node2').pid === null);
  fs.appendFileSync(auto, "shared_buffers = 'lots'\n");
  const r = await c.run('up');
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /pg_ctl start of \S+ failed: LOG: invalid value for parameter "shared_buffers": "lots" \/ FATAL: configuration file "\S+postgresql\.auto\.conf" contains errors \(full output in \S+node2\.log\)\. HINT:/);
  fs.writeFileSync(auto, original);
  const again = await c.run('up');
  assert.equal(again.code, 0, again.stderr);
});

test('exit statuses: 2 for bad input (arguments, configuration, a target that is not acceptable), never a stack trace', async () => {
  const full = tempDir('manners-target');
  fs.writeFileSync(path.join(full, 'keep'), 'x');
  try {
    const cases: [string[], RegExp][] = [
      [['restore', '--target-dir', full, '--port', String(PORT + 8), '-c', c.file], /the restore target \S+ is not empty\. HINT:/],
      [['rejoin', 'nosuch', '-c', c.file], /there is no node 'nosuch'/],
      [['status', '-c', path.join(full, 'nosuch.yaml')], /cannot read the configuration file/],
      [['status', '--bogus', '-c', c.file], /unknown option '--bogus'/],
    ];
    for (const [args, want] of cases) {
      const r = await cli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, want);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    }
    assert.deepEqual(fs.readdirSync(full), ['keep']);
  } finally {
    fs.rmSync(full, { recursive: true, force: true });
  }
});
