import { PgmError } from '../errors.js';
import type { Compare, EtcdClient, Op } from './etcd-client.js';
import { clusterKeys, type ClusterKeys } from './keys.js';
import { DEFAULT_GROUP, groupOf, type ClusterState, type EventRecord, type StateStore } from './store.js';

const KEEP_EVENTS = 2000;

/** A lease id etcd never hands out: a guard with it lets no write through. */
export const NO_LEASE = '-1';

/**
 * The state store in etcd. Every write is a transaction that compares the
 * state key's mod_revision with the one this store last read or wrote (or
 * its absence), so a change made meanwhile by anyone makes the write fail
 * with `dcs.conflict` instead of being overwritten. A controller passes a
 * guard: the transaction then also requires that its controller lease still
 * holds the controller key, so a controller that lost its lease cannot write.
 */
export class EtcdStateStore implements StateStore {
  readonly kind = 'etcd' as const;
  readonly keys: ClusterKeys;
  private readonly seen = new Map<string, string>();
  private guard: Compare | null = null;
  private seq = 0;

  constructor(
    readonly client: EtcdClient,
    readonly cluster: string,
    /** Recorded with each event: the host whose agent (or CLI) wrote it. */
    private readonly host: string | null,
  ) {
    this.keys = clusterKeys(cluster);
  }

  /**
   * From now on every write also requires `lease` to hold the controller key
   * (NO_LEASE: no write can pass; null: no such requirement, for the CLI).
   */
  setGuard(lease: string | null): void {
    this.guard = lease === null ? null : { key: this.keys.controller, target: 'Lease', lease };
  }

  async read(group = DEFAULT_GROUP): Promise<ClusterState | null> {
    const kv = await this.client.get(this.keys.group(group).state);
    this.seen.set(group, kv?.modRevision ?? '0');
    return kv ? (JSON.parse(kv.value) as ClusterState) : null;
  }

  async write(state: ClusterState): Promise<void> {
    const group = groupOf(state);
    const key = this.keys.group(group).state;
    const seen = this.seen.get(group);
    const compares: Compare[] = [seen === undefined || seen === '0' ? { key, target: 'Create', revision: '0' } : { key, target: 'Mod', revision: seen }];
    if (seen === undefined) {
      // never read: compare with what is there now
      const kv = await this.client.get(key);
      compares[0] = kv ? { key, target: 'Mod', revision: kv.modRevision } : { key, target: 'Create', revision: '0' };
    }
    if (this.guard) compares.push(this.guard);
    const revision = await this.client.txnRevision(compares, [{ put: key, value: JSON.stringify({ ...state, group }) }]);
    if (revision === null) {
      this.seen.delete(group);
      if (this.guard && (await this.client.get(this.keys.controller))?.lease !== (this.guard as { lease: string }).lease) {
        throw new PgmError('lease.lost', `this agent no longer holds the controller lease, so it may not change the state of group ${group}.`, { hint: 'nothing to do: the agent holding the lease now carries on.' });
      }
      throw new PgmError('dcs.conflict', `the state of group ${group} changed in etcd while this was working on it.`, { hint: 'run the command again.' });
    }
    this.seen.set(group, revision);
  }

  async update(group: string, change: (current: ClusterState | null) => ClusterState | null): Promise<ClusterState | null> {
    for (let attempt = 0; ; attempt++) {
      const cur = await this.read(group);
      const next = change(cur);
      if (next === null) return cur;
      try {
        await this.write({ ...next, group });
        return next;
      } catch (err) {
        if (!(err instanceof PgmError && err.code === 'dcs.conflict') || attempt >= 5) throw err;
      }
    }
  }

  async primaryHolder(group = DEFAULT_GROUP): Promise<string | null> {
    return (await this.client.get(this.keys.group(group).primary))?.value ?? null;
  }

  async appendEvent(sentence: string, at = new Date()): Promise<EventRecord> {
    const rec: EventRecord = { at: at.toISOString(), sentence, ...(this.host ? { host: this.host } : {}) };
    const key = `${this.keys.events}${String(at.getTime()).padStart(15, '0')}-${this.host ?? 'cli'}-${process.pid}-${String(this.seq++).padStart(6, '0')}`;
    await this.client.txn([{ key, target: 'Create', revision: '0' }], [{ put: key, value: JSON.stringify(rec) }]);
    if (this.seq % 200 === 0) await this.trimEvents().catch(() => undefined);
    return rec;
  }

  private async trimEvents(): Promise<void> {
    const all = await this.client.list(this.keys.events);
    const ops: Op[] = all.slice(0, Math.max(0, all.length - KEEP_EVENTS)).map((k) => ({ del: k.key }));
    for (let i = 0; i < ops.length; i += 100) await this.client.txn([], ops.slice(i, i + 100));
  }

  async events(last = 50): Promise<EventRecord[]> {
    const all = await this.client.list(this.keys.events);
    return all.slice(-last).map((k) => JSON.parse(k.value) as EventRecord);
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
