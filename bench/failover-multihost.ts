/**
 * bench/failover --multi-host: host death on three hosts (network namespaces
 * of one lab, three etcd members), pgmaestro against Debian's Patroni 3.0.2
 * on the same etcd and the same namespaces, in the same run. Each run kills
 * the primary's host — its agent (Patroni) and its postmaster with SIGKILL
 * together — while a client inserts through the endpoint of a surviving host
 * (pgmaestro's endpoint; HAProxy on Patroni's REST health check for Patroni,
 * checking every 500 ms), and measures the time to the first insert that a
 * surviving server commits; then counts acknowledged inserts missing on the
 * new primary. The dead host then starts again and rejoins before the next
 * run. Both run PostgreSQL 15 (Patroni needs pg_basebackup and pg_rewind),
 * synchronous replication: pgmaestro `quorum 1`, Patroni `synchronous_mode`.
 * Prints median and worst per configuration and the ratios; asserts nothing.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const PG15 = '/usr/lib/postgresql/15/bin';
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PORT = 19200; // nodes 19200-19202, endpoints 20200; Patroni's PostgreSQL 19210-19212
const AGENT = 19710;
const ETCD = 19720;
const PATRONI_API = 19730;
const HAPROXY = 19740;

interface Timings {
  readonly name: string;
  readonly ttl: number;
  readonly loop: number;
  readonly retry: number;
}

interface Result {
  readonly label: string;
  readonly times: number[];
  readonly lost: number[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const median = (xs: number[]) => sorted(xs)[Math.floor(xs.length / 2)];

function cli(...args: string[]): string {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(repo, 'src/cli/main.ts'), ...args], { cwd: repo, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`pgmaestro ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function until(what: string, check: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function kill(pid: number | null, sig: NodeJS.Signals = 'SIGKILL'): void {
  try {
    if (pid) process.kill(pid, sig);
  } catch {
    // gone
  }
}

function postmasterPid(dataDir: string): number | null {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return alive(pid) ? pid : null;
  } catch {
    return null;
  }
}

interface LabHost {
  name: string;
  netns: string;
  address: string;
}

class Bench {
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-bench-mh-'));
  readonly file = path.join(this.dir, 'pgmaestro.yaml');
  hosts: LabHost[] = [];
  etcd: string[] = [];
  password = '';

  async sql<T extends pg.QueryResultRow>(host: string, port: number, q: string, params: unknown[] = []): Promise<T[]> {
    const c = new pg.Client({ host, port, user: 'postgres', password: this.password, database: 'postgres', connectionTimeoutMillis: 2000, query_timeout: 3000 });
    c.on('error', () => undefined);
    await c.connect();
    try {
      return (await c.query<T>(q, params)).rows;
    } finally {
      await c.end().catch(() => undefined);
    }
  }

  /** One host death: kill `victim` (its controlling process and postmaster), write through `via`, time the first commit elsewhere. */
  async hostDeath(label: string, run: number, via: { host: string; port: number }, oldAddress: string, portOf: (address: string) => number, killIt: () => void, id0: number): Promise<{ t: number; lost: number; acked: number }> {
    const acked: { id: number; at: number; on: string }[] = [];
    let stop = false;
    let id = id0;
    const writer = (async () => {
      while (!stop) {
        const mine = ++id;
        try {
          const [r] = await this.sql<{ a: string }>(via.host, via.port, 'INSERT INTO acked VALUES ($1) RETURNING host(inet_server_addr()) AS a', [mine]);
          acked.push({ id: mine, at: Date.now(), on: r.a });
        } catch {
          await sleep(20);
        }
      }
    })();
    await until('writes flowing', async () => acked.length > 20, 30_000);
    const killedAt = Date.now();
    killIt();
    await until('a write committed by a surviving server', async () => acked.some((a) => a.at > killedAt && a.on !== oldAddress), 180_000).catch(() => undefined);
    const first = acked.find((a) => a.at > killedAt && a.on !== oldAddress);
    stop = true;
    await writer;
    const t = first ? (first.at - killedAt) / 1000 : NaN;
    const newAddress = first?.on ?? via.host;
    const present = new Set((await this.sql<{ id: number }>(newAddress, portOf(newAddress), 'SELECT id FROM acked WHERE id = ANY($1::int[])', [acked.map((a) => a.id)])).map((r) => Number(r.id)));
    const lost = acked.filter((a) => !present.has(a.id)).length;
    console.log(`  ${label} run ${run}: first write on a surviving server ${t.toFixed(2)} s after the SIGKILL; ${acked.length} acknowledged, ${lost} lost`);
    return { t, lost, acked: id };
  }
}

const patroniPort = (i: number) => PORT + 10 + i;

// ---- pgmaestro -------------------------------------------------------------------

