import fs from 'node:fs';
import type http from 'node:http';
import { BackupScheduler } from '../backup/schedule.js';
import { WalArchiver } from '../backup/wal-receiver.js';
import { currentPrimaryName, findNode, requireSecrets, type ClusterContext } from '../cluster/context.js';
import { restartOptions, rollingRestart } from '../ha/restart.js';
import { PgmError } from '../errors.js';
import { Endpoint } from '../ha/endpoint.js';
import type { PrimaryHooks } from '../ha/failover.js';
import { Monitor } from '../ha/monitor.js';
import { failoverCommand, rejoinCommand, switchoverCommand } from '../ha/operator.js';
import { moveVip } from '../ha/vip-hooks.js';
import { withLocks } from '../cluster/lock.js';
import { writeFileAtomic } from '../util/fsx.js';
import { serveApi } from './api.js';
import { recordEvent } from './events.js';

/**
 * The long-running process of a cluster: the read-write endpoint that follows
 * the primary, the failover monitor, the WAL archiver, the backup scheduler
 * and the control socket the CLI's operator commands go through. It owns no
 * PostgreSQL process: killing it, even with SIGKILL, leaves every database
 * running, and a new daemon picks up from the persisted cluster state.
 */
export async function runDaemon(ctx: ClusterContext, intervalMs = 1000): Promise<void> {
  const log = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`);
  const event = (sentence: string) => {
    recordEvent(ctx, sentence).catch((err: Error) => log(`cannot record the event: ${err.message}`));
    log(sentence);
  };

  // 1. the endpoint, pointed at the primary unless it is fenced or a promotion is pending
  const endpoint = new Endpoint({ host: ctx.cfg.endpoint.host, port: ctx.cfg.endpoint.port, log });
  try {
    await endpoint.listen();
  } catch (err) {
    log(`cannot listen on the endpoint ${ctx.cfg.endpoint.host}:${ctx.cfg.endpoint.port}: ${(err as Error).message}`);
    process.exit(1);
  }
  const hooks: PrimaryHooks = {
    async setPrimary(name, reason) {
      const node = name === null ? null : findNode(ctx.cfg, name);
      endpoint.setTarget(node ? { name: node.name, host: node.service, port: node.port } : null, reason); // logs its own sentence
      if (ctx.cfg.ha.vip) for (const line of await moveVip(ctx, name)) log(line);
    },
  };
  const st = await ctx.store.read();
  const primary = await currentPrimaryName(ctx);
  await hooks.setPrimary(st?.pending || st?.fenced.includes(primary) ? null : primary, 'daemon start');

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
        rollingRestart(ctx, requireSecrets(ctx), restartOptions(b), hooks, event),
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

  writeFileAtomic(ctx.paths.daemonPid, `${process.pid}\n`, 0o644);
  log(`daemon started for cluster ${ctx.cfg.cluster} (pid ${process.pid}); endpoint ${endpoint.address}`);

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
  await Promise.all([archiver?.stop(), scheduler.stop(), endpoint.close(), new Promise((r) => api.close(r))]);
  try {
    if (fs.readFileSync(ctx.paths.daemonPid, 'utf8').trim() === String(process.pid)) fs.rmSync(ctx.paths.daemonPid);
  } catch {
    // already gone
  }
}
