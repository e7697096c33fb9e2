/**
 * bench/wal-lag: how far the WAL archive trails the primary's flushed WAL
 * under `pgbench -c 4` write load, sampled every 100 ms for --seconds (default
 * 60): the archive's durable position (complete segments and the flushed
 * segment in progress, as the archiver records it) against the primary's
 * pg_current_wal_flush_lsn(). Lag in seconds is measured after the fact: for
 * each sample, how long until the archive held the position the primary had
 * then. The peer, in the same run against the same primary: pg_receivewal
 * --synchronous (PostgreSQL 15), its flush position from pg_stat_replication.
 * Prints median and p99 of both and the ratio; asserts nothing.
 *   npx tsx bench/wal-lag.ts [--seconds 60]
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const PG15 = '/usr/lib/postgresql/15/bin';
const PORT = 13700;
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argN = (name: string, d: number) => (process.argv.includes(`--${name}`) ? Number(process.argv[process.argv.indexOf(`--${name}`) + 1]) : d);
const seconds = argN('seconds', 60);
const cli = (...args: string[]) => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(repo, 'src/cli/main.ts'), ...args], { cwd: repo, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`pgmaestro ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const lsn = (t: string) => {
  const [h, l] = t.split('/');
  return BigInt(`0x${h}`) * 0x100000000n + BigInt(`0x${l}`);
};
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))];

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-bench-wallag-'));
fs.chmodSync(dir, 0o755);
const file = path.join(dir, 'pgmaestro.yaml');
const children: ReturnType<typeof spawn>[] = [];
try {
  cli('init', dir, '--replicas', '0', '--port-base', String(PORT), '--bin-dir', PG15);
  fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('    max_connections: 100', '    max_connections: 100\n    max_slot_wal_keep_size: 4GB'));
  cli('up', '-c', file);
  const passfile = path.join(dir, 'secrets', 'superuser.pgpass');
  const env = { ...process.env, PGPASSFILE: passfile };
  spawnSync(path.join(PG15, 'pgbench'), ['-i', '-q', '-s', '10', '-h', '127.0.0.1', '-p', String(PORT), '-U', 'postgres', 'postgres'], { env, stdio: 'ignore' });
  const password = fs.readFileSync(path.join(dir, 'secrets', 'superuser.password'), 'utf8').trim();
  const db = new pg.Client({ host: '127.0.0.1', port: PORT, user: 'postgres', password, database: 'postgres' });
  await db.connect();

  // the peer: pg_receivewal --synchronous on its own slot, as the replication user
  const recv = path.join(dir, 'receivewal');
  fs.mkdirSync(recv);
  const replPass = path.join(dir, 'secrets', 'replication.pgpass');
  spawnSync(path.join(PG15, 'pg_receivewal'), ['--create-slot', '-S', 'bench_receivewal', '-h', '127.0.0.1', '-p', String(PORT), '-U', 'replicator', '-w'], { env: { ...process.env, PGPASSFILE: replPass } });
  children.push(spawn(path.join(PG15, 'pg_receivewal'), ['-D', recv, '-S', 'bench_receivewal', '--synchronous', '-h', '127.0.0.1', '-p', String(PORT), '-U', 'replicator', '-w'], { env: { ...process.env, PGPASSFILE: replPass }, stdio: 'ignore' }));
  const load = spawn(path.join(PG15, 'pgbench'), ['-c', '4', '-T', String(seconds), '-h', '127.0.0.1', '-p', String(PORT), '-U', 'postgres', 'postgres'], { env, stdio: 'ignore' });
  children.push(load);
  const loadDone = new Promise((r) => load.once('exit', r));

  const samples: { t: number; primary: bigint; ours: bigint; peer: bigint }[] = [];
  const state = path.join(dir, 'state', 'archiver.json');
  const started = Date.now();
  while (Date.now() - started < seconds * 1000) {
    const r = await db.query<{ p: string; r: string | null }>("SELECT pg_current_wal_flush_lsn()::text AS p, (SELECT flush_lsn::text FROM pg_stat_replication WHERE application_name = 'pg_receivewal') AS r");
    let ours = 0n;
    try {
      ours = lsn((JSON.parse(fs.readFileSync(state, 'utf8')) as { archived_lsn: string }).archived_lsn);
    } catch {
      // not written yet
    }
    samples.push({ t: Date.now(), primary: lsn(r.rows[0].p), ours, peer: r.rows[0].r ? lsn(r.rows[0].r) : 0n });
    await new Promise((res) => setTimeout(res, 100));
  }
  await loadDone;
  await db.end();

  const lagSeconds = (pick: (s: (typeof samples)[number]) => bigint) => {
    const out: number[] = [];
    for (const [i, s] of samples.entries()) {
      const reached = samples.slice(i).find((x) => pick(x) >= s.primary);
      if (reached) out.push((reached.t - s.t) / 1000);
    }
    return out;
  };
  const bytes = (pick: (s: (typeof samples)[number]) => bigint) => samples.map((s) => Number(s.primary > pick(s) ? s.primary - pick(s) : 0n));
  const ours = lagSeconds((s) => s.ours);
  const peer = lagSeconds((s) => s.peer);
  const ob = bytes((s) => s.ours);
  const pb = bytes((s) => s.peer);
  console.log(`WAL archive lag under pgbench -c 4 for ${seconds} s (PostgreSQL 15), ${samples.length} samples every 100 ms:`);
  console.log(`  pgmaestro archive (wal_flush_interval 1s): median ${pct(ours, 50).toFixed(2)} s, p99 ${pct(ours, 99).toFixed(2)} s; bytes median ${pct(ob, 50)}, p99 ${pct(ob, 99)}`);
  console.log(`  pg_receivewal --synchronous:              median ${pct(peer, 50).toFixed(2)} s, p99 ${pct(peer, 99).toFixed(2)} s; bytes median ${pct(pb, 50)}, p99 ${pct(pb, 99)}`);
  console.log(`  ratio pgmaestro / pg_receivewal (p99 seconds): ${(pct(ours, 99) / Math.max(pct(peer, 99), 0.001)).toFixed(2)}`);
} finally {
  for (const c of children) c.kill('SIGTERM');
  try {
    cli('down', '-c', file);
  } catch {
    // best effort
  }
  fs.rmSync(dir, { recursive: true, force: true });
}
