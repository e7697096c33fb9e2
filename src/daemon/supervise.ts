import type { ClusterContext } from '../cluster/context.js';
import { PgmError } from '../errors.js';
import { recordEvent } from './events.js';
import { countRestart, daemonPid, daemonRole, livePid, removePidFile, startDetached, supervisorRole, writePidFile } from './spawn.js';

/** Backoff between restarts of a daemon that keeps dying: 0.5 s doubling to 30 s; a daemon that ran 60 s resets it. */
export function restartDelayMs(consecutive: number): number {
  if (consecutive <= 1) return 0;
  return Math.min(30_000, 500 * 2 ** (consecutive - 2));
}
const STABLE_MS = 60_000;

/**
 * The supervisor (`pgmaestro supervise`, started by `up`): keeps one daemon
 * running, restarting it with a backoff after it dies and saying so in the
 * event log. It adopts a daemon that already runs (after the supervisor
 * itself was killed), and leaves it running when told to stop: `down` stops
 * the daemon itself. It does nothing else, so there is little in it to crash.
 */
export async function runSupervisor(ctx: ClusterContext, intervalMs = 200): Promise<void> {
  const log = (line: string) => process.stdout.write(`${new Date().toISOString()} supervisor: ${line}\n`);
  const role = supervisorRole(ctx);
  const other = livePid(ctx, role);
  if (other !== null && other !== process.pid) {
    throw new PgmError('daemon.failed', `a supervisor already runs for ${ctx.cfg.file} (pid ${other}).`, { hint: 'nothing to do; pgmaestro down stops it.' });
  }
  writePidFile(role);
  let stopping = false;
  process.once('SIGTERM', () => (stopping = true));
  process.once('SIGINT', () => (stopping = true));

  let lastPid = daemonPid(ctx);
  log(lastPid === null ? `started (pid ${process.pid}); starting the daemon` : `started (pid ${process.pid}); adopted the running daemon (pid ${lastPid})`);
  /** Deaths in a row of daemons that ran less than STABLE_MS. */
  let consecutive = 0;
  let startedAt = Date.now();
  while (!stopping) {
    const pid = daemonPid(ctx);
    if (pid !== null) {
      lastPid = pid;
    } else {
      if (lastPid !== null) consecutive = Date.now() - startedAt > STABLE_MS ? 1 : consecutive + 1;
      const wait = restartDelayMs(consecutive);
      if (wait > 0) {
        log(`waiting ${(wait / 1000).toFixed(1)} s before restarting the daemon (it died ${consecutive - 1} times in a row)`);
        const until = Date.now() + wait;
        while (!stopping && Date.now() < until) await sleep(Math.min(intervalMs, until - Date.now()));
        if (stopping) break;
      }
      startedAt = Date.now();
      try {
        const newPid = await startDetached(ctx, daemonRole(ctx), ['daemon']);
        if (lastPid !== null) {
          const n = countRestart(daemonRole(ctx));
          const sentence = `the daemon (pid ${lastPid}) was gone; restarted it as pid ${newPid} (restart ${n})`;
          recordEvent(ctx, `supervisor: ${sentence}`);
          log(sentence);
        } else {
          log(`started the daemon (pid ${newPid})`);
        }
        lastPid = newPid;
      } catch (err) {
        log(`could not start the daemon: ${err instanceof PgmError ? err.render() : String(err)}`);
      }
    }
    await sleep(intervalMs);
  }
  log('stopping; the daemon keeps running');
  removePidFile(role);
}

/** `up`: the supervisor, started unless it runs; then the daemon it keeps running. */
export async function ensureSupervised(ctx: ClusterContext): Promise<{ supervisor: number; daemon: number; started: boolean }> {
  let supervisor = livePid(ctx, supervisorRole(ctx));
  if (supervisor === null) supervisor = await startDetached(ctx, supervisorRole(ctx), ['supervise']);
  const existing = daemonPid(ctx);
  if (existing !== null) return { supervisor, daemon: existing, started: false };
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const pid = daemonPid(ctx);
    if (pid !== null) return { supervisor, daemon: pid, started: true };
    await sleep(100);
  }
  throw new PgmError('daemon.failed', 'the pgmaestro daemon did not start.', { hint: `read ${ctx.paths.daemonLog} for the cause.` });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, ms)));
}
