import { PgmError } from '../errors.js';
import type { Compare, EtcdClient } from './etcd-client.js';

/**
 * A key held through a lease of this process: the primary key of a group,
 * the controller key, an agent's own key. etcd deletes the key when the
 * lease expires, so holding it is a statement of liveness that nobody has
 * to retract for a dead holder.
 *
 * Guarantees:
 * - `acquire` creates the key only if nobody holds it (and every extra
 *   comparison holds), in one transaction; it says whether this process holds it now.
 * - `renew` extends the lease; after a failed renewal `validUntil` stays
 *   where the last successful one put it.
 * - `validUntil` is computed from the moment the last successful renewal (or
 *   grant) was *sent*, which is no later than the moment etcd started
 *   counting: the lease cannot expire before `validUntil` (clock rates aside),
 *   so a holder that acts only before `validUntil - margin` never acts
 *   without the lease.
 */
export class LeasedKey {
  private lease: string | null = null;
  private sentAt = 0;
  private held = false;

  constructor(
    private readonly client: EtcdClient,
    readonly key: string,
    private readonly ttlMs: number,
  ) {}

  get holding(): boolean {
    return this.held;
  }

  /** The earliest moment the lease can expire, in Date.now() terms; 0 when not held. */
  get validUntil(): number {
    return this.held ? this.sentAt + this.ttlMs : 0;
  }

  get leaseId(): string | null {
    return this.held ? this.lease : null;
  }

  /** Holds the key with `value` unless another lease holds it; true when this process holds it afterwards. */
  async acquire(value: string, extra: readonly Compare[] = []): Promise<boolean> {
    if (this.held) return this.renew();
    const sent = Date.now();
    const lease = await this.client.grant(this.ttlMs);
    const ok = await this.client.txn([{ key: this.key, target: 'Create', revision: '0' }, ...extra], [{ put: this.key, value, lease }]);
    if (!ok) {
      await this.client.revoke(lease).catch(() => undefined);
      return false;
    }
    this.lease = lease;
    this.sentAt = sent;
    this.held = true;
    return true;
  }

  /**
   * Takes over a lease this holder had before it restarted (an agent's
   * restart keeps its primary lease): held again when `lease` still holds
   * the key and etcd renews it.
   */
  async adopt(lease: string): Promise<boolean> {
    if (this.held) return this.lease === lease && this.renew();
    const kv = await this.client.get(this.key);
    if (!kv || kv.lease !== lease) return false;
    const sent = Date.now();
    if ((await this.client.keepAlive(lease)) <= 0) return false;
    this.lease = lease;
    this.sentAt = sent;
    this.held = true;
    return true;
  }

  /** Extends the lease; false (and no longer held) when etcd says it expired. Throws `dcs.unavailable` when etcd cannot answer. */
  async renew(): Promise<boolean> {
    if (!this.held || this.lease === null) return false;
    const sent = Date.now();
    const ttl = await this.client.keepAlive(this.lease);
    if (ttl <= 0) {
      this.held = false;
      return false;
    }
    this.sentAt = sent;
    return true;
  }

  /** Rewrites the value (the key stays under the same lease). */
  async set(value: string): Promise<void> {
    if (!this.held || this.lease === null) throw new PgmError('lease.lost', `${this.key} is not held by this process.`, { hint: 'acquire it first.' });
    const ok = await this.client.txn([{ key: this.key, target: 'Lease', lease: this.lease }], [{ put: this.key, value, lease: this.lease }]);
    if (!ok) this.held = false;
  }

  /** Gives the key up at once (revokes the lease); forgets it locally even when etcd cannot be told. */
  async release(): Promise<void> {
    const lease = this.lease;
    this.held = false;
    this.lease = null;
    if (lease !== null) await this.client.revoke(lease);
  }

  /** Forgets the lease without telling etcd (it expires by itself). */
  drop(): void {
    this.held = false;
    this.lease = null;
  }
}
