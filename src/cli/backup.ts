import type { Command } from 'commander';
import { expire } from '../backup/expire.js';
import { logicalBackup, logicalRestore, type LogicalFormat } from '../backup/logical.js';
import { hotBackup } from '../backup/physical.js';
import { Repository } from '../backup/repository.js';
import { storageSummary } from '../backup/summary.js';
import { formatBytes } from '../util/format.js';
import type { BackupInfo } from '../backup/types.js';
import { verify } from '../backup/verify.js';
import { findNode, openCluster } from '../cluster/context.js';
import { parseWait, withLocks } from '../cluster/lock.js';
import { WAIT_FLAGS, WAIT_HELP } from './output.js';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { PgmError } from '../errors.js';
import { restore } from '../restore/restore.js';
import type { RestoreTarget } from '../restore/plan.js';

const say = (line: string): void => {
  process.stdout.write(line + '\n');
};

async function open(config?: string, mode: 'read' | 'write' = 'write') {
  const ctx = await openCluster(loadConfig(resolveConfigPath(config)));
  return { ctx, repo: Repository.open(ctx, mode) };
}

function describe(b: BackupInfo): string {
  return `${b.type} backup ${b.id} of ${b.node}: ${formatBytes(b.size_bytes)} (${formatBytes(b.stored_bytes)} stored)${b.start_lsn ? `, LSN ${b.start_lsn} to ${b.stop_lsn} on timeline ${b.timeline}` : ''}`;
}

