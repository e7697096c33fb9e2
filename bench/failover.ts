/**
 * bench/failover: over N runs (default 10) per mode (async, synchronous quorum 1),
 * SIGKILL the primary under pgbench write load through the endpoint and measure
 *  - the time from the SIGKILL to the first successful write through the endpoint;
 *  - acknowledged transactions lost (ids acknowledged to our writer, missing after).
 * The old primary is rejoined between runs. Prints median and worst; asserts nothing.
 *   npx tsx bench/failover.ts [--runs 10] [--timeout 3s]
 * With --multi-host: host death on three hosts against Patroni (bench/failover-multihost.ts, root only).
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const PG15 = '/usr/lib/postgresql/15/bin';
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name: string, d: string) => (process.argv.includes(`--${name}`) ? process.argv[process.argv.indexOf(`--${name}`) + 1] : d);
const runs = Number(arg('runs', '10'));
const timeout = arg('timeout', '3s');

const cli = (...args: string[]) => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(repo, 'src/cli/main.ts'), ...args], { cwd: repo, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`pgmaestro ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};

interface Status {
  primary: string;
  nodes: { name: string; pid: number | null; port: number; role: string }[];
}

async function measure(mode: 'async' | 'quorum 1', port: number): Promise<{ times: number[]; lost: number[] }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-bench-fo-'));
  fs.chmodSync(dir, 0o755);
  cli('init', dir, '--port-base', String(port));
  const file = path.join(dir, 'pgmaestro.yaml');
  const ha = `ha:\n  restart_first: false\n  failover_timeout: ${timeout}\n  synchronous: ${mode === 'async' ? 'off' : 'quorum 1'}\n\nnodes:\n`;
  fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('wal_archive: true', 'wal_archive: false').replace('\nnodes:\n', `\n${ha}`));
  const endpoint = port + 1000;
  const times: number[] = [];
  const lost: number[] = [];
  try {
    cli('up', '-c', file);
    const password = fs.readFileSync(path.join(dir, 'secrets', 'superuser.password'), 'utf8').trim();
    const passfile = path.join(dir, 'secrets', 'superuser.pgpass');
    const sql = async (p: number, q: string, params: unknown[] = []) => {
      const c = new pg.Client({ host: '127.0.0.1', port: p, user: 'postgres', password, database: 'postgres', connectionTimeoutMillis: 10_000 });
      c.on('error', () => undefined);
      await c.connect();
      try {
        return (await c.query(q, params)).rows;
      } finally {
        await c.end().catch(() => undefined);
      }
    };
    await sql(port, 'CREATE TABLE acked (id bigint primary key)');
    spawnSync(path.join(PG15, 'pgbench'), ['-i', '-q', '-s', '5', '-h', '127.0.0.1', '-p', String(endpoint), '-U', 'postgres', 'postgres'], { env: { ...process.env, PGPASSFILE: passfile }, stdio: 'ignore' });
    let id = 0;
    for (let run = 0; run < runs; run++) {
      const load = spawn(path.join(PG15, 'pgbench'), ['-c', '4', '-T', '120', '-n', '-h', '127.0.0.1', '-p', String(endpoint), '-U', 'postgres', 'postgres'], { env: { ...process.env, PGPASSFILE: passfile }, stdio: 'ignore' });
      const acked: number[] = [];
      let lastAck = 0;
      let lastPort = 0;
      let stop = false;
      const writer = (async () => {
        while (!stop) {
          const mine = ++id;
          try {
            const [row] = await sql(endpoint, 'INSERT INTO acked VALUES ($1) RETURNING inet_server_port() AS p', [mine]);
            acked.push(mine);
            lastAck = Date.now();
            lastPort = Number(row.p);
          } catch {
            await new Promise((r) => setTimeout(r, 20));
          }
        }
      })();
      await new Promise((r) => setTimeout(r, 2000));
      const st = JSON.parse(cli('status', '-c', file, '--json')) as Status;
      const old = st.nodes.find((n) => n.name === st.primary)!;
      const killedAt = Date.now();
      process.kill(old.pid!, 'SIGKILL');
      // a backend of the killed postmaster may still finish a commit: wait for one on another server
      while ((lastAck <= killedAt || lastPort === old.port) && Date.now() - killedAt < 60_000) await new Promise((r) => setTimeout(r, 20));
      const t = (lastAck - killedAt) / 1000;
      stop = true;
      await writer;
      load.kill('SIGINT');
      const after = JSON.parse(cli('status', '-c', file, '--json')) as Status;
      const newPort = after.nodes.find((n) => n.name === after.primary)!.port;
      const present = new Set((await sql(newPort, 'SELECT id FROM acked WHERE id = ANY($1::bigint[])', [acked])).map((r) => Number(r.id)));
      const l = acked.filter((x) => !present.has(x)).length;
      times.push(t);
      lost.push(l);
      console.log(`  ${mode} run ${run + 1}: first write ${t.toFixed(2)} s after SIGKILL of ${old.name}; ${acked.length} acknowledged, ${l} lost`);
      cli('rejoin', old.name, '-c', file);
    }
  } finally {
    try {
      cli('down', '-c', file);
    } catch {
      // best effort
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return { times, lost };
}

if (process.argv.includes('--multi-host')) {
  const { benchMultiHost } = await import('./failover-multihost.js');
  await benchMultiHost(runs);
  process.exit(0);
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const median = (xs: number[]) => sorted(xs)[Math.floor(xs.length / 2)];
const results: [string, { times: number[]; lost: number[] }][] = [];
results.push(['async', await measure('async', 23600)]);
results.push(['quorum 1', await measure('quorum 1', 23700)]);
console.log(`\nfailover_timeout ${timeout}, ${runs} runs each, pgbench -c 4 write load through the endpoint:`);
for (const [mode, r] of results) {
  console.log(`  ${mode.padEnd(8)}: SIGKILL -> first write median ${median(r.times).toFixed(2)} s, worst ${Math.max(...r.times).toFixed(2)} s; acknowledged commits lost median ${median(r.lost)}, worst ${Math.max(...r.lost)}`);
}
const patroni = spawnSync('patroni', ['--version']).status === 0;
console.log(patroni ? '  patroni: installed, but not set up by this bench; not measured' : '  patroni: not installed (Debian patroni + etcd-server); not measured');
