/**
 * bench/clone: time to clone a replica with pgmaestro's BASE_BACKUP client
 * against Debian's pg_basebackup, same PostgreSQL 15 server, same data
 * (pgbench -i -s SCALE), alternating runs. Prints figures; asserts nothing.
 *
 *   npx tsx bench/clone.ts [--scale 50] [--runs 3]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ReplicationConnection } from '../src/protocol/connection.js';
import { cloneInto } from '../src/protocol/clone.js';

const PG15 = '/usr/lib/postgresql/15/bin';
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const scale = arg('scale', 50);
const runs = arg('runs', 3);
const port = arg('port', 23750); // below the ephemeral range (32768+), with the daemon's endpoint at +1000

const cli = (...args: string[]) => execFileSync(process.execPath, ['--import', 'tsx', path.join(repo, 'src/cli/main.ts'), ...args], { cwd: repo, stdio: ['ignore', 'pipe', 'inherit'] }).toString();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-bench-clone-'));
fs.chmodSync(dir, 0o755);
const config = path.join(dir, 'pgmaestro.yaml');

try {
  cli('init', dir, '--replicas', '0', '--port-base', String(port), '--bin-dir', PG15);
  cli('up', '-c', config);
  const superPass = path.join(dir, 'secrets', 'superuser.pgpass');
  const replPass = fs.readFileSync(path.join(dir, 'secrets', 'replication.password'), 'utf8').trim();
  console.log(`pgbench -i -s ${scale} on PostgreSQL 15 (port ${port})...`);
  execFileSync(path.join(PG15, 'pgbench'), ['-i', '-q', '-s', String(scale), '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'postgres'], {
    env: { ...process.env, PGPASSFILE: superPass },
    stdio: 'ignore',
  });

  const replPassfile = path.join(dir, 'repl.pgpass');
  fs.writeFileSync(replPassfile, `*:*:*:replicator:${replPass}\n`, { mode: 0o600 });
  const ours: number[] = [];
  const peer: number[] = [];
  let bytes = 0;
  for (let i = 0; i < runs; i++) {
    const a = path.join(dir, `ours-${i}`);
    const t0 = performance.now();
    const conn = await ReplicationConnection.connect({ host: '127.0.0.1', port, user: 'replicator', password: replPass, replication: 'true' });
    const r = await cloneInto(conn, { targetDir: a, tablespaceTarget: (oid) => path.join(dir, `ours-${i}-ts`, String(oid)), wal: true, checkpoint: 'fast', label: 'bench' });
    await conn.close();
    ours.push(performance.now() - t0);
    bytes = r.bytes;
    fs.rmSync(a, { recursive: true, force: true });

    const b = path.join(dir, `peer-${i}`);
    const t1 = performance.now();
    const p = spawnSync(path.join(PG15, 'pg_basebackup'), ['-D', b, '-h', '127.0.0.1', '-p', String(port), '-U', 'replicator', '-X', 'fetch', '-c', 'fast', '-Fp', '--no-manifest'], {
      env: { ...process.env, PGPASSFILE: replPassfile },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    if (p.status !== 0) throw new Error('pg_basebackup failed');
    peer.push(performance.now() - t1);
    fs.rmSync(b, { recursive: true, force: true });
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
  const mo = median(ours);
  const mp = median(peer);
  console.log(`data: ${(bytes / 1048576).toFixed(0)} MiB (pgbench scale ${scale}), ${runs} runs each, median`);
  console.log(`pgmaestro clone:  ${(mo / 1000).toFixed(2)} s  (${(bytes / 1048576 / (mo / 1000)).toFixed(0)} MiB/s)  runs: ${ours.map((x) => (x / 1000).toFixed(2)).join(', ')}`);
  console.log(`pg_basebackup 15: ${(mp / 1000).toFixed(2)} s  (${(bytes / 1048576 / (mp / 1000)).toFixed(0)} MiB/s)  runs: ${peer.map((x) => (x / 1000).toFixed(2)).join(', ')}`);
  console.log(`ratio pgmaestro / pg_basebackup: ${(mo / mp).toFixed(2)}`);
} finally {
  try {
    cli('down', '-c', config);
  } catch {
    // best effort
  }
  fs.rmSync(dir, { recursive: true, force: true });
}
