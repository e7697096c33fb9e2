import type { NodeConfig } from '../config/types.js';
import type { ControlCheckpoint } from '../postgres/control.js';
import type { NodeRole } from './configure.js';
import type { DataDirState } from './datadir.js';
import type { NodeChange } from './reload.js';
import type { BackupInfo } from '../backup/types.js';
import type { RestoreTarget } from '../restore/plan.js';

/**
 * Control of one node's PostgreSQL: everything that must happen on the
 * node's own host. Two implementations: local (`pg_ctl`, `initdb`, clone,
 * rewind on this machine) and remote (the node's host agent over HTTPS with
 * mutual TLS). Provisioning, failover, switchover, rejoin and backups call
 * this interface and never assume the node is local. SQL to a node needs no
 * control: it goes over the network to the node's admin address from anywhere.
 *
 * Every verb is idempotent (start on a running node says 'running', fence on
 * a stopped one does nothing) so a controller that retries or takes over
 * mid-way can call it again.
 */
export interface NodeControl {
  readonly node: NodeConfig;
  readonly kind: 'local' | 'remote';
  /** What the host sees: the postmaster's pid (null when down). `reachable` false when the host (its agent) cannot be asked. Never throws. */
  inspect(): Promise<NodeInspection>;
  /** up's check before anything is written: the data directory is empty or provably this node's, reachable by the OS user, the port free. Throws a PgmError otherwise. */
  preflight(): Promise<DataDirState>;
  /** initdb into a partial directory, the node's files and marker, renamed into place. Only on an empty data directory. */
  initPrimary(): Promise<void>;
  /**
   * PostgreSQL itself (`postgres -C` on a scratch copy, on the node's host)
   * reads the files `role` would give the node, when their settings differ
   * from the current ones; throws `config.invalid` naming the refused
   * setting and where it comes from. Writes nothing.
   */
  checkConfig(role: RoleSpec): Promise<void>;
  /**
   * Writes the files pgmaestro owns for `role` (upstream named by node); when
   * they changed and the postmaster runs, reloads it and reports, from
   * PostgreSQL, what took effect, what waits for a restart and what it rejected.
   */
  configure(role: RoleSpec): Promise<NodeChange>;
  start(): Promise<'started' | 'running'>;
  stop(mode?: 'fast' | 'immediate', timeoutSec?: number): Promise<'stopped' | 'not running'>;
  /** Makes the node refuse writes at once: an immediate stop, then SIGKILL for whatever is left after a short grace (a frozen postmaster). */
  fence(reason: string): Promise<'fenced' | 'not running'>;
  /** pg_promote() and wait until it accepts writes; returns the new timeline. Already a primary: returns its timeline. */
  promote(): Promise<number>;
  /** Builds the (empty) node as a replica of `upstream` with pgmaestro's BASE_BACKUP client. The slot exists already. */
  clone(upstream: string): Promise<{ bytes: number; ms: number }>;
  /** Rebuilds a stopped node as a replica of `upstream`: pg_rewind where possible (not with `fresh`), else a fresh clone (with a fresh slot) with the old data kept aside. */
  rebuild(upstream: string, opts?: { fresh?: boolean }): Promise<{ how: 'pg_rewind' | 'a fresh clone'; log: string[] }>;
  /** Rebuilds a replica whose slot was lost: a fresh slot, a fresh clone (the old data removed once it streams), started; its progress lines to `log`. */
  reclone(upstream: string, log: (line: string) => void): Promise<string>;
  /** `backup cold`: stop cleanly, copy the data directory into the repository, start again — on the node's host, where the repository must be reachable too. */
  coldBackup(): Promise<BackupInfo>;
  /** `restore --node`: rebuild the node from the repository, on its host; the progress lines go to `log`. */
  restoreFromRepository(target: RestoreTarget, log: (line: string) => void): Promise<string>;
  /** The latest checkpoint in pg_control (after a clean stop: the shutdown checkpoint). */
  checkpoint(): Promise<ControlCheckpoint>;
  /** The last lines of the node's server log, to explain a failure ('' when none). */
  logTail(lines?: number): Promise<string>;
}

export type RoleSpec = { readonly kind: 'primary' } | { readonly kind: 'replica'; readonly upstream: string };

export interface NodeInspection {
  readonly reachable: boolean;
  readonly pid: number | null;
  /** Why the host could not be asked, when it could not. */
  readonly error?: string;
  /** Multi-host: the last failsafe call this host's agent received from a primary's agent cut off from etcd. */
  readonly failsafe?: { readonly from: string; readonly ageMs: number } | null;
}

export function roleSpec(role: NodeRole): RoleSpec {
  return role.kind === 'primary' ? role : { kind: 'replica', upstream: role.upstream.name };
}
