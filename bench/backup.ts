/**
 * bench/backup, in one run (figures and ratios; asserts nothing):
 *
 * 1. PostgreSQL 15, `pgbench -i -s SCALE` (default 100): pgmaestro's full backup
 *    uncompressed against `pg_basebackup -Ft`; lz4 and zstd at process_max 1
 *    and 2 against pgBackRest 2.45 (Debian's) with compress-type none, lz4 and
 *    zst at process-max 1 and 2 — time and stored size; then restore against
 *    `pgbackrest restore` (lz4, 2 processes).
 * 2. PostgreSQL 18 (embedded), `pgbench -i -s SCALE18` (default 50): full,
 *    incremental after ~1 % and after ~30 % of the pages changed, the rebuild
 *    of full + incremental (restore without start), and a plain `cp -r` of the
 *    data directory as the physical limit. PostgreSQL 17/18's own client tools
 *    are not installed here, so the comparison point for the incremental and
 *    the rebuild is issue 19's figures for PostgreSQL 17's tools on this kind
 *    of machine (pg_basebackup --incremental 0.5-1.2 s, pg_combinebackup
 *    2.7-4.0 s on -s 50).
 *
 *   npx tsx bench/backup.ts [--scale 100] [--scale18 50] [--skip15] [--skip18]
 * Ports 13600 (15) and 13610 (18).
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
const scale18 = argN('scale18', 50);
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pgm-bench-backup-'));
fs.chmodSync(root, 0o755);

const cli = (...args: string[]) => {
  const r = spawnSync(process.execPath, [path.join(repo, 'dist/cli/main.js'), ...args], { cwd: repo, encoding: 'utf8' });
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
const asPostgres = (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}) => {
  const r = spawnSync('runuser', ['-u', 'postgres', '--', 'env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), cmd, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}${r.stdout}`);
  return r.stdout;
};
const dropCaches = () => {
  try {
    execFileSync('sync');
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
  } catch {
    // not root or not allowed: caches stay warm for everyone alike
  }
};

interface Cluster {
  file: string;
  dir: string;
  passfile: string;
  dataDir: string;
}
function cluster(name: string, port: number, s: number, binDir?: string, extra = ''): Cluster {
  const dir = path.join(root, name);
  cli('init', dir, '--replicas', '0', '--port-base', String(port), ...(binDir ? ['--bin-dir', binDir] : []));
  const file = path.join(dir, 'pgmaestro.yaml');
  fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('wal_archive: true', 'wal_archive: false').replace('    max_connections: 100', `    max_connections: 100\n    max_slot_wal_keep_size: 64MB${extra}`));
  cli('up', '-c', file);
  const passfile = path.join(dir, 'secrets', 'superuser.pgpass');
  const t0 = performance.now();
  execFileSync(path.join(PG15, 'pgbench'), ['-i', '-q', '-s', String(s), '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'postgres'], { env: { ...process.env, PGPASSFILE: passfile }, stdio: 'ignore' });
  psql(port, passfile, 'CHECKPOINT');
  console.log(`${name}: pgbench -i -s ${s} in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  return { file, dir, passfile, dataDir: path.join(dir, 'data', 'node1') };
}
function psql(port: number, passfile: string, sql: string): string {
  return execFileSync(path.join(PG15, 'psql'), ['-qAt', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-c', sql, 'postgres'], { env: { ...process.env, PGPASSFILE: passfile } }).toString();
}
function setBackup(c: Cluster, compression: string, processMax: number): void {
  const text = fs.readFileSync(c.file, 'utf8').replace(/compression: \S+/, `compression: ${compression}`).replace(/\n  process_max: \d+/, '');
  fs.writeFileSync(c.file, text.replace(/(\n  compression: \S+)/, `$1\n  process_max: ${processMax}`));
}
function ourFull(c: Cluster, type = 'full'): { secs: number; stored: number; size: number; id: string } {
  dropCaches();
  const [out, secs] = timed(() => cli('backup', type, '-c', c.file, '--json'));
  const b = JSON.parse(out) as { id: string; stored_bytes: number; size_bytes: number };
  return { secs, stored: b.stored_bytes, size: b.size_bytes, id: b.id };
}
const ratio = (a: number, b: number) => (a / b).toFixed(2);
const load = () => os.loadavg().map((x) => x.toFixed(1)).join(' ');

const clusters: string[] = [];
try {
  if (!process.argv.includes('--skip15')) {
    // 1. PostgreSQL 15: pgmaestro vs pg_basebackup and pgBackRest
    const sock = path.join(root, 'sock');
    fs.mkdirSync(sock, { mode: 0o777 });
    fs.chmodSync(sock, 0o777);
    const c = cluster('pg15', 13600, scale, PG15, `\n    unix_socket_directories: '${sock}'`);
    clusters.push(c.file);
    console.log(`\nPostgreSQL 15, pgbench -i -s ${scale} (${mib(du(c.dataDir))} data directory), load ${load()}; caches dropped before each run:`);

    setBackup(c, 'none', 2);
    const replPass = path.join(c.dir, 'secrets', 'replication.pgpass');
    const pgbb = path.join(root, 'pgbb');
    const bb = () => {
      dropCaches();
      const [, t] = timed(() => {
        execFileSync(path.join(PG15, 'pg_basebackup'), ['-D', pgbb, '-Ft', '-X', 'fetch', '-c', 'fast', '-h', '127.0.0.1', '-p', '13600', '-U', 'replicator', '-w'], { env: { ...process.env, PGPASSFILE: replPass }, stdio: 'ignore' });
      });
      const size = du(pgbb);
      fs.rmSync(pgbb, { recursive: true, force: true });
      return { secs: t, size };
    };
    // alternating, twice each: the pair of each round ran under the same load
    const rounds: { ours: ReturnType<typeof ourFull>; peer: ReturnType<typeof bb> }[] = [];
    for (let i = 0; i < 2; i++) rounds.push({ ours: ourFull(c), peer: bb() });
    const none = rounds.map((r) => r.ours).sort((a, b) => a.secs - b.secs)[0];
    const tBb = Math.min(...rounds.map((r) => r.peer.secs));
    const bbSize = rounds[0].peer.size;
    console.log(`  uncompressed full: pgmaestro ${rounds.map((r) => r.ours.secs.toFixed(2)).join(' / ')} s (${mib(none.stored)}) vs pg_basebackup -Ft ${rounds.map((r) => r.peer.secs.toFixed(2)).join(' / ')} s (${mib(bbSize)}): best-of-two ratio ${ratio(none.secs, tBb)}`);

    // pgBackRest: runs as the PostgreSQL OS user, reads the data directory itself
    const br = path.join(root, 'pgbackrest');
    fs.mkdirSync(br, { recursive: true });
    execFileSync('chown', ['-R', 'postgres:postgres', br]);
    const conf = path.join(br, 'pgbackrest.conf');
    fs.writeFileSync(conf, `[global]\nrepo1-path=${br}/repo\nlog-level-console=warn\nlog-level-file=off\nstart-fast=y\narchive-check=n\nrepo1-retention-full=99\n\n[bench]\npg1-path=${c.dataDir}\npg1-port=13600\npg1-socket-path=${sock}\npg1-user=postgres\n`);
    fs.chmodSync(conf, 0o644);
    const pgbr = (...args: string[]) => asPostgres('pgbackrest', [`--config=${conf}`, '--stanza=bench', ...args], { PGPASSFILE: c.passfile });
    fs.chmodSync(path.join(c.dir, 'secrets'), 0o755);
    psql(13600, c.passfile, "ALTER SYSTEM SET archive_mode = 'on'");
    psql(13600, c.passfile, "ALTER SYSTEM SET archive_command = '/bin/true'");
    cli('down', '-c', c.file);
    cli('up', '-c', c.file);
    fs.appendFileSync(path.join(c.dataDir, 'pg_hba.conf'), 'local all postgres scram-sha-256\n');
    psql(13600, c.passfile, 'SELECT pg_reload_conf()');
    pgbr('stanza-create');
    const peer: Record<string, { secs: number; size: number }> = {};
    for (const type of ['none', 'lz4', 'zst']) {
      for (const p of [1, 2]) {
        dropCaches();
        const before = du(`${br}/repo`);
        const [, secs] = timed(() => pgbr('backup', '--type=full', `--compress-type=${type}`, `--process-max=${p}`));
        peer[`${type}/${p}`] = { secs, size: du(`${br}/repo`) - before };
      }
    }
    console.log(`  pgBackRest none: process-max 1 ${peer['none/1'].secs.toFixed(2)} s, 2 ${peer['none/2'].secs.toFixed(2)} s (${mib(peer['none/2'].size)}); pgmaestro none/2 : pgBackRest none/2 = ${ratio(none.secs, peer['none/2'].secs)}`);
    const ours: Record<string, { secs: number; stored: number; id: string }> = {};
    for (const [kind, theirs] of [['lz4', 'lz4'], ['zstd:3', 'zst']] as const) {
      for (const p of [1, 2]) {
        setBackup(c, kind, p);
        const r = ourFull(c);
        ours[`${kind}/${p}`] = r;
        const t = peer[`${theirs}/${p}`];
        console.log(`  ${kind.padEnd(6)} process_max ${p}: pgmaestro ${r.secs.toFixed(2)} s, ${mib(r.stored)}; pgBackRest ${t.secs.toFixed(2)} s, ${mib(t.size)}: time ratio ${ratio(r.secs, t.secs)}, size ratio ${ratio(r.stored, t.size)}`);
      }
    }
    // restore: pgmaestro (its newest backup: zstd:3, process_max 2) against pgbackrest restore of its zst backup with 2 processes
    const target = path.join(root, 'restore15');
    dropCaches();
    const [, tOurs] = timed(() => cli('restore', '-c', c.file, '--target-dir', target, '--port', '13650', '--latest'));
    fs.rmSync(target, { recursive: true, force: true });
    fs.rmSync(`${target}_wal`, { recursive: true, force: true });
    const info = JSON.parse(pgbr('info', '--output=json')) as { backup: { label: string; info: { repository: { size: number } } }[] }[];
    const zstLabel = info[0].backup[5].label; // full backups in order: none/1, none/2, lz4/1, lz4/2, zst/1, zst/2
    const brTarget = path.join(root, 'restore15br');
    fs.mkdirSync(brTarget, { mode: 0o700 });
    execFileSync('chown', ['postgres:postgres', brTarget]);
    dropCaches();
    const [, tBr] = timed(() => pgbr('restore', `--set=${zstLabel}`, '--process-max=2', `--pg1-path=${brTarget}`, '--type=immediate'));
    fs.rmSync(brTarget, { recursive: true, force: true });
    console.log(`  restore of the zstd full (process max 2): pgmaestro ${tOurs.toFixed(2)} s vs pgbackrest restore --process-max=2 ${tBr.toFixed(2)} s: ratio ${ratio(tOurs, tBr)} (PostgreSQL 15 has no incremental of its own; pgBackRest 2.45 does not run on 18)`);
    cli('down', '-c', c.file);
  }

  if (!process.argv.includes('--skip18')) {
    // 2. PostgreSQL 18: incremental and rebuild, with a plain copy as the physical limit
    const c = cluster('pg18', 13610, scale18);
    clusters.push(c.file);
    setBackup(c, 'none', 2);
    const full = ourFull(c);
    const copyDir = path.join(root, 'copy');
    dropCaches();
    const [, tCopy] = timed(() => {
      execFileSync('cp', ['-r', c.dataDir, copyDir]);
      execFileSync('sync', ['-f', copyDir]);
    });
    fs.rmSync(copyDir, { recursive: true, force: true });
    console.log(`\nPostgreSQL 18, pgbench -i -s ${scale18} (${mib(full.size)}), load ${load()}; plain copy (cp -r of the data directory, then sync -f) ${tCopy.toFixed(2)} s:`);
    console.log(`  full backup: ${full.secs.toFixed(2)} s (ratio to the plain copy ${ratio(full.secs, tCopy)}; issue 19: pg_basebackup 17 3.6 s at -s 50)`);
    for (const [label, fraction] of [['1 %', 0.01], ['30 %', 0.3]] as const) {
      // a spread change: the rows of every k-th page (61 accounts a page), so about `fraction` of the pages change
      psql(13610, c.passfile, `UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE ((aid - 1) / 61) % ${Math.round(1 / fraction)} = 0`);
      psql(13610, c.passfile, 'CHECKPOINT');
      const incr = ourFull(c, 'incr');
      const target = path.join(root, `rebuild-${fraction}`);
      dropCaches();
      const [, tRebuild] = timed(() => cli('restore', '-c', c.file, '--target-dir', target, '--port', '13660', '--latest'));
      const size = du(target);
      fs.rmSync(target, { recursive: true, force: true });
      fs.rmSync(`${target}_wal`, { recursive: true, force: true });
      console.log(`  after ~${label} changed: incremental ${incr.secs.toFixed(2)} s, ${mib(incr.size)} (issue 19: pg_basebackup --incremental 17 0.5-1.2 s); rebuild full + incremental ${tRebuild.toFixed(2)} s for ${mib(size)} (ratio to the plain copy ${ratio(tRebuild, tCopy)}; issue 19: pg_combinebackup 17 2.7-4.0 s)`);
      // the next incremental is again against the full: drop this one
      fs.rmSync(path.join(c.dir, 'backups', 'backups', incr.id), { recursive: true, force: true });
    }
    cli('down', '-c', c.file);
  }
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