async function pgmaestroUp(b: Bench, t: Timings): Promise<void> {
  const text = fs
    .readFileSync(b.file, 'utf8')
    .replace(/^ {2}loop_wait: .*$/m, `  loop_wait: ${t.loop}ms`)
    .replace(/^ {2}failover_timeout: .*$/m, `  failover_timeout: ${Math.max(3 * t.loop, 2000)}ms`)
    .replace(/^ {4}ttl: .*$/m, `    ttl: ${t.ttl}ms`)
    .replace(/^ {4}retry_timeout: .*$/m, `    retry_timeout: ${t.retry}ms`);
  fs.writeFileSync(b.file, text);
  cli('up', '-c', b.file);
}

function stopAgents(b: Bench): void {
  for (const h of b.hosts) for (const f of [`agent-${h.name}.pid`, `guard-${h.name}.pid`]) {
    try {
      kill(Number(fs.readFileSync(path.join(b.dir, 'state', f), 'utf8')), 'SIGTERM');
    } catch {
      // not running
    }
  }
}

async function measurePgmaestro(b: Bench, t: Timings, runs: number, id: { n: number }): Promise<Result> {
  stopAgents(b);
  await sleep(1500);
  await pgmaestroUp(b, t);
  const times: number[] = [];
  const lost: number[] = [];
  for (let run = 1; run <= runs; run++) {
    await until('pgmaestro settled', async () => {
      const st = JSON.parse(cli('status', '-c', b.file, '--json')) as { primary: string; nodes: { name: string; role: string }[] };
      return st.nodes.filter((n) => n.role === 'replica').length === 2 && st.nodes.some((n) => n.name === st.primary && n.role === 'primary');
    }, 180_000);
    const st = JSON.parse(cli('status', '-c', b.file, '--json')) as { primary: string; nodes: { name: string; host: string; address: string; data_dir: string }[] };
    const old = st.nodes.find((n) => n.name === st.primary)!;
    const via = b.hosts.find((h) => h.name !== old.host)!;
    const agentPid = Number(fs.readFileSync(path.join(b.dir, 'state', `agent-${old.host}.pid`), 'utf8'));
    const portOf = (a: string) => PORT + b.hosts.findIndex((h) => h.address === a);
    const r = await b.hostDeath(`pgmaestro ${t.name}`, run, { host: via.address, port: PORT + 1000 }, old.address, portOf, () => {
      kill(agentPid);
      kill(postmasterPid(old.data_dir));
    }, id.n);
    id.n = r.acked + 1;
    times.push(r.t);
    lost.push(r.lost);
    cli('up', '-c', b.file); // the host starts again: its agent; auto_rejoin rebuilds the old primary
  }
  return { label: `pgmaestro ${t.name} (ttl ${t.ttl / 1000} s, loop_wait ${t.loop / 1000} s, retry_timeout ${t.retry / 1000} s)`, times, lost };
}

// ---- Patroni ---------------------------------------------------------------------

function patroniConfig(b: Bench, i: number, t: Timings, dataDir: string): string {
  const h = b.hosts[i];
  return `scope: bench
namespace: /patroni-bench/
name: p${i + 1}
restapi:
  listen: ${h.address}:${PATRONI_API}
  connect_address: ${h.address}:${PATRONI_API}
etcd3:
  hosts: [${b.etcd.join(', ')}]
bootstrap:
  dcs:
    ttl: ${t.ttl / 1000}
    loop_wait: ${t.loop / 1000}
    retry_timeout: ${t.retry / 1000}
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_log_hints: 'on'
  initdb: [{ encoding: UTF8 }, data-checksums]
  pg_hba:
    - host replication replicator 10.213.0.0/16 scram-sha-256
    - host all all 10.213.0.0/16 scram-sha-256
postgresql:
  listen: ${h.address}:${patroniPort(i)}
  connect_address: ${h.address}:${patroniPort(i)}
  data_dir: ${dataDir}
  bin_dir: ${PG15}
  pgpass: ${path.join(b.dir, 'patroni', `pgpass-${i}`)}
  authentication:
    superuser: { username: postgres, password: '${b.password}' }
    replication: { username: replicator, password: '${b.password}r' }
    rewind: { username: postgres, password: '${b.password}' }
  parameters:
    unix_socket_directories: '${path.join(b.dir, 'patroni')}'
    password_encryption: scram-sha-256
`;
}

function haproxyConfig(b: Bench, i: number): string {
  const servers = b.hosts.map((h, j) => `  server p${j + 1} ${h.address}:${patroniPort(j)} check port ${PATRONI_API}`).join('\n');
  return `global
  maxconn 200
defaults
  mode tcp
  timeout connect 2s
  timeout client 30m
  timeout server 30m
  timeout check 1s
listen primary
  bind ${b.hosts[i].address}:${HAPROXY}
  option httpchk GET /primary
  http-check expect status 200
  default-server inter 500ms fall 1 rise 1 on-marked-down shutdown-sessions
${servers}
`;
}

