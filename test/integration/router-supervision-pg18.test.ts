import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import pg from 'pg';
import { TestCluster } from '../helpers/cluster.js';
import { setHa } from '../helpers/ha.js';
import path from 'node:path';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !fs.readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
}

/** True when `pidFile` names a live process other than `old`. */
function livePid(pidFile: string, old: number): boolean {
  try {
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    if (pid === old) return false;
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Issue 16: endpoints outlive the daemon, the daemon comes back by itself,
 * and a failover moves every endpoint. Ports 10100-10102, endpoints 11100-11102.
 */
const PORT = 10100;
const RW = PORT + 1000;
const AUTO = PORT + 1002;
let c: TestCluster;
let password = '';

before(async () => {
  c = await TestCluster.init('tr-sup', { portBase: PORT });
  setHa(c, ['restart_first: false', 'failover_timeout: 3s']);
  fs.writeFileSync(c.file, fs.readFileSync(c.file, 'utf8').replace('    shared_buffers: 128MB\n', '    shared_buffers: 128MB\n    fsync: off\n'));
  const r = await c.run('up');
  assert.equal(r.code, 0, r.stderr);
  password = c.password();
  await c.sql(PORT, 'CREATE TABLE acked (id int primary key)');
});
after(async () => {
  await c?.destroy();
});

/** New connections in a loop, each running one statement: counts successes and failures, and remembers the latest success. */
class Dialer {
  ok = 0;
  failed = 0;
  lastOkAt = 0;
  /** When each failed attempt began. */
  readonly failedAt: number[] = [];
  /** The longest time between two successes. */
  longestGap = 0;
  private stopped = false;
  private done: Promise<void> | null = null;
  constructor(
    private readonly port: number,
    private readonly sql: (i: number) => string,
  ) {}
  start(): this {
    this.done = (async () => {
      for (let i = 1; !this.stopped; i++) {
        const began = Date.now();
        const cl = new pg.Client({ host: '127.0.0.1', port: this.port, user: 'postgres', password, database: 'postgres', connectionTimeoutMillis: 15_000 });
        cl.on('error', () => undefined);
        try {
          await cl.connect();
          await cl.query(this.sql(i));
          this.ok++;
          if (this.lastOkAt > 0) this.longestGap = Math.max(this.longestGap, Date.now() - this.lastOkAt);
          this.lastOkAt = Date.now();
        } catch {
          this.failed++;
          this.failedAt.push(began);
          await new Promise((r) => setTimeout(r, 50));
        } finally {
          await cl.end().catch(() => undefined);
        }
      }
    })();
    return this;
  }
  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

test('kill -9 of the daemon: established and new connections keep working; the supervisor brings it back within 5 s', async () => {
  const st = await c.status();
  assert.equal(st.daemon.supervisor.running, true);
  const held = new pg.Client({ host: '127.0.0.1', port: RW, user: 'postgres', password, database: 'postgres' });
  held.on('error', () => undefined);
  await held.connect();
  const dialer = new Dialer(RW, () => 'SELECT 1').start();
  await c.until('dialing', async () => dialer.ok > 5);
  const killedAt = Date.now();
  process.kill(st.daemon.pid!, 'SIGKILL');
  // Measured on the pid file and /proc directly: a status command takes a second or more on a loaded machine.
  await c.until('a new daemon', async () => livePid(path.join(c.dir, 'state', 'daemon.pid'), st.daemon.pid!), 10_000);
  const back = Date.now() - killedAt;
  await new Promise((r) => setTimeout(r, 500));
  await dialer.stop();
  assert.ok(back < 5000, `the daemon was back after ${back} ms`);
  assert.equal(dialer.failed, 0, 'no new connection was refused');
  assert.equal((await held.query('SELECT 2 AS x')).rows[0].x, 2, 'the established connection kept working');
  await held.end();
  const after = await c.status();
  assert.equal(after.endpoints.details.rw.pid, st.endpoints.details.rw.pid, 'the new daemon adopted the endpoint');
  assert.equal(after.daemon.restarts, 1);
  assert.match((await c.run('events')).stdout, /supervisor: the daemon \(pid \d+\) was gone; restarted it as pid \d+ (\(the spare took over\) )?\(restart 1\)/);
  console.log(`# daemon back ${back} ms after SIGKILL`);
});

test('kill -9 of an endpoint process: back within 2 s; only its own connections dropped', async () => {
  const st = await c.status();
  const viaAuto = new pg.Client({ host: '127.0.0.1', port: AUTO, user: 'postgres', password, database: 'postgres' });
  viaAuto.on('error', () => undefined);
  await viaAuto.connect();
  const viaRw = new pg.Client({ host: '127.0.0.1', port: RW, user: 'postgres', password, database: 'postgres' });
  viaRw.on('error', () => undefined);
  await viaRw.connect();
  // new connections while it restarts: none refused (the supervisor holds the listening socket), served once it is back
  const dialer = new Dialer(RW, () => 'SELECT 1').start();
  await c.until('dialing', async () => dialer.ok > 3);
  const killedAt = Date.now();
  process.kill(st.endpoints.details.rw.pid!, 'SIGKILL');
  let back = 0;
  await c.until('rw accepts again', async () => {
    const cl = new pg.Client({ host: '127.0.0.1', port: RW, user: 'postgres', password, database: 'postgres', connectionTimeoutMillis: 10_000 });
    cl.on('error', () => undefined);
    try {
      await cl.connect();
      await cl.query('SELECT 1');
      back = Date.now() - killedAt;
      return true;
    } finally {
      await cl.end().catch(() => undefined);
    }
  }, 10_000);
  await dialer.stop();
  console.log(`# endpoint rw back ${back} ms after SIGKILL; dialer ok ${dialer.ok}, failed ${dialer.failed}`);
  // the attempt in flight at the kill was the endpoint's own connection; every one begun after it got through
  assert.deepEqual(dialer.failedAt.filter((t) => t > killedAt), [], 'no new connection was refused or lost while the endpoint restarted');
  assert.ok(back < 2000, `rw accepted again after ${back} ms`);
  await assert.rejects(viaRw.query('SELECT 1'), 'the killed endpoint\'s own connection is gone');
  assert.equal((await viaAuto.query('SELECT 3 AS x')).rows[0].x, 3, 'another endpoint\'s connection is untouched');
  await viaAuto.end();
  assert.equal((await c.status()).endpoints.details.rw.restarts, 1);
});

test('kill -9 of the supervisor: everything goes on, the daemon restarts a dead endpoint meanwhile; the next up restores the supervisor without touching the rest', async () => {
  const st = await c.status();
  const spare = st.daemon.supervisor.spare;
  assert.ok(spare, 'the supervisor keeps a spare');
  process.kill(st.daemon.supervisor.pid!, 'SIGKILL');
  await c.until('supervisor and its spare gone', async () => !alive(st.daemon.supervisor.pid!) && !alive(spare), 10_000);
  const during = await c.status();
  assert.equal(during.daemon.pid, st.daemon.pid);
  assert.deepEqual(during.nodes.map((n) => n.pid), st.nodes.map((n) => n.pid));
  // with no supervisor, the daemon restarts an endpoint that dies
  process.kill(st.endpoints.details.ro.pid!, 'SIGKILL');
  await c.until('ro restarted by the daemon', async () => livePid(path.join(c.dir, 'state', 'endpoint-ro.pid'), st.endpoints.details.ro.pid!), 15_000);
  const ro = new pg.Client({ host: '127.0.0.1', port: PORT + 1001, user: 'postgres', password, database: 'postgres', connectionTimeoutMillis: 10_000 });
  ro.on('error', () => undefined);
  await ro.connect();
  assert.equal((await ro.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, true);
  await ro.end();
  const before = await c.status();
  const r = await c.run('up');
  assert.equal(r.code, 0, r.stderr);
  const after = await c.status();
  assert.equal(after.daemon.supervisor.running, true);
  assert.notEqual(after.daemon.supervisor.pid, st.daemon.supervisor.pid);
  assert.equal(after.daemon.pid, st.daemon.pid, 'the daemon was adopted, not restarted');
  assert.deepEqual(Object.values(after.endpoints.details).map((e) => e.pid), Object.values(before.endpoints.details).map((e) => e.pid), 'the endpoints were adopted');
  assert.deepEqual(after.nodes.map((n) => n.pid), st.nodes.map((n) => n.pid));
  assert.match((await c.run('events')).stdout, /endpoint ro \S+: the process \(pid \d+\) was gone and no supervisor runs; restarted it as pid \d+/);
});

test('failover under load through auto and rw: writes resume on the new primary, reads never stop for long', async () => {
  const st = await c.status();
  const writer = new Dialer(AUTO, (i) => `INSERT INTO acked VALUES (${i}) ON CONFLICT DO NOTHING`).start();
  const reader = new Dialer(AUTO, () => 'SELECT count(*) FROM pg_class').start();
  const rwWriter = new Dialer(RW, (i) => `INSERT INTO acked VALUES (${1_000_000 + i}) ON CONFLICT DO NOTHING`).start();
  await c.until('load flowing', async () => writer.ok > 10 && reader.ok > 10 && rwWriter.ok > 10);
  const killedAt = Date.now();
  process.kill(c.node(st, 'node1').pid!, 'SIGKILL');
  await c.until('writes after the failover, through both', async () => writer.lastOkAt > killedAt + 500 && rwWriter.lastOkAt > killedAt + 500, 60_000);
  // reads kept flowing on the replicas meanwhile: the longest gap between two successful reads is short
  const readsBefore = reader.ok;
  await new Promise((r) => setTimeout(r, 500));
  await Promise.all([writer.stop(), reader.stop(), rwWriter.stop()]);
  assert.ok(reader.ok > readsBefore, 'reads go on after the failover');
  const failoverMs = Math.min(writer.lastOkAt, rwWriter.lastOkAt) - killedAt;
  assert.ok(reader.longestGap < Math.max(failoverMs, 1000), `reads paused ${reader.longestGap} ms at most, the failover took ${failoverMs} ms`);
  const after = await c.status();
  assert.notEqual(after.primary, 'node1');
  assert.equal(after.endpoints.details.auto.primary, after.primary);
  assert.equal(after.endpoints.details.rw.primary, after.primary);
  console.log(`# failover: writes resumed ${((writer.lastOkAt - killedAt) / 1000).toFixed(1)} s (auto) and ${((rwWriter.lastOkAt - killedAt) / 1000).toFixed(1)} s (rw) after SIGKILL; reads ok ${reader.ok}, failed ${reader.failed}, longest pause ${reader.longestGap} ms; writes failed ${writer.failed} (auto), ${rwWriter.failed} (rw)`);
});

test('down stops every process it started; nothing is left running', async () => {
  const st = await c.status();
  const pids = [st.daemon.pid, st.daemon.supervisor.pid, st.daemon.supervisor.spare, ...Object.values(st.endpoints.details).map((e) => e.pid), ...st.nodes.map((n) => n.pid)].filter((p): p is number => p !== null);
  const r = await c.run('down');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /supervisor: stopped/);
  assert.match(r.stdout, /endpoint auto: stopped/);
  assert.deepEqual(pids.filter(alive), []);
  const mine = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => {
    try {
      return fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(c.dir);
    } catch {
      return false;
    }
  });
  assert.deepEqual(mine, [], 'no process names this cluster');
});

test('service install: refused while the supervisor keeps the cluster; after down, systemd units; up then says systemd does not run here; uninstall', async () => {
  const units = fs.mkdtempSync(path.join(c.dir, 'units-'));
  const up = await c.run('up');
  assert.equal(up.code, 0, up.stderr);
  const refused = await c.run('service', 'install', '--dir', units);
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /runs under pgmaestro's own supervisor \(pid \d+\).*HINT: stop it first with pgmaestro down/);
  assert.equal((await c.run('down')).code, 0);
  const installed = await c.run('service', 'install', '--dir', units);
  assert.equal(installed.code, 0, installed.stderr);
  assert.deepEqual(fs.readdirSync(units).sort(), ['pgmaestro-tr-sup-auto.service', 'pgmaestro-tr-sup-auto.socket', 'pgmaestro-tr-sup-daemon.service', 'pgmaestro-tr-sup-nodes.service', 'pgmaestro-tr-sup-ro.service', 'pgmaestro-tr-sup-ro.socket', 'pgmaestro-tr-sup-rw.service', 'pgmaestro-tr-sup-rw.socket', 'pgmaestro-tr-sup.target'].map((n) => n.replace('tr-sup', clusterName())));
  if (!fs.existsSync('/run/systemd/system')) {
    const noSystemd = await c.run('up');
    assert.equal(noSystemd.code, 1);
    assert.match(noSystemd.stderr, /installed as the systemd service pgmaestro-\S+\.target, but systemd does not run on this host\. HINT: run pgmaestro service uninstall/);
    assert.ok((await c.status()).nodes.every((n) => n.pid === null), 'it said so before starting anything');
    assert.equal((await c.run('down', '--service')).code, 0, 'down --service (as the nodes unit runs it) works without systemctl');
  }
  const removed = await c.run('service', 'uninstall');
  assert.equal(removed.code, 0, removed.stderr);
  assert.deepEqual(fs.readdirSync(units), []);
});

function clusterName(): string {
  return /^cluster: (\S+)/m.exec(fs.readFileSync(c.file, 'utf8'))![1];
}
