import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { TestCluster, type StatusJson } from './cluster.js';

/**
 * The foundation's behaviour against one PostgreSQL installation: provision a
 * primary and two replicas, replicate, stay idempotent, survive crashes, keep
 * secrets out of files, process lists and logs.
 */
export function lifecycleSuite(label: string, opts: { portBase: number; binDir?: string; major: number }): void {
  let c: TestCluster;
  let upOutput = '';

  before(async () => {
    c = await TestCluster.init(label, { portBase: opts.portBase, binDir: opts.binDir });
  });
  after(async () => {
    await c?.destroy();
  });

  const replicaPorts = () => [opts.portBase + 1, opts.portBase + 2];

  test(`${label}: up provisions a primary and two streaming replicas`, async () => {
    const r = await c.run('up');
    upOutput = r.stdout + r.stderr;
    assert.equal(r.code, 0, upOutput);
    assert.match(r.stdout, /node1: initialised a new PostgreSQL/);
    assert.match(r.stdout, /node2: cloned from node1/);
    assert.match(r.stdout, /connect: PGPASSFILE=/);
    const st = await c.status();
    assert.deepEqual(st.nodes.map((n) => n.role), ['primary', 'replica', 'replica']);
    assert.equal(st.daemon.running, true);
    const version = await c.sql<{ server_version_num: string }>(opts.portBase, 'SHOW server_version_num');
    assert.equal(Math.floor(Number(version[0].server_version_num) / 10000), opts.major);
  });

  test(`${label}: a row written on the primary is readable on both replicas and lag reaches 0`, async () => {
    await c.sql(opts.portBase, 'CREATE TABLE t (id int primary key, v text)');
    await c.sql(opts.portBase, "INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 1000) g");
    for (const port of replicaPorts()) {
      await c.until(`rows on ${port}`, async () => (await c.sql<{ n: string }>(port, 'SELECT count(*) AS n FROM t'))[0].n === '1000');
    }
    await c.until('lag 0', async () => {
      const st = await c.status();
      return st.nodes.filter((n) => n.role === 'replica').every((n) => n.lag_bytes === 0 && n.slot?.active === true);
    });
    const st = await c.status();
    for (const n of st.nodes) {
      assert.equal(typeof n.timeline, 'number');
      assert.match(n.lsn!, /^[0-9A-F]+\/[0-9A-F]+$/);
      assert.ok(n.pid && n.pid > 0);
      assert.match(n.dsn, /^postgresql:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/);
    }
  });

  test(`${label}: PGPASSFILE=$passfile psql "$dsn" connects`, async () => {
    const st = await c.status();
    const out = execFileSync(path.join('/usr/lib/postgresql/15/bin', 'psql'), ['-Atc', 'SELECT count(*) FROM t', st.nodes[1].dsn], {
      env: { ...process.env, PGPASSFILE: st.passfile },
    }).toString();
    assert.equal(out.trim(), '1000');
    assert.equal(fs.statSync(st.passfile).mode & 0o777, 0o600);
  });

  test(`${label}: up twice in a row changes nothing the second time`, async () => {
    const before = await c.status();
    const confs = before.nodes.map((n) => fs.statSync(path.join(n.data_dir, 'postgresql.conf')).mtimeMs);
    const r = await c.run('up');
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /started as|cloned|initialised|reloaded|daemon: started/);
    const after = await c.status();
    assert.deepEqual(after.nodes.map((n) => n.pid), before.nodes.map((n) => n.pid));
    assert.deepEqual(after.nodes.map((n) => fs.statSync(path.join(n.data_dir, 'postgresql.conf')).mtimeMs), confs);
    assert.equal(after.daemon.pid, before.daemon.pid);
  });

  test(`${label}: a replica killed with SIGKILL shows as down; up restarts it and it catches up through its slot`, async () => {
    const st = await c.status();
    const victim = c.node(st, 'node3');
    process.kill(victim.pid!, 'SIGKILL');
    await c.until('node3 down', async () => c.node(await c.status(), 'node3').role === 'down');
    await c.sql(opts.portBase, "INSERT INTO t SELECT g, 'late' FROM generate_series(1001, 2000) g");
    await c.sql(opts.portBase, 'CHECKPOINT');
    await c.sql(opts.portBase, 'SELECT pg_switch_wal()');
    const down = c.node(await c.status(), 'node3');
    assert.equal(down.reachable, false);
    const r = await c.run('up');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /node3: started as replica/);
    assert.doesNotMatch(r.stdout, /node[12]: started/);
    await c.until('node3 caught up', async () => (await c.sql<{ n: string }>(opts.portBase + 2, 'SELECT count(*) AS n FROM t'))[0].n === '2000');
  });

  test(`${label}: the daemon killed with SIGKILL leaves every database running; its supervisor restarts it, and up adopts everything`, async () => {
    const st = await c.status();
    process.kill(st.daemon.pid!, 'SIGKILL');
    await c.until('a new daemon', async () => {
      const now = await c.status();
      return now.daemon.running && now.daemon.pid !== st.daemon.pid;
    }, 15_000);
    const during = await c.status();
    assert.deepEqual(during.nodes.map((n) => n.role), ['primary', 'replica', 'replica']);
    const r = await c.run('up');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /daemon: running/);
    assert.doesNotMatch(r.stdout, /started as/);
    const afterUp = await c.status();
    assert.deepEqual(afterUp.nodes.map((n) => n.pid), st.nodes.map((n) => n.pid));
  });

  test(`${label}: down then up brings back the same cluster with the same data`, async () => {
    const sysid = (await c.sql<{ s: string }>(opts.portBase, 'SELECT system_identifier::text AS s FROM pg_control_system()'))[0].s;
    const d = await c.run('down');
    assert.equal(d.code, 0, d.stderr);
    const st: StatusJson = await c.status();
    assert.deepEqual(st.nodes.map((n) => n.role), ['down', 'down', 'down']);
    assert.ok(st.nodes.every((n) => n.pid === null));
    assert.equal(st.daemon.running, false);
    const r = await c.run('up');
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /cloned|initialised/);
    for (const port of [opts.portBase, ...replicaPorts()]) {
      await c.until(`data on ${port}`, async () => (await c.sql<{ n: string }>(port, 'SELECT count(*) AS n FROM t'))[0].n === '2000');
      assert.equal((await c.sql<{ s: string }>(port, 'SELECT system_identifier::text AS s FROM pg_control_system()'))[0].s, sysid);
    }
  });

  test(`${label}: no secret in configuration files, the process list or the logs; secret files are 0600`, async () => {
    const secretsDir = path.join(c.dir, 'secrets');
    const secrets = ['superuser.password', 'replication.password'].map((f) => fs.readFileSync(path.join(secretsDir, f), 'utf8').trim());
    for (const f of fs.readdirSync(secretsDir)) assert.equal(fs.statSync(path.join(secretsDir, f)).mode & 0o777, 0o600, f);
    const st = await c.status();
    const haystacks: [string, string][] = [['ps', execFileSync('ps', ['-eo', 'args']).toString()], ['up output', upOutput]];
    for (const n of st.nodes) {
      for (const f of ['postgresql.conf', 'postgresql.auto.conf', 'pgmaestro.node.conf', 'pgmaestro.standby.conf', 'pg_hba.conf']) {
        const p = path.join(n.data_dir, f);
        if (fs.existsSync(p)) haystacks.push([p, fs.readFileSync(p, 'utf8')]);
      }
      for (const f of fs.readdirSync(path.join(n.data_dir, 'log'))) haystacks.push([f, fs.readFileSync(path.join(n.data_dir, 'log', f), 'utf8')]);
    }
    for (const f of fs.readdirSync(path.join(c.dir, 'logs'))) haystacks.push([f, fs.readFileSync(path.join(c.dir, 'logs', f), 'utf8')]);
    for (const [where, text] of haystacks) {
      for (const s of secrets) assert.ok(!text.includes(s), `a secret appears in ${where}`);
    }
    const standby = fs.readFileSync(path.join(st.nodes[1].data_dir, 'pgmaestro.standby.conf'), 'utf8');
    assert.match(standby, /passfile=/);
    assert.doesNotMatch(standby, /password/);
  });
}
