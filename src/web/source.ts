import fs from 'node:fs';
import { Repository } from '../backup/repository.js';
import type { BackupInfo, WalEntry } from '../backup/types.js';
import type { ClusterContext } from '../cluster/context.js';
import { clusterStatus, type ClusterStatus } from '../cluster/status.js';
import type { BackupConfig } from '../config/types.js';
import { readEvents, type EventRecord } from '../daemon/events.js';
import type { RecoveryAnalysis } from './timeline.js';

/**
 * Where the console's data comes from. Everything is read, never written,
 * and nothing here throws for a node or a repository that is down: each
 * part says what it could not read instead.
 */

/** One endpoint the daemon (or, later, the router processes of issue 10/16) serves. */
export interface EndpointStat {
  readonly name: string;
  readonly address: string;
  /** The node it forwards to now; null while it holds connections (failover) or for a balanced endpoint. */
  readonly target: string | null;
  readonly connections: number;
  readonly waiting: number;
  readonly bytesFromClients: number;
  readonly bytesToClients: number;
  /** Router decisions by route (`auto` endpoint only; empty otherwise). */
  readonly decisions: Readonly<Record<string, number>>;
  readonly pid: number | null;
}

export type RepositoryInputs =
  | { readonly ok: true; readonly backups: readonly BackupInfo[]; readonly wal: readonly WalEntry[]; readonly policy: BackupConfig; readonly analysis: RecoveryAnalysis | null }
  | { readonly ok: false; readonly error: string };

/** What one observation of the cluster gathers. */
export interface ConsoleInputs {
  readonly at: Date;
  /** null when the observation itself failed (then `error` says why). */
  readonly status: ClusterStatus | null;
  readonly error: string | null;
  readonly events: readonly EventRecord[];
  readonly repository: RepositoryInputs;
  readonly endpoints: readonly EndpointStat[];
  /** The monitor's latest sentence (it logs only changes; this is the current one). */
  readonly monitor: { readonly at: string; readonly sentence: string } | null;
}

export interface ConsoleSource {
  observe(): Promise<ConsoleInputs>;
}

/**
 * Hooks the host process fills in: the daemon knows its in-process endpoint
 * and its monitor; an agent (issue 9) will know its own. The recovery
 * analysis and the router's statistics plug in here when they exist.
 */
export interface SourceHooks {
  /** The endpoint processes' figures (the daemon asks each over its control socket). */
  readonly endpoints?: () => readonly EndpointStat[] | Promise<readonly EndpointStat[]>;
  readonly monitor?: () => { at: string; sentence: string } | null;
  readonly analysis?: (backups: readonly BackupInfo[], wal: readonly WalEntry[], policy: BackupConfig) => RecoveryAnalysis | null;
}

const EVENTS_SHOWN = 100;

/** The lab's source: `clusterStatus()`, the event log, the repository. */
export function clusterSource(ctx: ClusterContext, hooks: SourceHooks = {}): ConsoleSource {
  const repo = new RepositoryReader(ctx);
  const events = new EventTail(ctx);
  return {
    async observe(): Promise<ConsoleInputs> {
      const at = new Date();
      let status: ClusterStatus | null = null;
      let error: string | null = null;
      try {
        status = await clusterStatus(ctx);
      } catch (err) {
        error = `the cluster could not be observed: ${(err as Error).message}`;
      }
      const repository = await repo.read(hooks.analysis);
      return { at, status, error, events: await events.read(), repository, endpoints: await Promise.resolve(safe(() => hooks.endpoints?.() ?? [], [])).catch(() => []), monitor: safe(() => hooks.monitor?.() ?? null, null) };
    },
  };
}

function safe<T>(f: () => T, fallback: T): T {
  try {
    return f();
  } catch {
    return fallback;
  }
}

/** The event log, newest first, from the state store (a file in the lab, etcd on several hosts); the last one read when the store does not answer. */
class EventTail {
  private cached: readonly EventRecord[] = [];
  constructor(private readonly ctx: ClusterContext) {}

  async read(): Promise<readonly EventRecord[]> {
    try {
      this.cached = (await readEvents(this.ctx, EVENTS_SHOWN)).reverse();
    } catch {
      // the store does not answer now (or a line is being appended): keep what we had
    }
    return this.cached;
  }
}

/**
 * The repository's catalog and WAL records. WAL records never change once
 * written, so each is read once; the catalog is re-read each time (a few
 * markers). A repository that cannot be read is reported, not raised.
 */
class RepositoryReader {
  private readonly wal = new Map<string, WalEntry>();
  constructor(private readonly ctx: ClusterContext) {}

  async read(analyse: SourceHooks['analysis']): Promise<RepositoryInputs> {
    let repo: Repository | null = null;
    try {
      repo = await Repository.open(this.ctx, 'read');
      const local = repo.storage.localPath('.');
      if (local !== null && !fs.existsSync(local)) {
        // before the first backup the repository may not exist; once WAL is archived it must
        if (this.ctx.cfg.backup.walArchive && this.wal.size > 0) throw new Error('the directory is gone');
        return { ok: true, backups: [], wal: [], policy: this.ctx.cfg.backup, analysis: null };
      }
      if (local !== null) fs.accessSync(local, fs.constants.R_OK | fs.constants.X_OK);
      const backups = await repo.list();
      const names = new Set((await repo.storage.list('wal')).filter((n) => n.endsWith('.json')));
      for (const n of [...this.wal.keys()]) if (!names.has(`${n}.json`)) this.wal.delete(n);
      for (const n of names) {
        const name = n.slice(0, -'.json'.length);
        if (this.wal.has(name)) continue;
        const e = JSON.parse((await repo.storage.read(`wal/${n}`)).toString('utf8')) as WalEntry;
        this.wal.set(e.name, e);
      }
      const wal = [...this.wal.values()];
      const policy = this.ctx.cfg.backup;
      return { ok: true, backups, wal, policy, analysis: analyse?.(backups, wal, policy) ?? null };
    } catch (err) {
      return { ok: false, error: `the backup repository ${this.ctx.cfg.backup.repository} cannot be read: ${(err as Error).message.replace(/\.$/, '')}` };
    } finally {
      await repo?.close().catch(() => undefined);
    }
  }
}