/** `pgmaestro backup ...` and `pgmaestro restore`. */
export function registerBackupCommands(program: Command): void {
  const backup = program.command('backup').description('take, list, verify and expire backups');

  backup
    .command('full')
    .option('-c, --config <file>', 'cluster configuration')
    .option('--from <node>', 'node to take it from (default: a replica, else the primary)')
    .option('--json', 'machine-readable output')
    .option(WAIT_FLAGS, WAIT_HELP)
    .description('hot full backup streamed into the repository')
    .action(async (o: { config?: string; from?: string; json?: boolean; wait?: string | boolean }) => {
      const { ctx, repo } = await open(o.config);
      const b = await withLocks(ctx.locks, ['repository'], 'pgmaestro backup full', parseWait(o.wait), () => hotBackup(ctx, repo, { type: 'full', from: o.from }));
      say(o.json ? JSON.stringify(b, null, 2) : describe(b));
    });

  backup
    .command('incr')
    .option('-c, --config <file>', 'cluster configuration')
    .option('--from <node>', 'node to take it from')
    .option('--parent <id>', 'parent backup (default: the newest of the same timeline)')
    .option('--json', 'machine-readable output')
    .option(WAIT_FLAGS, WAIT_HELP)
    .description('PostgreSQL 17+ incremental backup against a parent')
    .action(async (o: { config?: string; from?: string; parent?: string; json?: boolean; wait?: string | boolean }) => {
      const { ctx, repo } = await open(o.config);
      const b = await withLocks(ctx.locks, ['repository'], 'pgmaestro backup incr', parseWait(o.wait), () => hotBackup(ctx, repo, { type: 'incr', from: o.from, parent: o.parent }));
      say(o.json ? JSON.stringify(b, null, 2) : `${describe(b)}, parent ${b.parent}`);
    });

  backup
    .command('cold')
    .requiredOption('--node <node>', 'node to stop, copy and start again')
    .option('-c, --config <file>', 'cluster configuration')
    .option('--json', 'machine-readable output')
    .option(WAIT_FLAGS, WAIT_HELP)
    .description('stop a node cleanly, copy its data directory, start it again')
    .action(async (o: { config?: string; node: string; json?: boolean; wait?: string | boolean }) => {
      // on the node's host (through its agent, multi-host), which opens the repository there
      const ctx = await openCluster(loadConfig(resolveConfigPath(o.config)));
      const node = findNode(ctx.cfg, o.node);
      const b = await withLocks(ctx.locks, ['cluster', 'repository'], `pgmaestro backup cold --node ${o.node}`, parseWait(o.wait), () => ctx.control(node).coldBackup());
      say(o.json ? JSON.stringify(b, null, 2) : describe(b));
    });

  backup
    .command('logical')
    .option('-c, --config <file>', 'cluster configuration')
    .option('--db <name>', 'database to dump')
    .option('--table <name...>', 'only these tables')
    .option('--format <f>', 'plain, custom or directory', 'custom')
    .option('--all', 'the whole cluster with pg_dumpall')
    .option('--json', 'machine-readable output')
    .option(WAIT_FLAGS, WAIT_HELP)
    .description('pg_dump of a database (or pg_dumpall --all) into the repository')
    .action(async (o: { config?: string; db?: string; table?: string[]; format: string; all?: boolean; json?: boolean; wait?: string | boolean }) => {
      if (!o.all && !o.db) throw new PgmError('usage', 'backup logical needs --db NAME or --all.', { hint: 'for example: pgmaestro backup logical --db app --format custom.' });
      if (!['plain', 'custom', 'directory'].includes(o.format)) throw new PgmError('usage', `--format must be plain, custom or directory, not '${o.format}'.`, { hint: 'use --format custom.' });
      const { ctx, repo } = await open(o.config);
      const b = await withLocks(ctx.locks, ['repository'], 'pgmaestro backup logical', parseWait(o.wait), () =>
        logicalBackup(ctx, repo, { db: o.db ?? null, all: Boolean(o.all), tables: o.table ?? [], format: o.format as LogicalFormat }),
      );
      say(o.json ? JSON.stringify(b, null, 2) : describe(b));
    });

  backup
    .command('list')
    .option('-c, --config <file>', 'cluster configuration')
    .option('--json', 'machine-readable output')
    .description('backups with type, parent, times, LSNs, size; storage summary')
    .action(async (o: { config?: string; json?: boolean }) => {
      const { ctx, repo } = await open(o.config, 'read');
      const backups = repo.list();
      const summary = storageSummary(backups, [...repo.walEntries().values()], ctx.cfg.backup);
      if (o.json) return say(JSON.stringify({ backups, storage: summary }, null, 2));
      const rows = backups.map((b) => [b.id, b.type, b.parent ?? '-', b.node, b.start_time.slice(0, 19), b.stop_time.slice(0, 19), b.start_lsn ?? '-', b.stop_lsn ?? '-', formatBytes(b.stored_bytes)]);
      const head = ['ID', 'TYPE', 'PARENT', 'NODE', 'START', 'STOP', 'START LSN', 'STOP LSN', 'STORED'];
      const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
      for (const r of [head, ...rows]) say(r.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd());
      say('');
      say(`storage: ${formatBytes(summary.total_bytes)} (backups ${formatBytes(summary.backups_bytes)}, WAL ${formatBytes(summary.wal_bytes)} in ${summary.wal_segments} segments, ${formatBytes(summary.wal_bytes_per_day)}/day)`);
      say(`policy (${summary.window} window) projected: ${formatBytes(summary.projected_bytes)} = ${summary.projection}`);
    });

  backup
    .command('verify')
    .argument('[id]', 'one backup (default: all)')
    .option('-c, --config <file>', 'cluster configuration')
    .option('--restore', 'also restore into a scratch instance and run amcheck')
    .option('--json', 'machine-readable output')
    .description('re-read every file against its checksum; check chains and WAL continuity')
    .action(async (id: string | undefined, o: { config?: string; restore?: boolean; json?: boolean }) => {
      const { ctx, repo } = await open(o.config, 'read');
      const report = await verify(ctx, repo, { id, restore: Boolean(o.restore) });
      if (o.json) say(JSON.stringify(report, null, 2));
      else for (const line of report.lines) say(line);
      if (report.problems.length > 0) {
        throw new PgmError('backup.corrupt', `verification found ${report.problems.length} problem(s): ${report.problems[0]}${report.problems.length > 1 ? ' …' : ''}.`, {
          hint: 'restore from a backup that verifies, and take a new full backup.',
        });
      }
    });

  backup
    .command('expire')
    .option('-c, --config <file>', 'cluster configuration')
    .option('--dry-run', 'say what would be removed, remove nothing')
    .option('--at <time>', 'evaluate the window as of this moment instead of now (rehearse with --dry-run)')
    .option('--json', 'machine-readable output')
    .option(WAIT_FLAGS, WAIT_HELP)
    .description('remove what no point of the recovery window needs')
    .action(async (o: { config?: string; dryRun?: boolean; at?: string; json?: boolean; wait?: string | boolean }) => {
      const now = o.at === undefined ? new Date() : new Date(o.at);
      if (Number.isNaN(now.getTime())) throw new PgmError('usage', `--at '${o.at}' is not a date and time.`, { hint: 'use ISO 8601, e.g. 2026-12-01T00:00:00Z.' });
      const { ctx, repo } = await open(o.config);
      const r = o.dryRun
        ? expire(repo, ctx.cfg.backup.retentionMs, { dryRun: true, now })
        : await withLocks(ctx.locks, ['repository'], 'pgmaestro backup expire', parseWait(o.wait), async () => expire(repo, ctx.cfg.backup.retentionMs, { dryRun: false, now }));
      if (o.json) return say(JSON.stringify(r, null, 2));
      say(r.reason);
      say(`${r.dryRun ? 'would remove' : 'removed'} ${r.remove.length} backup(s)${r.remove.length ? `: ${r.remove.join(', ')}` : ''} and ${r.removedWal.length} WAL segment(s); kept ${r.keep.length}`);
    });

  program
    .command('restore')
    .option('-c, --config <file>', 'cluster configuration')
    .option('--target-dir <dir>', 'empty directory for the restored instance')
    .option('--port <p>', 'port of the restored instance')
    .option('--time <t>', 'recover to this moment (ISO 8601)')
    .option('--lsn <lsn>', 'recover to this WAL position')
    .option('--xid <xid>', 'recover to the commit of this transaction')
    .option('--name <name>', 'recover to this restore point')
    .option('--latest', 'recover to the end of the archive (default)')
    .option('--start', 'start the instance and wait until the target is reached')
    .option('--node <node>', 'rebuild this cluster node from the repository instead')
    .option('--logical <id>', 'restore a logical backup instead, into --db')
    .option('--db <name>', 'database for --logical')
    .option('--json', 'machine-readable output')
    .option(WAIT_FLAGS, WAIT_HELP)
    .description('restore to any moment the repository reaches')
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const { ctx, repo } = await open(o.config as string | undefined, 'read');
      if (o.logical) {
        if (!o.db) throw new PgmError('usage', 'restore --logical needs --db NAME.', { hint: 'for example: pgmaestro restore --logical ID --db app_copy.' });
        return say(await logicalRestore(ctx, repo, o.logical as string, o.db as string));
      }
      if (o.node) {
        const node = o.node as string;
        const n = findNode(ctx.cfg, node);
        return say(await withLocks(ctx.locks, ['cluster', 'repository'], `pgmaestro restore --node ${node}`, parseWait(o.wait), () => ctx.control(n).restoreFromRepository(parseTarget(o), say)));
      }
      if (!o.targetDir || !o.port) throw new PgmError('usage', 'restore needs --target-dir DIR and --port P.', { hint: 'for example: pgmaestro restore --target-dir /srv/restore --port 6543 --time "2026-11-20 10:00:00+00" --start.' });
      const port = Number(o.port);
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new PgmError('usage', `--port must be a port number, not '${o.port}'.`, { hint: 'for example --port 6543.' });
      const r = await restore(ctx, repo, { targetDir: o.targetDir as string, port, target: parseTarget(o), start: Boolean(o.start) }, o.json ? () => undefined : say);
      if (o.json) say(JSON.stringify({ target_dir: r.targetDir, port: r.port, chain: r.plan.chain.map((b) => b.id), bytes: r.bytes, started: r.started }, null, 2));
    });
}

