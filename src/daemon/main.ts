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
import { startConsole, type ConsoleService } from '../web/console.js';
import { DaemonCounters } from '../web/metrics.js';
import type { ConsoleActions } from '../web/server.js';
import type { EndpointStat } from '../web/source.js';
import { serveApi } from './api.js';
import { LiveConfig } from './config-watch.js';
import { SlotWatch } from '../ha/slots.js';
import { startQueryEndpoint } from '../logical/query-endpoint.js';

const SLOT_CHECK_MS = 3000;
import { recordEvent } from './events.js';

/**
 * The long-running process of a cluster: the read-write endpoint that follows
 * the primary, the failover monitor, the WAL archiver, the backup scheduler,
 * the control socket the CLI's operator commands go through, and the web
 * console with /metrics. It owns no PostgreSQL process: killing it, even
 * with SIGKILL, leaves every database running, and a new daemon picks up
 * from the persisted cluster state.
 */
export async function runDaemon(ctx: ClusterContext, intervalMs = 1000): Promise<void> {
  const log = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`);
  let web: ConsoleService | null = null;
  const event = (sentence: string) => {
    recordEvent(ctx, sentence).catch((err: Error) => log(`cannot record the event: ${err.message}`));
    log(sentence);
    web?.refresh(); // the console shows it now, not at its next observation
  };
  const counters = new DaemonCounters();

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
  // the read-only endpoint over the query nodes (a seam until the endpoints get processes of their own)
  const queryEndpoint = await startQueryEndpoint(ctx, log).catch((err: unknown) => {
    log(`cannot listen on the query endpoint: ${err instanceof PgmError ? err.render() : (err as Error).message}`);
    return null;
  });
  const st = await ctx.store.read();
  const primary = await currentPrimaryName(ctx);
  await hooks.setPrimary(st?.pending || st?.fenced.includes(primary) ? null : primary, 'daemon start');

  // 2. the monitor, and the control socket whose commands pause it
  let lastCycle: { at: string; sentence: string } | null = null;
  const monitor = new Monitor(ctx, hooks, event, { decided: (kind) => counters.decision(kind), failedOver: () => counters.failover() });
  // An operator's command takes the cluster lock (waiting as the CLI asked), then runs with the monitor paused.
  // Each command runs with the configuration as it is on disk now.
  const live = new LiveConfig(ctx, log);
  const operator = (command: string, b: Record<string, unknown>, fn: (c: ClusterContext) => Promise<string>) =>
    withLocks(ctx.locks, ['cluster'], command, lockWait(b.wait_ms), () => monitor.exclusive(async () => fn(await live.current()))).then(record);
  const switchover = (to: string, b: Record<string, unknown>, by = `pgmaestro switchover --to ${to}`) => operator(by, b, (c) => switchoverCommand(c, to, hooks, event));
  const api: http.Server = await serveApi(ctx, {
    switchover: (b) => switchover(String(b.to), b),
    failover: (b) => operator('pgmaestro failover', b, (c) => failoverCommand(c, typeof b.to === 'string' ? b.to : null, hooks, event)).then((s) => (counters.failover(), s)),
    rejoin: (b) => operator(`pgmaestro rejoin ${String(b.node)}`, b, (c) => rejoinCommand(c, String(b.node), event)),
    restart: (b) =>
      operator('pgmaestro restart', b, (c) =>
        rollingRestart(c, requireSecrets(c), restartOptions(b), hooks, event),
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
  const scheduler = new BackupScheduler(ctx, event);
  const archiver = ctx.cfg.backup.walArchive
    ? new WalArchiver(ctx, null, {
        log: (s) => log(`wal archiver: ${s}`),
        // a WAL gap: say so in the event log, and heal the window with a full backup at once
        onGap: (gap) => {
          event(`WAL gap: ${gap.reason}; the recovery window cannot be restored across it, so a full backup starts now`);
          void scheduler.fullNow(`heal the WAL gap from ${gap.from_lsn}`);
        },
      }).start()
    : null;
  scheduler.start();

  // 4. the web console and /metrics: without it the cluster is still managed, so a failure to listen is logged, not fatal
  if (ctx.cfg.console) {
    const actions: ConsoleActions = {
      switchover: (to, by) => {
        event(`switchover to ${to} requested by ${by}`);
        return switchover(to, {}, `switchover to ${to} from ${by}`);
      },
      backup: async (type, by) => {
        if (scheduler.busy) throw new PgmError('usage', 'a backup is already running.', { hint: 'wait for it to finish; its result appears in the event log.' });
        scheduler.run(type, by).catch((err: unknown) => log(`console backup: ${(err as Error).message}`));
        return `${type === 'incr' ? 'incremental' : 'full'} backup started; its result will appear in the event log`;
      },
    };
    const endpoints = (): EndpointStat[] => {
      const s = endpoint.stats;
      const q = queryEndpoint?.stats;
      return [
        { name: 'rw', address: s.address, target: s.target?.name ?? null, connections: s.active + s.connecting, waiting: s.held, bytesFromClients: s.bytesFromClients, bytesToClients: s.bytesToClients, decisions: {}, pid: process.pid },
        ...(q ? [{ name: 'query', address: q.address, target: q.target?.name ?? null, connections: q.active + q.connecting, waiting: q.held, bytesFromClients: q.bytesFromClients, bytesToClients: q.bytesToClients, decisions: {}, pid: process.pid }] : []),
      ];
    };
    web = await startConsole(ctx, { host: ctx.cfg.console.host, port: ctx.cfg.console.port, hooks: { endpoints, monitor: () => lastCycle }, actions, counters, log }).catch((err: unknown) => {
      log(`console not started: ${err instanceof PgmError ? err.render() : (err as Error).message}`);
      return null;
    });
  }

  writeFileAtomic(ctx.paths.daemonPid, `${process.pid}\n`, 0o644);
  log(`daemon started for cluster ${ctx.cfg.cluster} (pid ${process.pid}); endpoint ${endpoint.address}${web ? `; console http://${web.address}/` : ''}`);

  let stopping = false;
  let wake: (() => void) | null = null;
  const stop = (sig: string) => {
    log(`received ${sig}, stopping (databases keep running)`);
    stopping = true;
    wake?.();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  // 5. the monitor loop
  // the primary's replication slots, every few seconds
  const slots = new SlotWatch(ctx, event);
  const slotTimer = setInterval(() => void live.current().then((c) => (slots.useContext(c), slots.check())), SLOT_CHECK_MS);
  while (!stopping) {
    try {
      monitor.useContext(await live.current());
      lastCycle = { at: new Date().toISOString(), sentence: await monitor.cycle() };
    } catch (err) {
      log(`monitor cycle failed: ${err instanceof PgmError ? err.render() : (err as Error).message}`);
    }
    await new Promise<void>((r) => {
      wake = r;
      setTimeout(r, intervalMs);
    });
  }
  clearInterval(slotTimer);
  await Promise.all([archiver?.stop(), scheduler.stop(), endpoint.close(), queryEndpoint?.close(), new Promise((r) => api.close(r)), web?.stop()]);
  try {
    if (fs.readFileSync(ctx.paths.daemonPid, 'utf8').trim() === String(process.pid)) fs.rmSync(ctx.paths.daemonPid);
  } catch {
    // already gone
  }
}
