import type { Command } from 'commander';
import { openCluster, requireSecrets } from '../cluster/context.js';
import { parseWait, withLocks } from '../cluster/lock.js';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { PgmError } from '../errors.js';
import { logicalApply } from '../logical/apply.js';
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
      const run = () => logicalApply(ctx, requireSecrets(ctx), { dryRun: Boolean(o.dryRun), prune: Boolean(o.prune), wait: o.copyWait, copyTimeoutMs: o.timeout }, say);
      if (o.dryRun) await run(); // reads only, like status
      else await withLocks(ctx.locks, ['cluster'], 'pgmaestro logical apply', parseWait(o.wait), run);
    });
}
