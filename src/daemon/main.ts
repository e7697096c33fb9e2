import type http from 'node:http';
import { BackupScheduler } from '../backup/schedule.js';
import { WalArchiver } from '../backup/wal-receiver.js';
import { requireSecrets, type ClusterContext } from '../cluster/context.js';
import { withLocks } from '../cluster/lock.js';
import { rollingRestart } from '../ha/restart.js';
import { PgmError } from '../errors.js';
import type { PrimaryHooks } from '../ha/failover.js';
import { Monitor } from '../ha/monitor.js';
import { failoverCommand, rejoinCommand, switchoverCommand } from '../ha/operator.js';
import { moveVip } from '../ha/vip-hooks.js';
import { primaryFromState } from '../router/balance.js';
import { refreshEndpoints, watchEndpoints } from '../router/processes.js';
import { serveApi } from './api.js';
import { SERVICE_ENV } from './service.js';
import { recordEvent } from './events.js';
import { daemonPid, daemonRole, removePidFile, writePidFile } from './spawn.js';

/**
 * The long-running process of a cluster: the failover monitor, the WAL
 * archiver, the backup scheduler, the control socket the CLI's operator
 * commands go through. It nudges the endpoint processes after it changed the
 * cluster state, and restarts one that dies while no supervisor runs to do
 * it. It owns no PostgreSQL
 * process and no client connection: killing it, even with SIGKILL, leaves
 * every database and every endpoint running, and a new daemon (the
 * supervisor starts one) picks up from the persisted cluster state.
 */
export async function runDaemon(ctx: ClusterContext, intervalMs = 1000): Promise<void> {
  const log = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`);
  const event = (sentence: string) => {
    recordEvent(ctx, sentence);
    log(sentence);
  };

  const other = daemonPid(ctx);
  if (other !== null && other !== process.pid) {
    log(`another daemon already runs for this cluster (pid ${other}); exiting`);
    return;
  }
  // The pid file says "running" from here on: the supervisor and `up` wait for it, not for the whole start.
  writePidFile(daemonRole(ctx));

  // 1. the endpoint processes follow the state by themselves; the supervisor keeps them running, and this daemon does while none runs
  // (under systemd, pgmaestro service install: systemd does)
  const endpointWatch = process.env[SERVICE_ENV] === 'systemd' ? { stop: () => undefined } : watchEndpoints(ctx, event);
  const hooks: PrimaryHooks = {
    // The failover code writes the state first, then calls this: every endpoint
    // applies it (dropping connections to a fenced primary) before it returns.
    async setPrimary(name, reason) {
      for (const line of await refreshEndpoints(ctx)) log(`${line} (${reason})`);
      if (ctx.cfg.ha.vip) for (const line of await moveVip(ctx, name)) log(line);
    },
  };
  if (ctx.cfg.ha.vip) {
    const st = await ctx.store.read();
    const primary = primaryFromState(ctx.cfg, st);
    for (const line of await moveVip(ctx, primary)) log(line);
  }

  // 2. the monitor, and the control socket whose commands pause it
  const monitor = new Monitor(ctx, hooks, event);
  // An operator's command takes the cluster lock (waiting as the CLI asked), then runs with the monitor paused.
  const operator = (command: string, b: Record<string, unknown>, fn: () => Promise<string>) =>
    withLocks(ctx.locks, ['cluster'], command, lockWait(b.wait_ms), () => monitor.exclusive(fn)).then(record);
  const api: http.Server = await serveApi(ctx, {
    switchover: (b) => operator(`pgmaestro switchover --to ${String(b.to)}`, b, () => switchoverCommand(ctx, String(b.to), hooks, event)),
    failover: (b) => operator('pgmaestro failover', b, () => failoverCommand(ctx, typeof b.to === 'string' ? b.to : null, hooks, event)),
    rejoin: (b) => operator(`pgmaestro rejoin ${String(b.node)}`, b, () => rejoinCommand(ctx, String(b.node), event)),
    restart: (b) =>
      operator('pgmaestro restart', b, () =>
        rollingRestart(ctx, requireSecrets(ctx), { nodes: Array.isArray(b.nodes) ? b.nodes.map(String) : [], pending: b.pending === true, primary: b.primary === 'in-place' || b.primary === 'switchover' ? b.primary : 'auto' }, hooks, event),
      ),
  });
  function lockWait(v: unknown): number | null {
    return typeof v === 'number' ? (v < 0 ? Infinity : v) : null;
  }
  function record(sentence: string): string {
    event(sentence);
    return sentence;
  }

  // 3. WAL archiving and the backup schedule
  const archiver = ctx.cfg.backup.walArchive ? new WalArchiver(ctx, null, { log: (s) => log(`wal archiver: ${s}`) }).start() : null;
  const scheduler = new BackupScheduler(ctx, event);
  scheduler.start();

  log(`daemon started for cluster ${ctx.cfg.cluster} (pid ${process.pid})`);

  let stopping = false;
  let wake: (() => void) | null = null;
  const stop = (sig: string) => {
    log(`received ${sig}, stopping (databases keep running)`);
    stopping = true;
    wake?.();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  // 4. the monitor loop
  while (!stopping) {
    try {
      await monitor.cycle();
    } catch (err) {
      log(`monitor cycle failed: ${err instanceof PgmError ? err.render() : (err as Error).message}`);
    }
    await new Promise<void>((r) => {
      wake = r;
      setTimeout(r, intervalMs);
    });
  }
  endpointWatch.stop();
  await Promise.all([archiver?.stop(), scheduler.stop(), new Promise((r) => api.close(r))]);
  removePidFile(daemonRole(ctx));
}
