import path from 'node:path';
import type { ClusterConfig, NodeConfig } from '../config/types.js';

/** Where the cluster keeps its own files, all under its home (the config file's directory unless `home` says otherwise). */
export interface ClusterPaths {
  readonly secretsDir: string;
  readonly superuserPassword: string;
  readonly replicationPassword: string;
  /** libpq passfile for the superuser: `PGPASSFILE=... psql DSN`. */
  readonly superuserPassfile: string;
  /** libpq passfile the replicas' primary_conninfo names. */
  readonly replicationPassfile: string;
  readonly stateDir: string;
  readonly stateFile: string;
  readonly daemonPid: string;
  readonly daemonLog: string;
  readonly logsDir: string;
  nodeLog(node: NodeConfig): string;
}

export function clusterPaths(cfg: ClusterConfig): ClusterPaths {
  const secretsDir = path.join(cfg.home, 'secrets');
  const stateDir = path.join(cfg.home, 'state');
  const logsDir = path.join(cfg.home, 'logs');
  return {
    secretsDir,
    superuserPassword: path.join(secretsDir, 'superuser.password'),
    replicationPassword: path.join(secretsDir, 'replication.password'),
    superuserPassfile: path.join(secretsDir, 'superuser.pgpass'),
    replicationPassfile: path.join(secretsDir, 'replication.pgpass'),
    stateDir,
    stateFile: path.join(stateDir, 'state.json'),
    daemonPid: path.join(stateDir, 'daemon.pid'),
    daemonLog: path.join(logsDir, 'pgmaestro.log'),
    logsDir,
    nodeLog: (node) => path.join(logsDir, `${node.name}.log`),
  };
}

/** A partially built data directory lives here until it is complete, then is renamed into place. */
export function partialDir(dataDir: string): string {
  return `${dataDir}.pgmaestro-partial`;
}

/** Identity of a data directory, written inside it, so pgmaestro never adopts another cluster's data. */
export const MARKER_FILE = 'pgmaestro.json';
