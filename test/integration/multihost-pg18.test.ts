import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { cli, tempDir, type StatusJson } from '../helpers/cluster.js';
import { netnsUnsupported } from '../../src/ha/netns.js';

/**
 * Several hosts in one lab: each node on its own host (a network namespace)
 * with its own agent, three etcd members in namespaces of their own. Short
 * leases (ttl 4 s, loop 0.5 s) keep the faults quick.
 */
const PORT = 19000;
const AGENT = 19510;
const ETCD = 19520;
const TTL = 4000;
const LOOP = 500;
const skip = await netnsUnsupported();
let dir = '';
let file = '';

type Multi = Omit<StatusJson, 'nodes' | 'endpoints'> & { hosts: { name: string; agent: string; reachable: boolean; netns?: string }[]; controller: string | null; dcs: { healthy: boolean; members: { name: string; healthy: boolean }[] }; endpoints: { rw?: string; rw_by_host?: Record<string, string> }; nodes: (StatusJson['nodes'][number] & { address: string })[] };
const run = (...args: string[]) => cli([...args, '-c', file]);
async function status(): Promise<Multi> {
  const r = await run('status', '--json');
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Multi;
}
const password = () => fs.readFileSync(path.join(dir, 'secrets', 'superuser.password'), 'utf8').trim();
async function sql<T extends pg.QueryResultRow>(host: string, port: number, text: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ host, port, user: 'postgres', password: password(), database: 'postgres', connectionTimeoutMillis: 2000, query_timeout: 3000 });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return (await c.query<T>(text, params)).rows;
  } finally {
    await c.end().catch(() => undefined);
  }
}
async function until(what: string, check: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}
const pidFile = (name: string) => Number(fs.readFileSync(path.join(dir, 'state', name), 'utf8').trim());
const kill = (pid: number, sig: NodeJS.Signals = 'SIGKILL') => {
  try {
    process.kill(pid, sig);
  } catch {
    // gone
  }
};
const events = async () => (await run('events', '-n', '500')).stdout;

