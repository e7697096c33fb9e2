import type { Command } from 'commander';
import { openCluster, requireSecrets, type ClusterContext } from '../cluster/context.js';
import { PgmError } from '../errors.js';
import { rollingRestart, type RestartOptions } from '../ha/restart.js';
import { loadConfig, resolveConfigPath } from '../config/load.js';
import { callDaemon } from '../daemon/api.js';
import { readEvents, recordEvent } from '../daemon/events.js';
import { NO_HOOKS } from '../ha/failover.js';
import { viaController } from '../agent/cluster-ops.js';
import { failoverCommand, rejoinCommand, switchoverCommand } from '../ha/operator.js';
import { parseWait, withLocks } from '../cluster/lock.js';
import { WAIT_FLAGS, WAIT_HELP } from './output.js';

const say = (line: string): void => {
  process.stdout.write(line + '\n');
};

/**
 * Runs an operator command in the daemon when one runs (it owns the endpoint
 * and pauses its monitor meanwhile), else here.
 */
async function viaDaemon(ctx: ClusterContext, verb: string, body: Record<string, unknown>, wait: string | boolean | undefined, local: () => Promise<string>): Promise<void> {
  if (ctx.cfg.dcs) {
    say(await viaController(ctx, verb, body));
    return ctx.store.close();
  }
  const waitMs = parseWait(wait);
  const answer = await callDaemon(ctx, verb, { ...body, wait_ms: waitMs === Infinity ? -1 : waitMs });
  if (answer !== null) return say(answer);
  const sentence = await withLocks(ctx.locks, ['cluster'], `pgmaestro ${verb}`, waitMs, local);
  await recordEvent(ctx, sentence);
  say(sentence);
}

export function registerHaCommands(program: Command): void {
  program
    .command('switchover')
    .requiredOption('--to <node>', 'the replica to promote')
    .option('-c, --config <file>', 'cluster configuration')
    .option(WAIT_FLAGS, WAIT_HELP)
    .description('planned change of primary, no data lost; the old primary follows as a replica')
    .action(async (o: { to: string; config?: string; wait?: string | boolean }) => {
      const ctx = await openCluster(loadConfig(resolveConfigPath(o.config)));
      await viaDaemon(ctx, 'switchover', { to: o.to }, o.wait, () => switchoverCommand(ctx, o.to, NO_HOOKS, say));
    });

  program
    .command('failover')
    .option('--to <node>', 'the replica to promote (default: the election decides)')
    .option('-c, --config <file>', 'cluster configuration')
    .option(WAIT_FLAGS, WAIT_HELP)
    .description('forced promotion; the old primary is fenced until it rejoins')
    .action(async (o: { to?: string; config?: string; wait?: string | boolean }) => {
      const ctx = await openCluster(loadConfig(resolveConfigPath(o.config)));
      await viaDaemon(ctx, 'failover', { to: o.to ?? null }, o.wait, () => failoverCommand(ctx, o.to ?? null, NO_HOOKS, say));
    });

  program
    .command('rejoin')
    .argument('<node>', 'node to rebuild as a replica of the current primary')
    .option('-c, --config <file>', 'cluster configuration')
    .option(WAIT_FLAGS, WAIT_HELP)
    .description('rebuild a node (an old primary) as a replica: pg_rewind, else a fresh clone')
    .action(async (node: string, o: { config?: string; wait?: string | boolean }) => {
      const ctx = await openCluster(loadConfig(resolveConfigPath(o.config)));
      await viaDaemon(ctx, 'rejoin', { node }, o.wait, () => rejoinCommand(ctx, node, say));
    });

  program
    .command('restart')
    .argument('[nodes...]', 'only these nodes (default: every running node)')
    .option('--pending', 'only nodes with settings waiting for a restart')
    .option('--switchover', 'the primary restarts by a switchover to the most advanced replica (the default when one can take over)')
    .option('--in-place', 'the primary restarts in place; the endpoint holds new connections meanwhile')
    .option('-c, --config <file>', 'cluster configuration')
    .option(WAIT_FLAGS, WAIT_HELP)
    .description('rolling restart: replicas one by one, then the primary, without downtime')
    .action(async (nodes: string[], o: { pending?: boolean; switchover?: boolean; inPlace?: boolean; config?: string; wait?: string | boolean }) => {
      if (o.switchover && o.inPlace) throw new PgmError('usage', '--switchover and --in-place exclude each other.', { hint: 'choose one way for the primary to restart.' });
      const ctx = await openCluster(loadConfig(resolveConfigPath(o.config)));
      const opts: RestartOptions = { nodes, pending: Boolean(o.pending), primary: o.inPlace ? 'in-place' : o.switchover ? 'switchover' : 'auto' };
      await viaDaemon(ctx, 'restart', { ...opts }, o.wait, () => rollingRestart(ctx, requireSecrets(ctx), opts, NO_HOOKS, say));
    });

  program
    .command('events')
    .option('-c, --config <file>', 'cluster configuration')
    .option('-n, --last <n>', 'how many', '50')
    .option('--json', 'machine-readable output')
    .description("the monitor's decisions and the operator's actions, with timestamps")
    .action(async (o: { config?: string; last: string; json?: boolean }) => {
      const ctx = await openCluster(loadConfig(resolveConfigPath(o.config)));
      const events = await readEvents(ctx, Number(o.last));
      if (o.json) return say(JSON.stringify(events, null, 2));
      for (const e of events) say(`${e.at}  ${e.host ? `[${e.host}] ` : ''}${e.sentence}`);
      await ctx.store.close();
    });
}
