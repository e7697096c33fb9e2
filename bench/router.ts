/**
 * bench/router: throughput of pgmaestro's endpoints against their peers, all
 * in one run on this machine, PostgreSQL 18 (embedded), a primary and two
 * replicas, synchronous_commit off (the proxies' cost, not the disk's, is
 * measured), pgbench from Debian:
 *
 *   pgbench -S -c 8 (select-only) and tpcb-like -c 4, simple and prepared protocol, through
 *     direct        the primary's own port
 *     rw            pgmaestro's rw endpoint (TCP, follows the primary)
 *     haproxy       HAProxy 2.6, mode tcp, to the primary            (rw's peer)
 *     ro            pgmaestro's ro endpoint (TCP, least connections over the replicas; select-only)
 *     haproxy-ro    HAProxy 2.6, mode tcp, balance leastconn, replicas (ro's peer)
 *     auto          pgmaestro's auto endpoint (protocol router: pooling, routing, read-your-writes)
 *     pgbouncer     PgBouncer 1.18, pool_mode transaction, to the primary (auto's peer)
 *
 * and, per run, each node's share of the transactions (pg_stat_database)
 * and the CPU the proxy process used per transaction (/proc: a figure a
 * loaded, shared machine disturbs far less than throughput). Each workload
 * runs every target once per round, rounds interleaved; medians are shown.
 * Then the process model (issue 10, item 5): the same TCP forwarding in its
 * own process, in a worker thread of a process whose main thread is busy as
 * a daemon's can be (20 % of a core in 4 ms slices, like the archiver under
 * write load), and on that busy event loop itself. Prints figures and ratios;
 * asserts nothing.
 *
 *   npx tsx bench/router.ts [--seconds 5] [--rounds 3] [--scale 10] [--skip-model]
 *
 * Ports: nodes 10450-10452, endpoints 11450-11452, HAProxy 10600/10602,
 * PgBouncer 10601, the process-model forwarders 10603-10605.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const PG15 = '/usr/lib/postgresql/15/bin';
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name: string, d: string) => (process.argv.includes(`--${name}`) ? process.argv[process.argv.indexOf(`--${name}`) + 1] : d);
const seconds = Number(arg('seconds', '5'));
const rounds = Number(arg('rounds', '3'));
const scale = Number(arg('scale', '10'));
const skipModel = process.argv.includes('--skip-model');
const PORT = 10450;
const RW = PORT + 1000;
const RO = PORT + 1001;
const AUTO = PORT + 1002;
const HAPROXY = 10600;
const PGBOUNCER = 10601;
const HAPROXY_RO = 10602;

const cli = (...args: string[]) => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(repo, 'src/cli/main.ts'), ...args], { cwd: repo, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`pgmaestro ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-bench-router-'));
fs.chmodSync(dir, 0o755);
const file = path.join(dir, 'pgmaestro.yaml');
const children: ChildProcess[] = [];
let password = '';

async function sql<T extends pg.QueryResultRow>(port: number, text: string): Promise<T[]> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' });
  await c.connect();
  try {
    return (await c.query<T>(text)).rows;
  } finally {
    await c.end();
  }
}

/** Transactions each node has run in the database (committed and rolled back). */
async function xacts(): Promise<number[]> {
  return Promise.all([0, 1, 2].map(async (i) => Number((await sql<{ n: string }>(PORT + i, "SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = 'postgres'"))[0].n)));
}

function pgbench(port: number, args: string[]): { tps: number | null; tx: number; error: string | null } {
  const r = spawnSync(path.join(PG15, 'pgbench'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-n', '-j', '2', '-T', String(seconds), ...args, 'postgres'], {
    env: { ...process.env, PGPASSWORD: password },
    encoding: 'utf8',
    timeout: (seconds + 60) * 1000,
  });
  const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(r.stdout);
  const failed = /number of failed transactions: (\d+)/.exec(r.stdout);
  const tx = Number(/number of transactions actually processed: (\d+)/.exec(r.stdout)?.[1] ?? 0);
  if (r.status !== 0 || !m) return { tps: null, tx, error: (r.stderr.trim().split('\n').pop() ?? `exit ${r.status}`).slice(0, 90) };
  if (failed && failed[1] !== '0') return { tps: Number(m[1]), tx, error: `${failed[1]} failed` };
  return { tps: Number(m[1]), tx, error: null };
}

/** CPU time (user + system, in µs) a process and its threads have used. */
function cpuMicros(pid: number | null): number | null {
  if (pid === null) return null;
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1e6) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return null;
  }
}

function endpointPid(kind: string): number | null {
  try {
    return Number(fs.readFileSync(path.join(dir, 'state', `endpoint-${kind}.pid`), 'utf8'));
  } catch {
    return null;
  }
}

