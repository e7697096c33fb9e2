/**
 * bench/backup: on a pgbench database (default -s 100),
 *  - full backup time, pgmaestro vs pg_basebackup of the same version (PostgreSQL 15), and pgbackrest when installed;
 *  - on PostgreSQL 18: incremental size and time after changing ~1% of rows, vs the full;
 *  - restore time of full + incremental (pgmaestro's own reconstruction).
 * Prints figures and ratios; asserts nothing.   npx tsx bench/backup.ts [--scale 100]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PG15 = '/usr/lib/postgresql/15/bin';
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argN = (name: string, d: number) => (process.argv.includes(`--${name}`) ? Number(process.argv[process.argv.indexOf(`--${name}`) + 1]) : d);
const scale = argN('scale', 100);
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-bench-backup-'));
fs.chmodSync(root, 0o755);

const cli = (...args: string[]) => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(repo, 'src/cli/main.ts'), ...args], { cwd: repo, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`pgmaestro ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const timed = <T>(f: () => T): [T, number] => {
  const t = performance.now();
  const v = f();
  return [v, (performance.now() - t) / 1000];
};
const du = (dir: string) => Number(execFileSync('du', ['-sb', dir]).toString().split('\t')[0]);
const mib = (b: number) => `${(b / 1048576).toFixed(0)} MiB`;

function cluster(name: string, port: number, binDir?: string): { file: string; passfile: string; dir: string } {
  const dir = path.join(root, name);
  cli('init', dir, '--replicas', '0', '--port-base', String(port), ...(binDir ? ['--bin-dir', binDir] : []));
  const file = path.join(dir, 'pgmaestro.yaml');
  fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('wal_archive: true', 'wal_archive: false'));
  cli('up', '-c', file);
  const passfile = path.join(dir, 'secrets', 'superuser.pgpass');
  const t0 = performance.now();
  execFileSync(path.join(PG15, 'pgbench'), ['-i', '-q', '-s', String(scale), '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'postgres'], { env: { ...process.env, PGPASSFILE: passfile }, stdio: 'ignore' });
  console.log(`${name}: pgbench -i -s ${scale} in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  return { file, passfile, dir };
}

const clusters: string[] = [];
try {
  // 1. full backups on PostgreSQL 15: pgmaestro vs pg_basebackup (vs pgbackrest)
  const c15 = cluster('pg15', 23800, PG15);
  clusters.push(c15.file);
  const [full15json, ours] = timed(() => cli('backup', 'full', '-c', c15.file, '--json'));
  const full15 = JSON.parse(full15json) as { size_bytes: number };
  const replPass = fs.readFileSync(path.join(c15.dir, 'secrets', 'replication.password'), 'utf8').trim();
  const replPassfile = path.join(root, 'repl.pgpass');
  fs.writeFileSync(replPassfile, `*:*:*:replicator:${replPass}\n`, { mode: 0o600 });
  const [, peer] = timed(() =>
    execFileSync(path.join(PG15, 'pg_basebackup'), ['-D', path.join(root, 'pgbb'), '-h', '127.0.0.1', '-p', '23800', '-U', 'replicator', '-X', 'fetch', '-c', 'fast', '-Fp'], { env: { ...process.env, PGPASSFILE: replPassfile }, stdio: 'ignore' }),
  );
  console.log(`\nfull backup, PostgreSQL 15, ${mib(full15.size_bytes)}:`);
  console.log(`  pgmaestro backup full: ${ours.toFixed(2)} s`);
  console.log(`  pg_basebackup 15:      ${peer.toFixed(2)} s`);
  console.log(`  ratio pgmaestro / pg_basebackup: ${(ours / peer).toFixed(2)}`);
  if (spawnSync('pgbackrest', ['version']).status === 0) {
    console.log('  pgbackrest: installed, but configuring its stanza is outside this bench; not measured');
  } else {
    console.log('  pgbackrest: not installed (apt-get install pgbackrest); not measured');
  }
  cli('down', '-c', c15.file);

  // 2. incremental on PostgreSQL 18 after changing ~1% of the rows
  const c18 = cluster('pg18', 23900);
  clusters.push(c18.file);
  const [fullJson, tFull] = timed(() => cli('backup', 'full', '-c', c18.file, '--json'));
  const full = JSON.parse(fullJson) as { size_bytes: number; stored_bytes: number };
  const rows = scale * 100000;
  execFileSync(path.join(PG15, 'psql'), ['-q', '-h', '127.0.0.1', '-p', '23900', '-U', 'postgres', '-c', `UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= ${rows / 100}`, 'postgres'], { env: { ...process.env, PGPASSFILE: c18.passfile } });
  const [incrJson, tIncr] = timed(() => cli('backup', 'incr', '-c', c18.file, '--json'));
  const incr = JSON.parse(incrJson) as { size_bytes: number };
  console.log(`\nPostgreSQL 18, ${rows} accounts, 1% updated (the first 1% of aids: a contiguous 1% of the pages):`);
  console.log(`  full:        ${mib(full.size_bytes)} in ${tFull.toFixed(2)} s`);
  console.log(`  incremental: ${mib(incr.size_bytes)} in ${tIncr.toFixed(2)} s (size ratio incr / full: ${(incr.size_bytes / full.size_bytes).toFixed(3)}, time ratio ${(tIncr / tFull).toFixed(2)})`);

  // 3. restore of full + incremental (reconstruction included; recovery not started)
  const target = path.join(root, 'restored');
  const [, tRestore] = timed(() => cli('restore', '-c', c18.file, '--target-dir', target, '--port', '23950', '--latest'));
  console.log(`  restore full + incremental: ${tRestore.toFixed(2)} s for ${mib(du(target))}`);
} finally {
  for (const f of clusters) {
    try {
      cli('down', '-c', f);
    } catch {
      // best effort
    }
  }
  fs.rmSync(root, { recursive: true, force: true });
}