/** Writes through every given endpoint in turn, one connection per insert, recording what was acknowledged. */
class Writer {
  readonly acked: { id: number; at: number; on: string }[] = [];
  private stopped = false;
  private done: Promise<void> | null = null;
  constructor(private readonly endpoints: () => string[]) {}
  start(): this {
    let id = 0;
    this.done = (async () => {
      while (!this.stopped) {
        for (const ep of this.endpoints()) {
          if (this.stopped) break;
          const [h, p] = ep.split(':');
          const mine = ++id;
          try {
            const r = await sql<{ a: string }>(h, Number(p), 'INSERT INTO acked VALUES ($1) RETURNING host(inet_server_addr()) AS a', [mine]);
            this.acked.push({ id: mine, at: Date.now(), on: r[0].a });
          } catch {
            await new Promise((r) => setTimeout(r, 50));
          }
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

before(async () => {
  if (skip) return;
  dir = tempDir('mh');
  file = path.join(dir, 'pgmaestro.yaml');
  const r = await cli(['init', dir, '--port-base', String(PORT), '--dcs', 'etcd', '--agent-port', String(AGENT), '--etcd-port', String(ETCD)]);
  assert.equal(r.code, 0, r.stderr);
  const text = fs
    .readFileSync(file, 'utf8')
    .replace(/^cluster: .*$/m, `cluster: mh${crypto.randomBytes(3).toString('hex')}`)
    .replace('  loop_wait: 1s ', '  loop_wait: 500ms ')
    .replace('  failover_timeout: 5s', '  failover_timeout: 2s\n  auto_rejoin: true\n  restart_first: false')
    .replace('    ttl: 10s ', '    ttl: 4s ')
    .replace('    retry_timeout: 2s ', '    retry_timeout: 1s ')
    .replace('  wal_archive: true', '  wal_archive: false');
  fs.writeFileSync(file, text);
  const u = await run('up');
  assert.equal(u.code, 0, u.stdout + u.stderr);
  const st = await status();
  await sql(st.nodes[0].address, PORT, 'CREATE TABLE acked (id int primary key)');
});

after(async () => {
  if (skip || !dir) return;
  await run('down').catch(() => undefined);
  // whatever down could not stop: the lab's namespaces are removed with what runs in them
  const lab = path.join(dir, 'state', 'lab.json');
  if (fs.existsSync(lab)) {
    const rec = JSON.parse(fs.readFileSync(lab, 'utf8')) as { hosts: { netns: string }[] };
    for (const h of rec.hosts) execFileSync('sh', ['-c', `for p in $(ip netns pids ${h.netns}); do kill -9 $p; done; ip netns del ${h.netns} || true`]);
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test('multi-host status: hosts, controller, etcd members, node hosts', { skip: skip ?? false }, async () => {
  const st = await status();
  assert.deepEqual(st.hosts.map((h) => [h.name, h.reachable]), [['h1', true], ['h2', true], ['h3', true]]);
  assert.ok(st.hosts.every((h) => h.netns?.startsWith('pgm-mh')));
  assert.ok(st.controller && ['h1', 'h2', 'h3'].includes(st.controller));
  assert.equal(st.dcs.healthy, true);
  assert.equal(st.dcs.members.length, 3);
  assert.deepEqual(st.nodes.map((n) => [n.name, n.host, n.role]), [['node1', 'h1', 'primary'], ['node2', 'h2', 'replica'], ['node3', 'h3', 'replica']]);
  assert.equal(Object.keys(st.endpoints.rw_by_host ?? {}).length, 3);
});

test('host death: agent and postmaster SIGKILLed together; a replica is promoted, every surviving endpoint takes writes, the host comes back as a replica', { skip: skip ?? false }, async () => {
  const st = await status();
  const old = st.nodes.find((n) => n.role === 'primary')!;
  const survivors = Object.entries(st.endpoints.rw_by_host!).filter(([h]) => h !== old.host).map(([, ep]) => ep);
  const w = new Writer(() => survivors).start();
  await until('writes flowing', async () => w.acked.length > 10);
  const killedAt = Date.now();
  kill(pidFile(`agent-${old.host}.pid`));
  kill(old.pid!);
  for (const ep of survivors) await until(`a write through ${ep} after the death`, async () => w.acked.some((a) => a.at > killedAt + 100 && a.on !== old.address && survivors.includes(`${ep}`) && a.id > 0) , 60_000);
  const firstAfter = w.acked.find((a) => a.at > killedAt && a.on !== old.address)!;
  await new Promise((r) => setTimeout(r, 1000));
  await w.stop();
  const now = await status();
  assert.notEqual(now.primary, old.name);
  console.log(`# host death: first write through a surviving endpoint ${((firstAfter.at - killedAt) / 1000).toFixed(1)} s after the SIGKILL`);
  const present = new Set((await sql<{ id: number }>(now.nodes.find((n) => n.name === now.primary)!.address, now.nodes.find((n) => n.name === now.primary)!.port, 'SELECT id FROM acked')).map((r) => r.id));
  const lost = w.acked.filter((a) => a.at > killedAt + 50 && !present.has(a.id));
  assert.deepEqual(lost, [], 'no write acknowledged after the death is lost');
  const ev = await events();
  assert.equal((ev.match(new RegExp(`promoted node\\d \\(timeline`, 'g')) ?? []).length, 1, 'exactly one promotion');
  // the host starts again (as systemd would): up starts its agent; auto_rejoin rebuilds the old primary
  const u = await run('up');
  assert.equal(u.code, 0, u.stderr);
  await until(`${old.name} back as a replica`, async () => (await status()).nodes.find((n) => n.name === old.name)?.role === 'replica', 90_000);
  assert.match(await events(), new RegExp(`${old.name} rejoined as a replica`));
});

test('partition: the cut primary refuses writes within its ttl, a replica is promoted after it, never two writable nodes', { skip: skip ?? false }, async () => {
  const st = await status();
  const old = st.nodes.find((n) => n.role === 'primary')!;
  const lab = JSON.parse(fs.readFileSync(path.join(dir, 'state', 'lab.json'), 'utf8')) as { hosts: { name: string; netns: string; hostIf: string; address: string }[] };
  const h = lab.hosts.find((x) => x.name === old.host)!;
  // a client on the primary's own host, connected straight to it, inserting every 100 ms
  const script = `const pg=require(${JSON.stringify(path.join(process.cwd(), 'node_modules', 'pg'))});(async()=>{const c=new pg.Client({host:${JSON.stringify(old.address)},port:${old.port},user:'postgres',password:${JSON.stringify(password())},database:'postgres'});c.on('error',()=>{});await c.connect();for(let i=0;i<200;i++){try{await c.query('INSERT INTO acked VALUES ($1)',[5000000+i]);console.log('ok '+Date.now())}catch(e){console.log('err '+Date.now());break}await new Promise(r=>setTimeout(r,100))}process.exit(0)})().catch(()=>{console.log('err '+Date.now());process.exit(0)})`;
  const child = (await import('node:child_process')).spawn('ip', ['netns', 'exec', h.netns, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await until('the direct client writing', async () => out.includes('ok '));
  // sample every node's writability every 100 ms, from the root namespace (the cut host: from its own namespace)
  let maxWritable = 0;
  let sampling = true;
  const probe = async (n: Multi['nodes'][number]) => {
    if (n.host === old.host) {
      const r = await (await import('../../src/postgres/exec.js')).run('ip', ['netns', 'exec', h.netns, '/usr/lib/postgresql/15/bin/psql', '-Atc', 'SELECT NOT pg_is_in_recovery()', `postgresql://postgres@${n.address}:${n.port}/postgres?connect_timeout=1`], { env: { PGPASSFILE: path.join(dir, 'secrets', 'superuser.pgpass') }, timeoutMs: 1500 });
      return r.stdout.trim() === 't';
    }
    return (await sql<{ w: boolean }>(n.address, n.port, 'SELECT NOT pg_is_in_recovery() AS w').catch(() => [{ w: false }]))[0].w;
  };
  const sampler = (async () => {
    while (sampling) {
      const w = await Promise.all(st.nodes.map((n) => probe(n).catch(() => false)));
      maxWritable = Math.max(maxWritable, w.filter(Boolean).length);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const cutAt = Date.now();
  execFileSync('ip', ['link', 'set', h.hostIf, 'down']);
  await until('the direct client refused', async () => out.includes('err '), 15_000);
  const lastOk = Math.max(...out.split('\n').filter((l) => l.startsWith('ok ')).map((l) => Number(l.slice(3))));
  assert.ok(lastOk - cutAt < TTL, `the cut primary committed ${lastOk - cutAt} ms after the cut, beyond its ttl`);
  await until('another primary', async () => {
    const s = await status();
    return s.primary !== old.name && s.nodes.find((n) => n.name === s.primary)?.role === 'primary';
  }, 60_000);
  const promotedAt = Date.now();
  assert.ok(promotedAt - cutAt >= TTL - LOOP - 100, 'nobody was promoted before the old primary\'s lease could expire');
  execFileSync('ip', ['link', 'set', h.hostIf, 'up']);
  await new Promise((r) => setTimeout(r, 3000));
  sampling = false;
  await sampler;
  child.kill('SIGKILL');
  assert.equal(maxWritable, 1, 'at no sample were two nodes writable');
  const ev = await events();
  assert.match(ev, new RegExp(`${old.name} fenced itself`));
  assert.equal((ev.slice(ev.lastIndexOf(`${old.name} fenced itself`)).match(/promoted node\d \(timeline/g) ?? []).length, 1, 'exactly one promotion for the partition');
  await until(`${old.name} rejoined`, async () => (await status()).nodes.find((n) => n.name === old.name)?.role === 'replica', 90_000);
});

test('bad input: an agent for an unknown host, a host without its certificate: one sentence, nothing changed', { skip: skip ?? false }, async () => {
  const r = await run('agent', '--host', 'h9');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /there is no host 'h9' in .*HINT: start the agent with --host set to one of: h1, h2, h3\./);
  const key = path.join(dir, 'secrets', 'h2.key');
  const saved = fs.readFileSync(key);
  fs.renameSync(key, `${key}.aside`);
  try {
    const m = await run('agent', '--host', 'h2');
    assert.equal(m.code, 2);
    assert.match(m.stderr, /the key of host h2 .* is missing .*HINT: create the certificates with `pgmaestro certs/);
  } finally {
    fs.renameSync(`${key}.aside`, key);
  }
  assert.deepEqual(fs.readFileSync(key), saved);
});
