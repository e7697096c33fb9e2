import fs from 'node:fs';
import type { ClusterConfig, NodeConfig } from '../config/types.js';
import { PgmError } from '../errors.js';
import { resolveBinaries, type Binaries } from '../postgres/binaries.js';
import type { RunAs } from '../postgres/exec.js';
import { assertReachable, blockingDir, resolveOsUser } from '../postgres/osuser.js';
import type { SqlTarget } from '../postgres/sql.js';
import { clusterPaths, type ClusterPaths } from './paths.js';
import { applyLab, readLab, type LabRecord } from './lab.js';
import { readSecrets, type Secrets } from './secrets.js';
import { FileLocks, type LockManager } from './lock.js';
import { FileStateStore, type StateStore } from './state.js';

/** Everything a cluster operation needs, resolved once per command. */
export interface ClusterContext {
  readonly cfg: ClusterConfig;
  readonly bins: Binaries;
  readonly user: RunAs;
  readonly paths: ClusterPaths;
  readonly store: StateStore;
  /** Lab mode: the network namespaces the nodes run in. */
  readonly lab: LabRecord | null;
  /** The cluster and repository locks that keep concurrent commands apart. */
  readonly locks: LockManager;
}

/**
 * Resolves the OS user and the binaries (checking, before anything is created,
 * that the user can run them), then the cluster's directories. `notice` hears
 * the one-off things done on the way (a private copy of the embedded PostgreSQL).
 */
export async function openCluster(loaded: ClusterConfig, notice: (line: string) => void = (l) => process.stderr.write(`pgmaestro: ${l}\n`)): Promise<ClusterContext> {
  const user = await resolveOsUser(loaded.osUser);
  const bins = await resolveBinaries(loaded.binDir, user, notice);
  const paths = clusterPaths(loaded);
  fs.mkdirSync(paths.stateDir, { recursive: true });
  fs.mkdirSync(paths.logsDir, { recursive: true });
  const lab = loaded.ha.isolation === 'netns' ? readLab(paths.stateDir) : null;
  const cfg = lab ? applyLab(loaded, lab) : loaded;
  return { cfg, bins, user, paths, store: new FileStateStore(paths.stateFile), lab, locks: lockManager(cfg) };
}

/**
 * Refuses, naming the directory that blocks it, when the PostgreSQL OS user
 * cannot reach a path it needs: every data directory (and the tablespaces
 * beside it), the secrets (the replicas' passfile), the logs (pg_ctl writes
 * there) and the repository (restore_command reads it).
 */
export function assertPathsReachable(ctx: ClusterContext): void {
  const fix = (blocked: string) =>
    `set home: in ${ctx.cfg.file} to a directory that user can traverse (for example /var/lib/pgmaestro/${ctx.cfg.cluster}), or allow it with chmod o+x ${blocked}.`;
  const check = (target: string, what: string) => {
    const b = blockingDir(target, ctx.user);
    if (b !== null) assertReachable(target, ctx.user, what, fix(b));
  };
  for (const n of ctx.cfg.nodes) check(n.dataDir, `the data directory of ${n.name}`);
  check(ctx.paths.secretsDir, 'the secrets directory');
  check(ctx.paths.logsDir, 'the logs directory');
  check(ctx.cfg.backup.repository, 'the backup repository');
}

/** The locks of a cluster; they need nothing but its configuration, so commands take them before anything else. */
export function lockManager(cfg: ClusterConfig): LockManager {
  return new FileLocks(cfg.home, cfg.cluster);
}

export function findNode(cfg: ClusterConfig, name: string): NodeConfig {
  const node = cfg.nodes.find((n) => n.name === name);
  if (!node) {
    throw new PgmError('node.unknown', `there is no node '${name}' in ${cfg.file}.`, { hint: `use one of: ${cfg.nodes.map((n) => n.name).join(', ')}.` });
  }
  return node;
}

/** The node that is primary now: the persisted state, else the configured initial primary. */
export function currentPrimaryName(ctx: ClusterContext): string {
  const st = ctx.store.read();
  if (st && ctx.cfg.nodes.some((n) => n.name === st.primary)) return st.primary;
  return ctx.cfg.initialPrimary;
}

export function requireSecrets(ctx: ClusterContext): Secrets {
  const s = readSecrets(ctx.cfg);
  if (!s) {
    throw new PgmError('cluster.state', `the cluster ${ctx.cfg.cluster} has no secrets in ${ctx.paths.secretsDir}; it was never provisioned.`, {
      hint: 'run `pgmaestro up` first.',
    });
  }
  return s;
}

/** How pgmaestro reaches a node for SQL: its admin address, as the superuser. */
export function adminTarget(ctx: ClusterContext, node: NodeConfig, secrets: Secrets): SqlTarget {
  return { host: node.admin, port: node.port, user: ctx.cfg.superuser, password: secrets.superuserPassword };
}

/** A libpq URI without password, for humans and scripts. */
export function nodeDsn(ctx: ClusterContext, node: NodeConfig): string {
  return `postgresql://${ctx.cfg.superuser}@${node.service}:${node.port}/postgres`;
}
