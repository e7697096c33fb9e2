import type { Command } from 'commander';
import { openCluster, requireSecrets } from '../cluster/context.js';
import { parseWait, withLocks } from '../cluster/lock.js';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { PgmError } from '../errors.js';
import { logicalApply } from '../logical/apply.js';
import { logicalStatus, type LogicalStatus } from '../logical/status.js';
import { describeSequenceSync, syncSequences } from '../logical/sequences.js';
import { resync } from '../logical/resync.js';
import { targetLabel } from '../logical/subscriber.js';
import { formatBytes } from '../util/format.js';
import { WAIT_FLAGS, WAIT_HELP } from './output.js';

const say = (line: string): void => {
  process.stdout.write(line + '\n');
};

/** '90s', '10m', '1h' in milliseconds. */
function timeoutArg(v: string): number {
  const m = /^(\d+)(s|m|h)$/.exec(v);
  if (!m) throw new PgmError('usage', `--timeout must be a duration such as 90s, 10m or 1h, not '${v}'.`, { hint: 'for example --timeout 30m.' });
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 's' | 'm' | 'h'];
}

export function registerLogicalCommands(program: Command): void {
  const logical = program.command('logical').description('logical replication: publications, subscriptions, query nodes');

  logical
    .command('apply')
    .option('-c, --config <file>', 'cluster configuration')
    .option('--dry-run', 'say what would change; change nothing')
    .option('--prune', 'also drop what pgmaestro made and the file no longer names')
    .option('--no-copy-wait', "return once subscriptions exist, without waiting for their initial copy; the query nodes' indexes are then built by the next apply")
    .option('--timeout <duration>', 'how long to wait for an initial copy (default 10m)', timeoutArg, 600_000)
    .option(WAIT_FLAGS, WAIT_HELP)
    .description('make publications, subscriptions, their tables and the query nodes’ indexes what pgmaestro.yaml declares')
    .action(async (o: { config?: string; dryRun?: boolean; prune?: boolean; copyWait: boolean; timeout: number; wait?: string | boolean }) => {
      const ctx = await openCluster(loadConfig(resolveConfigPath(o.config)));
      const run = () => sentences(() => logicalApply(ctx, requireSecrets(ctx), { dryRun: Boolean(o.dryRun), prune: Boolean(o.prune), wait: o.copyWait, copyTimeoutMs: o.timeout }, say));
      if (o.dryRun) await run(); // reads only, like status
      else await withLocks(ctx.locks, ['cluster'], 'pgmaestro logical apply', parseWait(o.wait), run);
    });

  logical
    .command('status')
    .option('-c, --config <file>', 'cluster configuration')
    .option('--json', 'machine-readable output')
    .description('per subscription: table states, lag, errors and conflicts, the WAL its slot holds, failover readiness, drift')
    .action(async (o: { config?: string; json?: boolean }) => {
      const ctx = await openCluster(loadConfig(resolveConfigPath(o.config)));
      const st = await logicalStatus(ctx, { full: true });
      say(o.json ? JSON.stringify(st, null, 2) : formatLogicalStatus(st));
    });

  logical
    .command('sync-sequences')
    .argument('[subscriptions...]', 'only these subscriptions (default: all)')
    .option('-c, --config <file>', 'cluster configuration')
    .option('--json', 'machine-readable output')
    .description("copy the primary's sequence values to the subscribers (needed before writes move there)")
    .action(async (names: string[], o: { config?: string; json?: boolean }) => {
      const ctx = await openCluster(loadConfig(resolveConfigPath(o.config)));
      const r = await sentences(() => syncSequences(ctx, requireSecrets(ctx), names));
      if (o.json) return say(JSON.stringify(r, null, 2));
      for (const x of r) say(describeSequenceSync(x, targetLabel(ctx.cfg.logical!.subscriptions.find((s) => s.name === x.subscription)!)));
      if (r.length === 0) say('no replicated column draws from a sequence');
    });

  logical
    .command('resync')
    .argument('<subscription>', 'the subscription to copy afresh')
    .option('-c, --config <file>', 'cluster configuration')
    .option('--timeout <duration>', 'how long to wait for the initial copy (default 10m)', timeoutArg, 600_000)
    .option(WAIT_FLAGS, WAIT_HELP)
    .description('copy a subscription’s tables afresh (after its slot was lost, e.g. a failover below PostgreSQL 17)')
    .action(async (name: string, o: { config?: string; timeout: number; wait?: string | boolean }) => {
      const ctx = await openCluster(loadConfig(resolveConfigPath(o.config)));
      await withLocks(ctx.locks, ['cluster'], `pgmaestro logical resync ${name}`, parseWait(o.wait), () =>
        sentences(() => resync(ctx, requireSecrets(ctx), name, { wait: true, copyTimeoutMs: o.timeout }, say)),
      );
    });
}

