import fs from 'node:fs';
import { WalArchiver } from '../backup/wal-receiver.js';
import { clusterStatus, type NodeStatus } from '../cluster/status.js';
import type { ClusterContext } from '../cluster/context.js';
import { writeFileAtomic } from '../util/fsx.js';

/**
 * The long-running process of a cluster. Today it watches the nodes and logs
 * every change of role; later issues add the failover monitor, the endpoint,
 * the WAL receiver and the scheduler. It owns no PostgreSQL process: killing
 * it, even with SIGKILL, leaves every database running.
 */
export async function runDaemon(ctx: ClusterContext, intervalMs = 2000): Promise<void> {
  writeFileAtomic(ctx.paths.daemonPid, `${process.pid}\n`, 0o644);
  const log = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`);
  log(`daemon started for cluster ${ctx.cfg.cluster} (pid ${process.pid}, config ${ctx.cfg.file})`);

  let stopping = false;
  let wake: (() => void) | null = null;
  const stop = (sig: string) => {
    log(`received ${sig}, stopping (databases keep running)`);
    stopping = true;
    wake?.();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  const archiver = ctx.cfg.backup.walArchive ? new WalArchiver(ctx, null, { log: (s) => log(`wal archiver: ${s}`) }).start() : null;

  const last = new Map<string, string>();
  while (!stopping) {
    try {
      const st = await clusterStatus(ctx);
      for (const n of st.nodes) {
        const now = describe(n);
        if (last.get(n.name) !== now) log(`${n.name}: ${now}`);
        last.set(n.name, now);
      }
    } catch (err) {
      log(`monitor cycle failed: ${(err as Error).message}`);
    }
    await new Promise<void>((r) => {
      wake = r;
      setTimeout(r, intervalMs);
    });
  }
  await archiver?.stop();
  try {
    if (fs.readFileSync(ctx.paths.daemonPid, 'utf8').trim() === String(process.pid)) fs.rmSync(ctx.paths.daemonPid);
  } catch {
    // already gone
  }
}

function describe(n: NodeStatus): string {
  if (n.role === 'down') return n.pid ? `down (postmaster ${n.pid} does not answer)` : 'down';
  return n.role === 'replica' ? `replica of ${n.upstream ?? '?'}` : n.role;
}
