import fs from 'node:fs';
import path from 'node:path';
import type { ClusterContext } from '../cluster/context.js';
import { requireSecrets } from '../cluster/context.js';
import { portFree } from '../cluster/ports.js';
import { PgmError } from '../errors.js';
import { pgStart, postmasterRunning, readTail } from '../postgres/control.js';
import { assertReachable } from '../postgres/osuser.js';
import { withClient } from '../postgres/sql.js';
import type { Repository } from '../backup/repository.js';
import { archivePosition } from '../backup/wal-archive.js';
import { formatLsn } from '../postgres/lsn.js';
import { isEmptyDir } from '../util/fsx.js';
import { openSegments } from '../backup/wal-open.js';
import { parseSegmentName } from '../backup/wal-names.js';
import { materialize } from './materialize.js';
import { spoolDirFor, spoolRestoreCommand, spoolWal } from './wal-fetch.js';
import { planRestore, type ArchiveReach, type RestorePlan, type RestoreTarget } from './plan.js';
import { configureRecovery, recoverySettings } from './recovery.js';

export interface RestoreOptions {
  readonly targetDir: string;
  readonly port: number;
  readonly target: RestoreTarget;
  readonly start: boolean;
}

export interface RestoreResult {
  readonly plan: RestorePlan;
  readonly targetDir: string;
  readonly port: number;
  readonly bytes: number;
  readonly started: boolean;
}

/**
 * `pgmaestro restore --target-dir DIR --port P [target] [--start]`: plan the
 * chain, write the data directory, configure recovery to the target and,
 * with --start, run it until the target is reached and it is promoted.
 * A failure before the instance starts removes everything it wrote.
 */
export async function restore(ctx: ClusterContext, repo: Repository, opts: RestoreOptions, log: (line: string) => void): Promise<RestoreResult> {
  const targetDir = path.resolve(opts.targetDir);

  // 1. plan the chain (refuses a target the repository cannot reach)
  const plan = planRestore(await repo.listForRestore(), await archiveReach(repo), opts.target);
  log(plan.summary);

  // 2. check the destination before writing anything
  if (!isEmptyDir(targetDir)) {
    throw new PgmError('data_dir.not_empty', `the restore target ${targetDir} is not empty.`, { hint: 'restore into an empty or missing directory.' });
  }
  assertReachable(targetDir, ctx.user, 'the restore target');
  if (!(await portFree('127.0.0.1', opts.port))) {
    throw new PgmError('port.in_use', `port ${opts.port} on 127.0.0.1 is already in use.`, { hint: 'pass another --port.' });
  }

  // 3. write the data directory from the chain, and the WAL it replays beside it
  const created = !fs.existsSync(targetDir);
  const spool = spoolDirFor(targetDir);
  let bytes: number;
  try {
    ({ bytes } = await materialize(repo, plan.chain, targetDir, ctx.user));
    const base = plan.chain[plan.chain.length - 1];
    const wal = await spoolWal(repo, { lsn: base.start_lsn!, timeline: base.timeline! }, opts.target, spool, ctx.user);
    log(`fetched ${wal.files} WAL file(s) (${(wal.bytes / 1048576).toFixed(1)} MiB) into ${spool}${wal.last ? `, up to ${wal.last}` : ''}`);
    // 4. recovery settings: WAL from the spool up to the target
    configureRecovery(targetDir, { port: opts.port, settings: recoverySettings(opts.target, spoolRestoreCommand(spool)), owner: ctx.user, standalone: true });
  } catch (err) {
    if (created) fs.rmSync(targetDir, { recursive: true, force: true });
    else for (const f of fs.readdirSync(targetDir)) fs.rmSync(path.join(targetDir, f), { recursive: true, force: true });
    fs.rmSync(`${targetDir}_tablespaces`, { recursive: true, force: true });
    fs.rmSync(spool, { recursive: true, force: true });
    throw err;
  }
  log(`wrote ${targetDir} (${(bytes / 1048576).toFixed(1)} MiB)`);

  // 5. start and wait until recovery reached the target and promoted; its WAL is then no longer needed
  if (opts.start) {
    await startRestored(ctx, targetDir, opts.port);
    fs.rmSync(spool, { recursive: true, force: true });
    log(`recovered to the target and promoted; listening on 127.0.0.1:${opts.port}`);
  } else {
    log(`start it with pg_ctl; once it has recovered, ${spool} can be removed`);
  }
  return { plan, targetDir, port: opts.port, bytes, started: opts.start };
}

/** Starts a restored instance and returns once it has left recovery. */
export async function startRestored(ctx: ClusterContext, dataDir: string, port: number, timeoutMs = 3600_000, host = '127.0.0.1'): Promise<void> {
  const logFile = path.join(dataDir, 'log', 'startup.log');
  await pgStart(ctx.bins, ctx.user, dataDir, logFile, 3600);
  const secrets = requireSecrets(ctx);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!postmasterRunning(dataDir)) {
      throw new PgmError('restore.failed', `the restored instance in ${dataDir} stopped during recovery: ${lastLog(dataDir)}.`, {
        hint: 'the target may lie beyond the archived WAL; read the log in that directory.',
      });
    }
    try {
      const inRecovery = await withClient({ host, port, user: ctx.cfg.superuser, password: secrets.superuserPassword }, async (c) => (await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0].r, 3000);
      if (!inRecovery) return;
    } catch {
      // still starting
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new PgmError('restore.failed', `the restored instance in ${dataDir} did not finish recovery in time.`, { hint: 'read its log; it keeps running.' });
}

/** How far the WAL archive reaches: the end of its newest complete segment, or of the segment in progress after it. */
export async function archiveReach(repo: Repository): Promise<ArchiveReach> {
  const entries = await repo.walEntries();
  const pos = archivePosition(entries.values());
  const open = pos ? (await openSegments(repo)).find((o) => parseSegmentName(o.segment, o.segment_size)?.segno === pos.lsn / BigInt(pos.segmentSize)) : undefined;
  if (open && pos) return { endLsn: formatLsn(pos.lsn + BigInt(open.size)), endTime: open.flushed_at };
  if (!pos) return { endLsn: null, endTime: null };
  return { endLsn: formatLsn(pos.lsn), endTime: entries.get(pos.segment)?.archived_at ?? null };
}

function lastLog(dataDir: string): string {
  const dir = path.join(dataDir, 'log');
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).map((f) => path.join(dir, f)) : [];
  const text = files.map((f) => readTail(f, 2048)).join('\n');
  const fatal = text.split('\n').filter((l) => /FATAL|PANIC|ERROR/.test(l));
  return (fatal.length > 0 ? fatal.slice(-2) : text.trim().split('\n').slice(-2)).join(' / ');
}
