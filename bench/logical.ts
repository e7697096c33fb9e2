/**
 * bench/logical: on Debian's PostgreSQL 15, a primary, a streaming replica
 * and a query node.
 *  1. initial copy of pgbench_accounts (pgbench -i -s SCALE) to the query
 *     node by `pgmaestro logical apply` (schema copy, subscription, copy, ready)
 *     against `pg_dump -t pgbench_accounts | psql` of the same table into an
 *     empty database of the same query node (Debian 15 tools);
 *  2. apply lag under `pgbench -c 4 -T SECONDS` writes: the subscription's
 *     replay lag, sampled every 250 ms, median and p99, against the physical
 *     replica's in the same run.
 * Prints figures and ratios; asserts nothing.
 *
 *   npx tsx bench/logical.ts [--scale 50] [--seconds 60] [--port 2400]
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const PG15 = '/usr/lib/postgresql/15/bin';
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const scale = arg('scale', 50);
const seconds = arg('seconds', 60);
const port = arg('port', 2400); // node1, node2 = +1, query1 = +2; endpoints +1000, console +2000

const cli = (...args: string[]) => execFileSync(process.execPath, ['--import', 'tsx', path.join(repo, 'src/cli/main.ts'), ...args], { cwd: repo, stdio: ['ignore', 'pipe', 'inherit'] }).toString();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-bench-logical-'));
fs.chmodSync(dir, 0o755);
const config = path.join(dir, 'pgmaestro.yaml');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.99))] ?? NaN;

try {
  cli('init', dir, '--replicas', '1', '--port-base', String(port), '--bin-dir', PG15);
  fs.writeFileSync(config, fs.readFileSync(config, 'utf8').replace('wal_archive: true', 'wal_archive: false'));
  fs.appendFileSync(config, `  - name: query1\n    kind: query\n    port: ${port + 2}\n    data_dir: data/query1\n`);
  fs.appendFileSync(
    config,
    `logical:\n  publications:\n    - name: accounts\n      database: bench\n      tables: [public.pgbench_accounts]\n  subscriptions:\n    - name: accounts_query\n      publication: accounts\n      to: query1\n`,
  );
  spawnSync(process.execPath, ['--import', 'tsx', path.join(repo, 'src/cli/main.ts'), 'up', '-c', config], { cwd: repo, stdio: 'ignore' }); // refuses the missing database: expected
  const passfile = path.join(dir, 'secrets', 'superuser.pgpass');
  const env = { ...process.env, PGPASSFILE: passfile };
  const password = fs.readFileSync(path.join(dir, 'secrets', 'superuser.password'), 'utf8').trim();
  const sql = async (p: number, db: string, text: string) => {
    const c = new pg.Client({ host: '127.0.0.1', port: p, user: 'postgres', password, database: db, options: '-c default_transaction_read_only=off' });
    await c.connect();
    try {
      return (await c.query(text)).rows;
    } finally {
      await c.end();
    }
  };
  await sql(port, 'postgres', 'CREATE DATABASE bench');
  console.log(`pgbench -i -s ${scale} on PostgreSQL 15 (port ${port})...`);
  execFileSync(path.join(PG15, 'pgbench'), ['-i', '-q', '-s', String(scale), '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'bench'], { env, stdio: 'ignore' });
  const size = Number((await sql(port, 'bench', "SELECT pg_total_relation_size('pgbench_accounts') AS s"))[0].s);

  // 1. the initial copy: logical apply vs pg_dump | psql into the same query node
  let t0 = performance.now();
  const out = cli('logical', 'apply', '-c', config, '--timeout', '1h');
  const ours = performance.now() - t0;
  const copied = Number(/initial copy done, .* after ([\d.]+) s/.exec(out)?.[1] ?? NaN);
  await sql(port + 2, 'postgres', 'CREATE DATABASE peer');
  t0 = performance.now();
  const dump = spawn(path.join(PG15, 'pg_dump'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-t', 'public.pgbench_accounts', '--no-owner', '--no-privileges', 'bench'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const load = spawn(path.join(PG15, 'psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(port + 2), '-U', 'postgres', '-d', 'peer'], {
    env: { ...env, PGOPTIONS: '-c default_transaction_read_only=off' },
    stdio: ['pipe', 'ignore', 'inherit'],
  });
  dump.stdout.pipe(load.stdin);
  const codes = await Promise.all([new Promise((r) => dump.on('close', r)), new Promise((r) => load.on('close', r))]);
  const peer = performance.now() - t0;
  if (codes.some((c) => c !== 0)) throw new Error(`pg_dump | psql failed (${codes.join(', ')})`);
  console.log(`initial copy of pgbench_accounts (${(size / 1048576).toFixed(0)} MiB with its primary key, ${scale * 100000} rows):`);
  console.log(`  pgmaestro logical apply: ${(ours / 1000).toFixed(1)} s in all (schema copy, subscription, copy until ready: ${copied.toFixed(1)} s)`);
  console.log(`  pg_dump | psql (15):     ${(peer / 1000).toFixed(1)} s`);
  console.log(`  ratio apply / pg_dump|psql: ${(ours / peer).toFixed(2)}`);

  // 2. apply lag under write load, beside the physical replica's
  console.log(`pgbench -c 4 -T ${seconds} on the primary; sampling lag every 250 ms...`);
  const bench = spawn(path.join(PG15, 'pgbench'), ['-c', '4', '-T', String(seconds), '-n', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'bench'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let pgbenchOut = '';
  bench.stdout.on('data', (d) => (pgbenchOut += d));
  const logicalLag: number[] = [];
  const physicalLag: number[] = [];
  const mon = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' });
  await mon.connect();
  let running = true;
  bench.on('close', () => (running = false));
  while (running) {
    const r = await mon.query<{ application_name: string; lag: number | null }>('SELECT application_name, coalesce(EXTRACT(epoch FROM replay_lag), 0)::float8 AS lag FROM pg_stat_replication');
    for (const x of r.rows) (x.application_name === 'accounts_query' ? logicalLag : x.application_name === 'node2' ? physicalLag : []).push(Number(x.lag));
    await new Promise((res) => setTimeout(res, 250));
  }
  await mon.end();
  const tps = /tps = ([\d.]+)/.exec(pgbenchOut)?.[1] ?? '?';
  const f = (x: number) => `${(x * 1000).toFixed(1)} ms`;
  console.log(`  pgbench: ${tps} tps; ${logicalLag.length} samples`);
  console.log(`  logical apply lag (query node): median ${f(median(logicalLag))}, p99 ${f(p99(logicalLag))}`);
  console.log(`  physical replay lag (replica):  median ${f(median(physicalLag))}, p99 ${f(p99(physicalLag))}`);
  console.log(`  ratio logical / physical: median ${(median(logicalLag) / median(physicalLag)).toFixed(2)}, p99 ${(p99(logicalLag) / p99(physicalLag)).toFixed(2)}`);
} finally {
  try {
    cli('down', '-c', config);
  } catch {
    // best effort
  }
  fs.rmSync(dir, { recursive: true, force: true });
}
