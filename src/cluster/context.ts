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
import { FileStateStore } from '../dcs/file.js';
import { DEFAULT_GROUP, type StateStore } from '../dcs/store.js';
import { FileLocks, type LockManager } from './lock.js';
import type { NodeControl } from './node-control.js';

/** Everything a cluster operation needs, resolved once per command. */
export interface ClusterContext {
  readonly cfg: ClusterConfig;
  readonly bins: Binaries;
  readonly user: RunAs;
  readonly paths: ClusterPaths;
  readonly store: StateStore;
  /** The group of nodes (a primary and its replicas) this context acts on. */
  readonly group: string;
  /** Lab mode: the network namespaces the nodes run in. */
  readonly lab: LabRecord | null;
  /** Multi-host: the host this process acts for (an agent's own); null for the CLI and in lab mode. */
  readonly host: string | null;
  /** How this process controls `node`: here, or through its host's agent. */
  control(node: NodeConfig): NodeControl;
  /** The cluster and repository locks that keep concurrent commands apart. */
  readonly locks: LockManager;
}

export interface OpenOptions {
  /**
   * A long-running process reading a changed configuration again keeps its
   * state store and locks (an agent's store carries its controller guard).
   */
  readonly reuse?: Pick<ClusterContext, 'store' | 'locks'>;
  /**
   * Multi-host: the host this process acts for. An agent passes its own host
   * (its nodes are controlled locally, the others through their agents); the
   * CLI passes nothing and reaches every node through its agent, presenting
   * the certificate of $PGMAESTRO_HOST or of the first host whose key is in secrets/.
   */
  readonly host?: string | null;
}

/**
 * Resolves the OS user and the binaries (checking, before anything is created,
 * that the user can run them), then the cluster's directories. `notice` hears
 * the one-off things done on the way (a private copy of the embedded PostgreSQL).
 */
export async function openCluster(loaded: ClusterConfig, notice: (line: string) => void = (l) => process.stderr.write(`pgmaestro: ${l}\n`), opts: OpenOptions = {}): Promise<ClusterContext> {
  const user = await resolveOsUser(loaded.osUser);
  const bins = await resolveBinaries(loaded.binDir, user, notice);
  const paths = clusterPaths(loaded);
  fs.mkdirSync(paths.stateDir, { recursive: true });
  fs.mkdirSync(paths.logsDir, { recursive: true });
  const lab = loaded.ha.isolation === 'netns' ? readLab(paths.stateDir) : null;
  const cfg = lab ? applyLab(loaded, lab) : loaded;
  // imported here, not at the top: local control uses this module's helpers
  const { LocalNodeControl } = await import('./local-control.js');
  const here = opts.host ?? null;
  const controls = new Map<string, NodeControl>();
  let remote: ((node: NodeConfig) => NodeControl) | null = null;
  let store: StateStore = new FileStateStore(paths.stateDir);
  let locks: LockManager = lockManager(cfg);
  if (cfg.dcs) {
    const multi = await import('./multihost.js');
    if (!opts.reuse) {
      const etcd = multi.etcdStore(cfg, here);
      store = etcd;
      locks = multi.etcdLocks(cfg, etcd, here);
    }
    remote = multi.remoteControls(cfg, here);
  }
  if (opts.reuse) ({ store, locks } = opts.reuse);
  opened.add(store);
  const ctx: ClusterContext = {
    cfg,
    bins,
    user,
    paths,
    store,
    group: DEFAULT_GROUP,
    lab,
    host: here,
    locks,
    control(node) {
      let c = controls.get(node.name);
      if (!c) controls.set(node.name, (c = remote && node.host !== here ? remote(node) : new LocalNodeControl(ctx, node)));
      return c;
    },
  };
  return ctx;
}

const opened = new Set<StateStore>();

/** Closes every state store this process opened (a command's end: an etcd connection would keep it alive). */
export async function closeClusters(): Promise<void> {
  for (const s of opened) await s.close().catch(() => undefined);
  opened.clear();
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

/**
 * The locks of a cluster on one machine; they need nothing but its
 * configuration, so commands take them before anything else. A multi-host
 * cluster's locks are in etcd (ctx.locks); this one then guards only what is
 * done on this machine before etcd runs (the lab's `up`).
 */
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
export async function currentPrimaryName(ctx: ClusterContext): Promise<string> {
  const st = await ctx.store.read();
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