function spawnIn(netns: string, argv: string[], log: string, asPostgres: boolean): number {
  const out = fs.openSync(log, 'a');
  const uid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const full = asPostgres ? ['netns', 'exec', netns, 'setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', ...argv] : ['netns', 'exec', netns, ...argv];
  const child = spawn('ip', full, { detached: true, stdio: ['ignore', out, out], env: { ...process.env, HOME: '/tmp' } });
  fs.closeSync(out);
  child.unref();
  return child.pid!;
}

async function patroniCluster(b: Bench, i: number): Promise<{ leader: string | null; streaming: number }> {
  const r = await fetchInNs(b.hosts[i], `http://${b.hosts[i].address}:${PATRONI_API}/cluster`);
  const c = JSON.parse(r) as { members: { name: string; role: string; state: string }[] };
  return { leader: c.members.find((m) => m.role === 'leader' && m.state === 'running')?.name ?? null, streaming: c.members.filter((m) => m.role !== 'leader' && (m.state === 'streaming' || m.state === 'running')).length };
}

/** The REST API listens inside the lab: the root namespace reaches it over the lab's bridge. */
async function fetchInNs(_h: LabHost, url: string): Promise<string> {
  const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return r.text();
}

async function measurePatroni(b: Bench, t: Timings, runs: number, id: { n: number }): Promise<Result> {
  const base = path.join(b.dir, 'patroni', t.name);
  fs.mkdirSync(base, { recursive: true });
  const uid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
  fs.chownSync(path.join(b.dir, 'patroni'), uid, gid);
  fs.chownSync(base, uid, gid);
  const pids: number[] = [];
  const dataDirs = b.hosts.map((_, i) => path.join(base, `p${i + 1}`));
  const start = (i: number) => {
    const cfg = path.join(base, `p${i + 1}.yml`);
    fs.writeFileSync(cfg, patroniConfig(b, i, t, dataDirs[i]), { mode: 0o600 });
    fs.chownSync(cfg, uid, gid);
    pids[i] = spawnIn(b.hosts[i].netns, ['patroni', cfg], path.join(base, `p${i + 1}.log`), true);
  };
  const haproxy: number[] = [];
  try {
    // the scope is fresh: clear what an earlier configuration left in etcd
    spawnSync('etcdctl', ['--endpoints', b.etcd.join(','), 'del', '--prefix', '/patroni-bench/'], { env: { ...process.env, ETCDCTL_API: '3' } });
    start(0);
    await until('the Patroni leader', async () => (await patroniCluster(b, 0)).leader === 'p1', 120_000);
    start(1);
    start(2);
    await until('two Patroni replicas', async () => (await patroniCluster(b, 0)).streaming === 2, 240_000);
    for (let i = 0; i < b.hosts.length; i++) {
      const cfg = path.join(base, `haproxy-${i}.cfg`);
      fs.writeFileSync(cfg, haproxyConfig(b, i));
      haproxy[i] = spawnIn(b.hosts[i].netns, ['haproxy', '-f', cfg], path.join(base, `haproxy-${i}.log`), false);
    }
    await b.sql(b.hosts[0].address, patroniPort(0), 'CREATE TABLE IF NOT EXISTS acked (id int primary key)');
    const times: number[] = [];
    const lost: number[] = [];
    for (let run = 1; run <= runs; run++) {
      let leader = '';
      await until('Patroni settled', async () => {
        for (let i = 0; i < b.hosts.length; i++) {
          const c = await patroniCluster(b, i).catch(() => null);
          if (c?.leader && c.streaming === 2) {
            leader = c.leader;
            return true;
          }
        }
        return false;
      }, 600_000);
      const li = Number(leader.slice(1)) - 1;
      const via = b.hosts.find((_, i) => i !== li)!;
      await until('HAProxy routing to the leader', async () => (await b.sql<{ a: string }>(via.address, HAPROXY, 'SELECT host(inet_server_addr()) AS a'))[0].a === b.hosts[li].address, 30_000);
      const portOf = (a: string) => patroniPort(b.hosts.findIndex((h) => h.address === a));
      const r = await b.hostDeath(`Patroni ${t.name}`, run, { host: via.address, port: HAPROXY }, b.hosts[li].address, portOf, () => {
        kill(pids[li]);
        kill(postmasterPid(dataDirs[li]));
      }, id.n);
      id.n = r.acked + 1;
      times.push(r.t);
      lost.push(r.lost);
      start(li); // the host starts again: Patroni rewinds the old primary and follows
    }
    return { label: `Patroni 3.0.2 ${t.name} (ttl ${t.ttl / 1000} s, loop_wait ${t.loop / 1000} s, retry_timeout ${t.retry / 1000} s)`, times, lost };
  } finally {
    for (const p of [...pids, ...haproxy]) kill(p);
    await sleep(500);
    for (const d of dataDirs) kill(postmasterPid(d));
  }
}