/** A PostgreSQL error that escaped the domain's own sentences, as one of ours (never a raw driver error). */
async function sentences<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const e = err as { severity?: string; code?: string; message?: string; detail?: string };
    if (err instanceof PgmError || typeof e?.severity !== 'string') throw err;
    throw new PgmError('logical.failed', `PostgreSQL refused a step of logical replication: ${e.message?.replace(/\.$/, '')}${e.detail ? ` (${e.detail.replace(/\.$/, '')})` : ''}.`, {
      hint: 'fix the cause it names, then run the command again (each step is idempotent).',
      cause: err,
    });
  }
}

/** The human view of `logical status`. */
export function formatLogicalStatus(st: LogicalStatus): string {
  const lines: string[] = [];
  if (st.publications.length === 0 && st.subscriptions.length === 0) return 'no publication or subscription is declared (logical: in pgmaestro.yaml)';
  lines.push(`primary ${st.primary}; warn when a slot holds more than ${st.slot_warn}`);
  for (const p of st.publications) lines.push(`publication ${p.name} (${p.database}): ${p.exists ? `${p.tables ?? '?'} tables` : 'not created yet (pgmaestro logical apply)'}`);
  for (const s of st.subscriptions) {
    lines.push('');
    const lag = s.lag_bytes === null ? 'lag unknown' : `lag ${formatBytes(s.lag_bytes)}${s.lag_seconds !== null ? ` / ${s.lag_seconds.toFixed(1)} s` : ''}`;
    lines.push(`subscription ${s.name} -> ${s.subscriber} (${s.database}), publication ${s.publication}: ${s.state}, ${lag}`);
    const slot = s.slot.exists
      ? `slot ${s.slot.name}: ${s.slot.active ? 'active' : 'inactive'}, holds ${s.slot.retained_bytes === null ? '?' : formatBytes(s.slot.retained_bytes)}${s.slot.wal_status ? ` (${s.slot.wal_status})` : ''}${s.slot.failover ? `, failover slot${s.slot.synced_on.length > 0 ? ` synchronised on ${s.slot.synced_on.join(', ')}` : ', not yet synchronised on any standby'}` : ''}`
      : `slot ${s.slot.name}: missing on the primary`;
    lines.push(`  ${slot}`);
    if (s.tables.length > 0) lines.push(`  tables: ${s.tables.map((t) => `${t.name} ${t.state}`).join(', ')}`);
    const conflicts = Object.entries(s.conflicts).filter(([, n]) => n > 0);
    if (s.apply_errors !== null) lines.push(`  errors: ${s.apply_errors} apply, ${s.sync_errors ?? 0} copy${conflicts.length > 0 ? `; conflicts: ${conflicts.map(([k, n]) => `${k} ${n}`).join(', ')}` : ''}`);
    for (const p of s.problems) lines.push(`  ! ${p}`);
  }
  for (const q of st.query_nodes) {
    lines.push('');
    lines.push(`query node ${q.name} ${q.address}: ${q.pid === null ? 'down' : `running (pid ${q.pid})`}${q.indexes.length > 0 ? `; indexes: ${q.indexes.map((i) => `${i.name}${i.present ? '' : ' (missing)'}`).join(', ')}` : ''}`);
  }
  return lines.join('\n');
}
