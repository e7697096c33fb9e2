import fs from 'node:fs';
import { PgmError } from '../errors.js';
import { writeFileAtomic } from '../util/fsx.js';

/**
 * What the cluster knows about itself beyond its configuration: which node is
 * primary now (it changes on failover), the timeline, fenced nodes.
 */
export interface ClusterState {
  readonly version: 1;
  readonly cluster: string;
  readonly primary: string;
  readonly timeline: number | null;
  readonly fenced: readonly string[];
  readonly updatedAt: string;
  /**
   * A promotion in progress: written before the first irreversible step and
   * cleared after the last, so a daemon that restarts mid-way finishes it.
   */
  readonly pending?: { readonly kind: 'failover' | 'switchover'; readonly from: string; readonly to: string; readonly reason: string; readonly at: string } | null;
  /**
   * The endpoints hold new connections (no primary) until `until` (ISO time)
   * or until cleared: a switchover sets it while it stops the old primary
   * cleanly, before anything is irreversible. A stale hold expires by itself.
   */
  readonly hold?: { readonly reason: string; readonly until: string } | null;
}

/** Returns `s` with `change` applied and a fresh timestamp. */
export function nextState(s: ClusterState, change: Partial<Omit<ClusterState, 'version' | 'cluster' | 'updatedAt'>>): ClusterState {
  return { ...s, ...change, updatedAt: new Date().toISOString() };
}

/**
 * Persistence of ClusterState. `write` must be atomic: a reader sees the old
 * state or the new one, never a torn file. Lab mode keeps it on local disk;
 * multi-host mode will put it in etcd behind this same interface.
 */
export interface StateStore {
  read(): ClusterState | null;
  write(state: ClusterState): void;
}

export class FileStateStore implements StateStore {
  constructor(private readonly file: string) {}

  read(): ClusterState | null {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch {
      return null;
    }
    try {
      return JSON.parse(text) as ClusterState;
    } catch (err) {
      throw new PgmError('cluster.state', `the cluster state file ${this.file} is not valid JSON.`, {
        hint: 'restore it from a copy, or remove it to fall back to the configured primary.',
        cause: err,
      });
    }
  }

  write(state: ClusterState): void {
    writeFileAtomic(this.file, JSON.stringify(state, null, 2) + '\n', 0o644);
  }
}