export function parseTarget(o: Record<string, string | boolean | undefined>): RestoreTarget {
  const given = (['time', 'lsn', 'xid', 'name', 'latest'] as const).filter((k) => o[k] !== undefined);
  if (given.length > 1) throw new PgmError('usage', `give one recovery target, not ${given.map((g) => `--${g}`).join(' and ')}.`, { hint: 'choose one of --time, --lsn, --xid, --name, --latest.' });
  if (o.time !== undefined) {
    const t = new Date(String(o.time));
    if (Number.isNaN(t.getTime())) throw new PgmError('usage', `--time '${o.time}' is not a date and time.`, { hint: 'use ISO 8601, e.g. 2026-11-20T10:00:00Z.' });
    return { kind: 'time', time: t };
  }
  if (o.lsn !== undefined) {
    if (!/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/.test(String(o.lsn))) throw new PgmError('usage', `--lsn '${o.lsn}' is not a WAL position.`, { hint: 'use the X/Y form, e.g. 0/3000060.' });
    return { kind: 'lsn', lsn: String(o.lsn).toUpperCase() };
  }
  if (o.xid !== undefined) {
    if (!/^\d+$/.test(String(o.xid))) throw new PgmError('usage', `--xid '${o.xid}' is not a transaction id.`, { hint: 'use a number such as 7421.' });
    return { kind: 'xid', xid: String(o.xid) };
  }
  if (o.name !== undefined) return { kind: 'name', name: String(o.name) };
  return { kind: 'latest' };
}