// ---- the run -----------------------------------------------------------------------

export async function benchMultiHost(runs: number): Promise<void> {
  const b = new Bench();
  fs.chmodSync(b.dir, 0o755);
  const ours: Timings = { name: 'fast', ttl: 4000, loop: 500, retry: 1000 };
  // Patroni's tuned ttl and loop_wait; retry_timeout 3 s, as pgmaestro also keeps its fencing margin inside the ttl
  const parity: Timings = { name: "at Patroni's tuned ttl", ttl: 10_000, loop: 2000, retry: 3000 };
  const tuned: Timings = { name: 'tuned', ttl: 10_000, loop: 2000, retry: 4000 };
  const defaults: Timings = { name: 'defaults', ttl: 30_000, loop: 10_000, retry: 10_000 };
  const results: Result[] = [];
  try {
    cli('init', b.dir, '--port-base', String(PORT), '--dcs', 'etcd', '--agent-port', String(AGENT), '--etcd-port', String(ETCD), '--bin-dir', PG15);
    fs.writeFileSync(
      b.file,
      fs
        .readFileSync(b.file, 'utf8')
        .replace(/^cluster: .*$/m, 'cluster: mhbench')
        .replace('  wal_archive: true', '  wal_archive: false')
        .replace(/^ {2}failover_timeout: 5s$/m, '  failover_timeout: 5s\n  auto_rejoin: true\n  restart_first: false\n  synchronous: quorum 1'),
    );
    await pgmaestroUp(b, ours);
    const lab = JSON.parse(fs.readFileSync(path.join(b.dir, 'state', 'lab.json'), 'utf8')) as { hosts: LabHost[] };
    b.hosts = lab.hosts.filter((h) => /^h\d$/.test(h.name));
    b.etcd = lab.hosts.filter((h) => /^e\d$/.test(h.name)).map((h) => `${h.address}:${ETCD}`);
    b.password = fs.readFileSync(path.join(b.dir, 'secrets', 'superuser.password'), 'utf8').trim();
    const st = JSON.parse(cli('status', '-c', b.file, '--json')) as { primary: string; nodes: { name: string; address: string; port: number }[] };
    const p = st.nodes.find((n) => n.name === st.primary)!;
    await b.sql(p.address, p.port, 'CREATE TABLE IF NOT EXISTS acked (id int primary key)');
    const id = { n: 0 };
    results.push(await measurePgmaestro(b, ours, runs, id));
    results.push(await measurePgmaestro(b, parity, runs, id));
    // Patroni on the same etcd and namespaces: pgmaestro's agents and nodes stop first
    stopAgents(b);
    await sleep(1500);
    for (let i = 0; i < 3; i++) kill(postmasterPid(path.join(b.dir, 'data', `node${i + 1}`)), 'SIGINT');
    await sleep(2000);
    results.push(await measurePatroni(b, tuned, runs, id));
    results.push(await measurePatroni(b, defaults, runs, id));
  } finally {
    try {
      if (fs.existsSync(b.file)) cli('down', '-c', b.file);
    } catch {
      // best effort: down removes the lab and whatever runs in it
    }
    fs.rmSync(b.dir, { recursive: true, force: true });
  }
  console.log(`\nhost death (agent and postmaster SIGKILLed together) -> first write committed by a surviving server, through a surviving host's endpoint; ${runs} runs each; synchronous replication:`);
  for (const r of results) {
    const ok = r.times.filter((x) => !Number.isNaN(x));
    console.log(`  ${r.label}: median ${median(ok).toFixed(2)} s, worst ${Math.max(...ok).toFixed(2)} s${ok.length < r.times.length ? ` (${r.times.length - ok.length} runs never recovered)` : ''}; acknowledged commits lost: ${r.lost.reduce((a, x) => a + x, 0)} in all, worst run ${Math.max(...r.lost)}`);
  }
  const m = (label: string) => median(results.find((r) => r.label.startsWith(label))!.times.filter((x) => !Number.isNaN(x)));
  console.log(`  ratio pgmaestro fast / Patroni tuned: ${(m('pgmaestro fast') / m('Patroni 3.0.2 tuned')).toFixed(2)} (goal <= 0.5)`);
  console.log(`  ratio pgmaestro at Patroni's tuned ttl / Patroni tuned: ${(m("pgmaestro at Patroni's") / m('Patroni 3.0.2 tuned')).toFixed(2)}`);
  console.log(`  ratio pgmaestro fast / Patroni defaults: ${(m('pgmaestro fast') / m('Patroni 3.0.2 defaults')).toFixed(2)}`);
}
