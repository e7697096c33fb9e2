import os from 'node:os';
import { busyError, type HeldLock, type LockHolder, type LockKind, type LockManager } from '../cluster/lock.js';
import { PgmError } from '../errors.js';
import type { EtcdClient } from './etcd-client.js';
import { LeasedKey } from './lease.js';

/**
 * The cluster and repository locks of a multi-host cluster: a key each
 * (`/pgmaestro/<cluster>/locks/<kind>`) held under a lease of the holding
 * process, so commands on different hosts exclude each other as commands on
 * one machine do with FileLocks. The holder renews the lease every third of
 * the ttl in the background; a holder that dies, even by SIGKILL, frees the
 * lock when its lease expires (within dcs.etcd.ttl) rather than at once.
 * A holder cut off from etcd for longer than the ttl loses the lock: its
 * work goes on, but another command may then start beside it — the same
 * trade as every lease, and why the controller's own writes also carry the
 * controller lease.
 */
export class EtcdLocks implements LockManager {
  constructor(
    private readonly client: EtcdClient,
    private readonly root: string,
    private readonly cluster: string,
    private readonly ttlMs: number,
    /** The host this process runs on, as the cluster names it (the agent's), else the machine's name. */
    private readonly host: string = os.hostname(),
  ) {}

  private key(kind: LockKind): string {
    return `${this.root}locks/${kind}`;
  }

  async acquire(kind: LockKind, command: string, waitMs: number | null): Promise<HeldLock> {
    const holder: LockHolder = { command, pid: process.pid, host: this.host, since: new Date().toISOString() };
    const lease = new LeasedKey(this.client, this.key(kind), this.ttlMs);
    const deadline = waitMs === null ? Date.now() : Date.now() + waitMs;
    while (!(await lease.acquire(JSON.stringify(holder)))) {
      if (Date.now() >= deadline) throw busyError(kind, this.cluster, await this.holder(kind), waitMs);
      await new Promise((r) => setTimeout(r, Math.min(250, Math.max(10, deadline - Date.now()))));
    }
    const timer = setInterval(() => {
      lease.renew().catch(() => undefined);
    }, Math.max(200, Math.floor(this.ttlMs / 3)));
    timer.unref();
    let released = false;
    return {
      kind,
      release: async () => {
        if (released) return;
        released = true;
        clearInterval(timer);
        await lease.release().catch((err: unknown) => {
          // etcd unreachable: the lease expires by itself within the ttl
          if (!(err instanceof PgmError && err.code === 'dcs.unavailable')) throw err;
        });
      },
    };
  }

  async holder(kind: LockKind): Promise<LockHolder | null> {
    const kv = await this.client.get(this.key(kind));
    if (!kv) return null;
    try {
      return JSON.parse(kv.value) as LockHolder;
    } catch {
      return null;
    }
  }
}