const peerPids: Record<string, number | null> = {};

function startChild(cmd: string, args: string[]): ChildProcess {
  const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  c.stderr!.on('data', (d: Buffer) => process.stderr.write(`${path.basename(cmd)}: ${d}`));
  children.push(c);
  return c;
}

async function waitPort(port: number, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    try {
      await sql(port, 'SELECT 1');
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`${what} on port ${port} did not answer`);
}

async function peers(): Promise<void> {
  // HAProxy, mode tcp: one frontend to the primary, one balanced over the replicas
  const hcfg = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(
    hcfg,
    [
      'global',
      '  maxconn 2000',
      'defaults',
      '  mode tcp',
      '  timeout connect 5s',
      '  timeout client 1h',
      '  timeout server 1h',
      'frontend rw',
      `  bind 127.0.0.1:${HAPROXY}`,
      '  default_backend primary',
      'backend primary',
      `  server node1 127.0.0.1:${PORT}`,
      'frontend ro',
      `  bind 127.0.0.1:${HAPROXY_RO}`,
      '  default_backend replicas',
      'backend replicas',
      '  balance leastconn',
      `  server node2 127.0.0.1:${PORT + 1}`,
      `  server node3 127.0.0.1:${PORT + 2}`,
      '',
    ].join('\n'),
  );
  peerPids.haproxy = startChild('/usr/sbin/haproxy', ['-f', hcfg, '-db']).pid ?? null;
  // PgBouncer, transaction pooling, SCRAM with the role's verifier (it refuses to run as root: -u postgres)
  const verifier = (await sql<{ v: string }>(PORT, "SELECT rolpassword AS v FROM pg_authid WHERE rolname = 'postgres'"))[0].v;
  const bdir = path.join(dir, 'pgbouncer');
  fs.mkdirSync(bdir);
  fs.writeFileSync(path.join(bdir, 'userlist.txt'), `"postgres" "${verifier}"\n`);
  fs.writeFileSync(
    path.join(bdir, 'pgbouncer.ini'),
    [
      '[databases]',
      `postgres = host=127.0.0.1 port=${PORT} dbname=postgres`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${PGBOUNCER}`,
      'unix_socket_dir =',
      'auth_type = scram-sha-256',
      `auth_file = ${path.join(bdir, 'userlist.txt')}`,
      'pool_mode = transaction',
      'default_pool_size = 20',
      'max_client_conn = 200',
      `logfile = ${path.join(bdir, 'pgbouncer.log')}`,
      'log_connections = 0',
      'log_disconnections = 0',
      'log_stats = 0',
      '',
    ].join('\n'),
  );
  spawnSync('chown', ['-R', 'postgres:postgres', bdir]);
  peerPids.pgbouncer = startChild('/usr/sbin/pgbouncer', ['-u', 'postgres', path.join(bdir, 'pgbouncer.ini')]).pid ?? null;
  await Promise.all([waitPort(HAPROXY, 'HAProxy'), waitPort(HAPROXY_RO, 'HAProxy (replicas)'), waitPort(PGBOUNCER, 'PgBouncer')]);
}

interface Row {
  workload: string;
  target: string;
  tps: number[];
  cpu: number[];
  shares: string[];
  errors: string[];
}

const median = (xs: number[]) => (xs.length === 0 ? null : [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]);

async function throughput(): Promise<Row[]> {
  const workloads: { name: string; args: string[]; reads: boolean }[] = [
    { name: 'select-only -c 8, simple', args: ['-S', '-c', '8', '-M', 'simple'], reads: true },
    { name: 'select-only -c 8, prepared', args: ['-S', '-c', '8', '-M', 'prepared'], reads: true },
    { name: 'tpcb-like -c 4, simple', args: ['-c', '4', '-M', 'simple'], reads: false },
    { name: 'tpcb-like -c 4, prepared', args: ['-c', '4', '-M', 'prepared'], reads: false },
  ];
  const targets: { name: string; port: number; pid: () => number | null; readsOnly?: boolean }[] = [
    { name: 'direct', port: PORT, pid: () => null },
    { name: 'rw', port: RW, pid: () => endpointPid('rw') },
    { name: 'haproxy', port: HAPROXY, pid: () => peerPids.haproxy },
    { name: 'ro', port: RO, pid: () => endpointPid('ro'), readsOnly: true },
    { name: 'haproxy-ro', port: HAPROXY_RO, pid: () => peerPids.haproxy, readsOnly: true },
    { name: 'auto', port: AUTO, pid: () => endpointPid('auto') },
    { name: 'pgbouncer', port: PGBOUNCER, pid: () => peerPids.pgbouncer },
  ];
  const rows = new Map<string, Row>();
  for (let round = 1; round <= rounds; round++) {
    for (const w of workloads) {
      for (const t of targets) {
        if (t.readsOnly && !w.reads) continue;
        const key = `${w.name}|${t.name}`;
        const row = rows.get(key) ?? { workload: w.name, target: t.name, tps: [], cpu: [], shares: [], errors: [] };
        rows.set(key, row);
        const before = await xacts();
        const c0 = cpuMicros(t.pid());
        const r = pgbench(t.port, w.args);
        const c1 = cpuMicros(t.pid());
        await new Promise((res) => setTimeout(res, 1200)); // pg_stat_database is flushed within a second
        const after = await xacts();
        const d = after.map((a, i) => a - before[i]);
        const sum = d.reduce((x, y) => x + y, 0) || 1;
        row.shares.push(`node1 ${pct(d[0] / sum)}, node2 ${pct(d[1] / sum)}, node3 ${pct(d[2] / sum)}`);
        if (r.tps !== null && !r.error) row.tps.push(r.tps);
        if (r.error) row.errors.push(r.error);
        const cpu = c0 !== null && c1 !== null && r.tx > 0 ? (c1 - c0) / r.tx : null;
        if (cpu !== null) row.cpu.push(cpu);
        console.log(`round ${round}  ${w.name.padEnd(28)} ${t.name.padEnd(11)} ${r.tps === null ? '-'.padStart(9) : r.tps.toFixed(0).padStart(9)} tps  ${cpu === null ? ''.padStart(15) : `${cpu.toFixed(1).padStart(6)} µs CPU/tx`}  ${r.error ?? row.shares.at(-1)}`);
      }
    }
  }
  return [...rows.values()];
}

/** The same TCP forwarding (pgmaestro's Endpoint) in three places, against a simulated busy daemon loop. */
async function processModel(): Promise<{ name: string; tps: number | null; latencyMs: number | null }[]> {
  // plain JavaScript on the compiled code (npm ci builds dist/): a worker thread needs no loader
  const script = path.join(dir, 'forward.mjs');
  fs.writeFileSync(
    script,
    `
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { Endpoint } from ${JSON.stringify(path.join(repo, 'dist/router/tcp.js'))};
const [mode, port, target] = isMainThread ? process.argv.slice(2) : workerData;
async function forward(p) {
  const e = new Endpoint({ host: '127.0.0.1', port: Number(p) });
  await e.listen();
  e.setTarget({ name: 'primary', host: '127.0.0.1', port: Number(target) }, 'bench');
}
/** What a daemon's loop can be like: 4 ms of work every 20 ms (the archiver under write load, a monitor round). */
function busyDaemon() {
  setInterval(() => { const end = performance.now() + 4; while (performance.now() < end); }, 20);
}
if (!isMainThread) { await forward(port); parentPort.postMessage('ready'); }
else if (mode === 'process') { await forward(port); console.log('ready'); }
else if (mode === 'worker') {
  busyDaemon();
  const w = new Worker(new URL(import.meta.url), { workerData: [mode, port, target] });
  w.once('message', () => console.log('ready'));
} else { busyDaemon(); await forward(port); console.log('ready'); }
`,
  );
  const modes: [string, string, number][] = [
    ['own process (shipped)', 'process', 10603],
    ['worker thread, busy main loop', 'worker', 10604],
    ['on the busy daemon loop', 'shared', 10605],
  ];
  for (const [, mode, port] of modes) {
    const c = spawn(process.execPath, [script, mode, String(port), String(PORT)], { cwd: repo, stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(c);
    await new Promise<void>((resolve, reject) => {
      c.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      c.once('exit', () => reject(new Error(`forwarder ${mode} exited`)));
    });
  }
  // throughput with 8 clients, and the latency one client sees, rounds interleaved
  const tps = modes.map(() => [] as number[]);
  const latency = modes.map(() => [] as number[]);
  for (let round = 1; round <= rounds; round++) {
    modes.forEach(([name, , port], i) => {
      const r = pgbench(port, ['-S', '-c', '8', '-M', 'prepared']);
      if (r.tps !== null) tps[i].push(r.tps);
      const one = pgbench(port, ['-S', '-c', '1', '-M', 'prepared']);
      if (one.tps !== null) latency[i].push(1000 / one.tps);
      console.log(`round ${round}  process model: ${name.padEnd(32)} ${r.tps === null ? '-' : r.tps.toFixed(0).padStart(8)} tps (-c 8)   ${one.tps === null ? '-' : (1000 / one.tps).toFixed(3)} ms per transaction (-c 1)`);
    });
  }
  const out = modes.map(([name], i) => ({ name, tps: median(tps[i]), latencyMs: median(latency[i]) }));
  for (const o of out) console.log(`process model, medians: ${o.name.padEnd(32)} ${o.tps === null ? '-' : o.tps.toFixed(0).padStart(8)} tps (-c 8)   ${o.latencyMs === null ? '-' : o.latencyMs.toFixed(3)} ms (-c 1)`);
  return out;
}

const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
const ratio = (a: number | null | undefined, b: number | null | undefined) => (a && b ? (a / b).toFixed(2) : 'n/a');

if (!fs.existsSync(path.join(repo, 'dist', 'router', 'tcp.js'))) throw new Error('bench/router needs the compiled code: npm run build');
try {
  cli('init', dir, '--port-base', String(PORT));
  fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('wal_archive: true', 'wal_archive: false').replace('    shared_buffers: 128MB\n', '    shared_buffers: 128MB\n    synchronous_commit: "off"\n'));
  cli('up', '-c', file);
  password = fs.readFileSync(path.join(dir, 'secrets', 'superuser.password'), 'utf8').trim();
  const init = spawnSync(path.join(PG15, 'pgbench'), ['-i', '-q', '-s', String(scale), '-h', '127.0.0.1', '-p', String(PORT), '-U', 'postgres', 'postgres'], { env: { ...process.env, PGPASSWORD: password }, stdio: 'ignore' });
  if (init.status !== 0) throw new Error('pgbench -i failed');
  await new Promise((r) => setTimeout(r, 2000)); // the replicas replay the initial load
  await peers();
  console.log(`PostgreSQL 18 (embedded), pgbench scale ${scale}, ${seconds} s per run, -j 2, synchronous_commit off, ${os.cpus().length} cores, load average ${os.loadavg()[0].toFixed(1)}`);
  const rows = await throughput();
  const model = skipModel ? [] : await processModel();

  console.log(`\nmedians over ${rounds} rounds (tps; CPU of the proxy process per transaction; where the transactions ran, last round)`);
  for (const r of rows) {
    const t = median(r.tps);
    const c = median(r.cpu);
    console.log(`${r.workload.padEnd(28)} ${r.target.padEnd(11)} ${t === null ? '-'.padStart(9) : t.toFixed(0).padStart(9)} tps  ${c === null ? ''.padStart(6) : c.toFixed(1).padStart(6)} µs/tx  ${r.errors.length > 0 ? r.errors[0] : r.shares.at(-1)}`);
  }
  const tps = (w: string, t: string) => median(rows.find((r) => r.workload === w && r.target === t)?.tps ?? []);
  const cpu = (w: string, t: string) => median(rows.find((r) => r.workload === w && r.target === t)?.cpu ?? []);
  console.log('\nratios of medians (goals: rw and ro >= 1.0 x HAProxy; auto >= 1.0 x PgBouncer in transaction mode); in parentheses CPU per transaction, peer / ours');
  for (const w of [...new Set(rows.map((r) => r.workload))]) {
    const parts = [`rw/haproxy ${ratio(tps(w, 'rw'), tps(w, 'haproxy'))} (cpu ${ratio(cpu(w, 'haproxy'), cpu(w, 'rw'))})`];
    if (w.startsWith('select')) parts.push(`ro/haproxy-ro ${ratio(tps(w, 'ro'), tps(w, 'haproxy-ro'))} (cpu ${ratio(cpu(w, 'haproxy-ro'), cpu(w, 'ro'))})`);
    parts.push(`auto/pgbouncer ${ratio(tps(w, 'auto'), tps(w, 'pgbouncer'))} (cpu ${ratio(cpu(w, 'pgbouncer'), cpu(w, 'auto'))})`, `rw/direct ${ratio(tps(w, 'rw'), tps(w, 'direct'))}`, `auto/direct ${ratio(tps(w, 'auto'), tps(w, 'direct'))}`);
    console.log(`${w.padEnd(28)} ${parts.join('   ')}`);
  }
  if (model.length > 0) {
    console.log(`process model, throughput: worker/own process ${ratio(model[1].tps, model[0].tps)}, shared loop/own process ${ratio(model[2].tps, model[0].tps)}`);
    console.log(`process model, latency (-c 1): worker/own process ${ratio(model[1].latencyMs, model[0].latencyMs)}, shared loop/own process ${ratio(model[2].latencyMs, model[0].latencyMs)}`);
  }
} finally {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  try {
    cli('down', '-c', file);
  } catch {
    // best effort
  }
  fs.rmSync(dir, { recursive: true, force: true });
}
