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

  /** Whether a backup is being taken now. */
  get busy(): boolean {
    return this.running !== null;
  }

  /**
   * Takes one backup and expires; returns the sentence it logged. `requestedBy`
   * names who asked when it is not the schedule (an operator in the console).
   */
  async run(type: 'full' | 'incr', requestedBy?: string): Promise<string> {
    const label = type === 'incr' ? 'incremental' : 'full';
    const what = requestedBy ? `${label} backup requested by ${requestedBy}` : `scheduled ${label} backup`;
    if (this.running) return this.say(`skipped the ${what}: another backup is still running`);
    let done!: () => void;
    this.running = new Promise((r) => (done = r));
    let kind = type;
    try {
      try {
        const repo = Repository.open(this.ctx); // inside: a repository that cannot be opened is a failed run, never an unhandled rejection
        if (kind === 'incr' && !repo.list().some((b) => b.type === 'full')) kind = 'full';
        // a backup taken by hand meanwhile finishes first; this one then follows it
        const { b, e } = await withLocks(this.ctx.locks, ['repository'], `daemon: ${what}`, SCHEDULED_WAIT_MS, async () => {
          const taken = await hotBackup(this.ctx, repo, { type: kind, quiet: true });
          return { b: taken, e: expire(repo, this.ctx.cfg.backup.retentionMs, { dryRun: false }) };
        });
        return this.say(
          `${requestedBy ? '' : 'scheduled '}${b.type} backup ${b.id} from ${b.node}${requestedBy ? ` (requested by ${requestedBy})` : ''}: ${formatBytes(b.stored_bytes)} stored; expired ${e.remove.length} backup(s) and ${e.removedWal.length} WAL segment(s)`,
        );
      } catch (err) {
        if (err instanceof PgmError && err.code === 'backup.unsupported' && kind === 'incr') return this.say(`skipped the ${what}: ${err.message}`);
        return this.say(`${what} failed: ${err instanceof PgmError ? err.render() : (err as Error).message}`);
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
