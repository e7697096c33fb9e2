import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { lockManager } from '../../src/cluster/context.js';
import { loadConfig } from '../../src/config/load.js';
import { TestCluster, cliProcess, processAlive, type CliResult } from '../helpers/cluster.js';
import { list } from '../helpers/backup.js';
import { PG15_BIN } from '../helpers/paths.js';

/**
 * Two commands at once (PostgreSQL 18): each waits its turn (--wait) or says
 * who is busy, nothing collides, and a holder killed with SIGKILL releases
 * its lock at once and leaves nothing the next command trips on.
 */
const PORT = 22040;
let c: TestCluster;

before(async () => {
  c = await TestCluster.init('conc', { portBase: PORT, replicas: 1 });
  // a scheduler that takes a full backup every 20 seconds, so manual backups meet scheduled ones
  fs.writeFileSync(c.file, fs.readFileSync(c.file, 'utf8').replace('full: "0 1 * * 0"', 'full: "*/20 * * * * *"'));
});
after(async () => {
  await c?.destroy();
});

const run = (...args: string[]) => cliProcess([...args, '-c', c.file]);
const busy = /is busy( \(waited [^)]+\))?: `[^`]+` \(pid \d+ on [^)]+\) has held it since \d{4}-\d\d-\d\dT[\d:.]+Z\. HINT: /;

/** Polls until the cluster's `kind` lock names `command` as its holder with a live pid. */
async function heldBy(kind: 'cluster' | 'repository', command: RegExp): Promise<number> {
  const locks = lockManager(loadConfig(c.file));
  let pid = 0;
  await c.until(`${kind} lock held by ${command}`, async () => {
    const h = await locks.holder(kind);
    if (!h || !command.test(h.command) || !processAlive(h.pid)) return false;
    pid = h.pid;
    return true;
  }, 60_000);
  return pid;
}

test('two up at once on a new cluster: one builds it, one waits and finds nothing to do, one without --wait says who is busy', async () => {
  const first = run('up');
  // a slow up: frozen while it holds the lock, so the others certainly meet it
  const holder = await heldBy('cluster', /^pgmaestro up$/);
  process.kill(holder, 'SIGSTOP');
  const waiting = run('up', '--wait');
  const refused = await run('up').done;
  process.kill(holder, 'SIGCONT');
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /the cluster \S+ is busy: `pgmaestro up` \(pid \d+ on [^)]+\) has held it since .*HINT: .*--wait/);
  assert.equal(refused.stderr.trim().split('\n').length, 1);
  const a = await first.done;
  assert.equal(a.code, 0, a.stderr);
  assert.match(a.stdout, /node1: initialised/);
  const b = await waiting.done;
  assert.equal(b.code, 0, b.stderr);
  assert.doesNotMatch(b.stdout, /initialised|cloned|started as/);
  const st = await c.status();
  assert.deepEqual(st.nodes.map((n) => n.role), ['primary', 'replica']);
  // data for the backups below
  execFileSync(path.join(PG15_BIN, 'pgbench'), ['-i', '-s', '3', '-q', '-h', '127.0.0.1', '-p', String(PORT), '-U', 'postgres', 'postgres'], { env: { ...process.env, PGPASSWORD: c.password() }, stdio: 'ignore' });
});

test('two backup full at once, and manual backups during scheduled ones: distinct complete backups that verify, or a clear refusal', async () => {
  const results: CliResult[] = await Promise.all([run('backup', 'full', '--json', '--wait'), run('backup', 'full', '--json', '--wait'), run('backup', 'full', '--json')].map((p) => p.done));
  const ids: string[] = [];
  for (const r of results.slice(0, 2)) {
    assert.equal(r.code, 0, r.stderr);
    ids.push((JSON.parse(r.stdout) as { id: string }).id);
  }
  const third = results[2];
  if (third.code === 0) ids.push((JSON.parse(third.stdout) as { id: string }).id);
  else assert.match(third.stderr, busy);
  assert.equal(new Set(ids).size, ids.length, `distinct ids: ${ids.join(', ')}`);
  // let the scheduler take at least one more, then everything verifies
  await c.until('a scheduled backup', async () => (await list(c)).length > ids.length, 60_000);
  const all = await list(c);
  assert.equal(new Set(all.map((b) => b.id)).size, all.length);
  for (const id of ids) assert.ok(all.some((b) => b.id === id), `${id} is listed`);
  const v = await run('backup', 'verify').done;
  assert.equal(v.code, 0, v.stdout + v.stderr);
  const events = fs.readFileSync(path.join(c.dir, 'state', 'events.jsonl'), 'utf8');
  assert.doesNotMatch(events, /backup failed/);
  // the scheduler back to its weekly pace for the tests below: a daemon restart reads the configuration again
  fs.writeFileSync(c.file, fs.readFileSync(c.file, 'utf8').replace('full: "*/20 * * * * *"', 'full: "0 1 * * 0"'));
  const daemon = (await c.status()).daemon.pid!;
  process.kill(daemon, 'SIGTERM');
  await c.until('daemon stopped', async () => !processAlive(daemon));
  const up = await run('up', '--wait').done;
  assert.equal(up.code, 0, up.stderr);
});

test('switchover during up, and expire during a backup: each refuses naming the holder, or waits; nothing half-done', async () => {
  // up has something to do: re-clone the replica
  const st = await c.status();
  const replica = c.node(st, 'node2');
  process.kill(replica.pid!, 'SIGKILL');
  await c.until('node2 down', async () => c.node(await c.status(), 'node2').pid === null);
  fs.rmSync(replica.data_dir, { recursive: true, force: true });
  const upping = run('up');
  const upPid = await heldBy('cluster', /^pgmaestro up$/);
  process.kill(upPid, 'SIGSTOP');
  const sw = await run('switchover', '--to', 'node2').done;
  process.kill(upPid, 'SIGCONT');
  assert.equal(sw.code, 1, sw.stderr);
  assert.match(sw.stderr, /the cluster \S+ is busy: `pgmaestro up`/);
  const u = await upping.done;
  assert.equal(u.code, 0, u.stderr);
  assert.match(u.stdout, /node2: cloned/);
  assert.equal((await c.status()).primary, 'node1', 'the refused switchover changed nothing');

  const backingUp = run('backup', 'full', '--wait');
  const backupPid = await heldBy('repository', /^pgmaestro backup full$/);
  process.kill(backupPid, 'SIGSTOP');
  const ex = await run('backup', 'expire').done;
  const exWait = run('backup', 'expire', '--wait=5m');
  await new Promise((r) => setTimeout(r, 1000));
  process.kill(backupPid, 'SIGCONT');
  assert.equal(ex.code, 1, ex.stderr);
  assert.match(ex.stderr, /the backup repository of \S+ is busy: `pgmaestro backup full`/);
  const b = await backingUp.done;
  assert.equal(b.code, 0, b.stderr);
  const e = await exWait.done;
  assert.equal(e.code, 0, e.stderr);
});

test('a holder killed with SIGKILL: the next command proceeds at once and cleans up what it left', async () => {
  // a backup killed while it writes its partial folder
  const victim = run('backup', 'full', '--wait');
  const pid = await heldBy('repository', /^pgmaestro backup full$/);
  const backups = path.join(c.dir, 'backups', 'backups');
  // a folder without its marker, whose lock names the writer
  const unmarked = () => fs.readdirSync(backups).filter((n) => !fs.existsSync(path.join(backups, n, 'backup.json')));
  const writtenBy = (n: string) => {
    try {
      return (JSON.parse(fs.readFileSync(path.join(backups, n, '.lock'), 'utf8')) as { pid: number }).pid;
    } catch {
      return null;
    }
  };
  let partial = '';
  await c.until('a partial backup folder', async () => (partial = unmarked().find((n) => writtenBy(n) === pid) ?? '') !== '', 60_000);
  process.kill(pid, 'SIGKILL');
  await victim.done;
  const started = Date.now();
  const next = await run('backup', 'full', '--json', '--wait=1m').done;
  assert.equal(next.code, 0, next.stderr);
  assert.ok(Date.now() - started < 60_000);
  assert.equal(fs.existsSync(path.join(backups, partial)), false, 'the dead holder’s partial folder is gone');

  // an up killed while it clones a replica
  const st = await c.status();
  const replica = c.node(st, 'node2');
  process.kill(replica.pid!, 'SIGKILL');
  await c.until('node2 down', async () => c.node(await c.status(), 'node2').pid === null);
  fs.rmSync(replica.data_dir, { recursive: true, force: true });
  const up1 = run('up');
  const upPid = await heldBy('cluster', /^pgmaestro up$/);
  await c.until('a partial clone', async () => fs.existsSync(`${replica.data_dir}.pgmaestro-partial`), 60_000);
  process.kill(upPid, 'SIGKILL');
  await up1.done;
  const up2 = await run('up').done;
  assert.equal(up2.code, 0, up2.stderr);
  assert.match(up2.stdout, /node2: cloned/);
  assert.equal(fs.existsSync(`${replica.data_dir}.pgmaestro-partial`), false);
  assert.deepEqual((await c.status()).nodes.map((n) => n.role), ['primary', 'replica']);
});
