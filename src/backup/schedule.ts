import { Cron } from 'croner';
import type { ClusterContext } from '../cluster/context.js';
import { PgmError } from '../errors.js';
import { expire } from './expire.js';
import { hotBackup } from './physical.js';
import { Repository } from './repository.js';
import { formatBytes } from '../util/format.js';
import { withLocks } from '../cluster/lock.js';

/** How long a scheduled backup waits for a backup (or expiry) someone started by hand. */
const SCHEDULED_WAIT_MS = 3 * 3600_000;

/**
 * The daemon's backup policy: the configured cron schedules for full and
 * incremental backups, each followed by expiry of what the window no longer
 * needs. An incremental with no full to build on becomes a full; where the
 * server cannot take incrementals (PostgreSQL < 17) the slot is skipped, the
 * weekly full and the WAL archive still covering the window. Runs never overlap.
 */
export class BackupScheduler {
  private readonly jobs: Cron[] = [];
  private running: Promise<void> | null = null;

  constructor(
    private readonly ctx: ClusterContext,
    private readonly log: (line: string) => void,
  ) {}

  start(): void {
    const { schedule } = this.ctx.cfg.backup;
    this.jobs.push(new Cron(schedule.full, { protect: true }, () => void this.run('full')));
    this.jobs.push(new Cron(schedule.incr, { protect: true }, () => void this.run('incr')));
    this.log(`backup schedule: full "${schedule.full}" (next ${this.jobs[0].nextRun()?.toISOString()}), incremental "${schedule.incr}" (next ${this.jobs[1].nextRun()?.toISOString()}), window ${this.ctx.cfg.backup.retention}`);
  }

  stop(): Promise<void> {
    for (const j of this.jobs) j.stop();
    return this.running ?? Promise.resolve();
  }

  /** Takes one scheduled backup and expires; returns the sentence it logged. */
  async run(type: 'full' | 'incr'): Promise<string> {
    if (this.running) return this.say(`skipped the scheduled ${type} backup: another backup is still running`);
    let done!: () => void;
    this.running = new Promise((r) => (done = r));
    try {
      const repo = Repository.open(this.ctx);
      let kind = type;
      if (kind === 'incr' && !repo.list().some((b) => b.type === 'full')) kind = 'full';
      try {
        // a backup taken by hand meanwhile finishes first; this one then follows it
        const { b, e } = await withLocks(this.ctx.locks, ['repository'], `daemon: scheduled ${kind} backup`, SCHEDULED_WAIT_MS, async () => {
          const taken = await hotBackup(this.ctx, repo, { type: kind, quiet: true });
          return { b: taken, e: expire(repo, this.ctx.cfg.backup.retentionMs, { dryRun: false }) };
        });
        return this.say(
          `scheduled ${b.type} backup ${b.id} from ${b.node}: ${formatBytes(b.stored_bytes)} stored; expired ${e.remove.length} backup(s) and ${e.removedWal.length} WAL segment(s)`,
        );
      } catch (err) {
        if (err instanceof PgmError && err.code === 'backup.unsupported' && kind === 'incr') return this.say(`skipped the scheduled incremental backup: ${err.message}`);
        return this.say(`scheduled ${kind} backup failed: ${err instanceof PgmError ? err.render() : (err as Error).message}`);
      }
    } finally {
      this.running = null;
      done();
    }
  }

  private say(line: string): string {
    this.log(line);
    return line;
  }
}
