import fs from 'node:fs';
import { Etcd3, isRecoverableError, type IKeyValue, type ICompare, type IRequestOp } from 'etcd3';
import { noop } from 'cockatiel';
import type { EtcdConfig } from '../config/types.js';
import { PgmError } from '../errors.js';
import { prefixEnd } from './keys.js';

export interface Kv {
  readonly key: string;
  readonly value: string;
  readonly modRevision: string;
  readonly createRevision: string;
  /** '0' when the key has no lease. */
  readonly lease: string;
}

/** One comparison of a transaction, in the words of etcd's API. */
export type Compare =
  | { readonly key: string; readonly target: 'Mod' | 'Create'; readonly revision: string }
  | { readonly key: string; readonly target: 'Lease'; readonly lease: string }
  | { readonly key: string; readonly target: 'Value'; readonly value: string };

export type Op = { readonly put: string; readonly value: string; readonly lease?: string } | { readonly del: string; readonly prefix?: boolean };

/**
 * A thin layer over the etcd3 client: every request bounded by
 * `retry_timeout` (a minority member never answers; the caller must learn
 * that in time), every failure turned into one PgmError saying which
 * endpoints could not be reached, values as strings, transactions as plain
 * data. Leases are driven explicitly, one keepalive per call, so their
 * holder knows exactly when it last renewed them.
 *
 * Like etcd's own client, it talks to one member at a time (pinned) and
 * moves to the next when that one fails: a refused connection moves at
 * once, a member that does not answer (frozen, cut off, in a minority) gets
 * a share of the budget and is then left for the next. So a member's death
 * costs one reconnect, never a failed request, while a majority answers.
 * A request retried on another member after its first attempt timed out
 * may have been applied already: every write here is a compare-and-swap or
 * idempotent, so a retry can only fail its comparison, never apply twice.
 */
export class EtcdClient {
  private readonly conns: Etcd3[];
  private current = 0;
  /** A pool over every member, for watches (they reconnect by themselves). */
  private watcher: Etcd3 | null = null;
  /** Called when the pinned member changes: `from` failed, `to` answers. */
  onReconnect: ((from: string, to: string, why: string) => void) | null = null;

  /**
   * `budgetMs`: how long one request may take, over every member it tries.
   * The agents pass retry_timeout (their leases are timed by it); a one-shot
   * command, whose first connection may take a while on a loaded machine and
   * whose reads time nothing, passes more.
   */
  constructor(
    private readonly cfg: EtcdConfig,
    private readonly budgetMs: number = cfg.retryTimeoutMs,
  ) {
    this.conns = cfg.endpoints.map((e) => this.connect([e]));
  }

  private connect(hosts: string[]): Etcd3 {
    const cfg = this.cfg;
    const credentials = cfg.tls ? { rootCertificate: readFile(cfg.tls.ca), certChain: readFile(cfg.tls.cert), privateKey: readFile(cfg.tls.key) } : undefined;
    return new Etcd3({
      hosts,
      credentials,
      dialTimeout: this.budgetMs,
      // one attempt per call: moving between members is this class's job
      faultHandling: hosts.length === 1 ? { host: () => noop, global: noop } : undefined,
      defaultCallOptions: () => ({ deadline: Date.now() + this.budgetMs }),
    });
  }

  get endpoints(): readonly string[] {
    return this.cfg.endpoints;
  }

  /** The member requests go to now. */
  get pinned(): string {
    return this.cfg.endpoints[this.current];
  }

  /**
   * Runs `fn` on the pinned member; on failure, on the next ones, until the
   * budget (retry_timeout) is spent: the pinned member gets half of it, each
   * other one its share of what is left, so one that hangs cannot eat it all.
   */
  private async call<T>(what: string, fn: (c: Etcd3) => Promise<T>): Promise<T> {
    const n = this.conns.length;
    const deadline = Date.now() + this.budgetMs;
    const failures: string[] = [];
    let firstWhy: string | undefined;
    let lastErr: unknown = null;
    for (let i = 0; i < n; i++) {
      const idx = (this.current + i) % n;
      const left = deadline - Date.now();
      if (left <= 0) break;
      // the pinned member gets half the budget (a first connection takes a while), the others share the rest
      const share = i === n - 1 ? left : i === 0 ? Math.floor(left / 2) : Math.floor(left / (n - i));
      try {
        const r = await withTimeout(fn(this.conns[idx]), share);
        if (idx !== this.current) {
          const from = this.cfg.endpoints[this.current];
          this.current = idx;
          this.onReconnect?.(from, this.cfg.endpoints[idx], firstWhy ?? 'it failed');
        }
        return r;
      } catch (err) {
        if (err instanceof PgmError) throw err;
        if (!retriable(err)) throw this.failure(what, err);
        lastErr = err;
        firstWhy ??= oneLine(err);
        failures.push(`${this.cfg.endpoints[idx]}: ${oneLine(err)}`);
      }
    }
    throw this.failure(what, lastErr ?? new Error(`no answer within ${this.budgetMs} ms`), failures);
  }

  private failure(what: string, err: unknown, failures: string[] = []): PgmError {
    return new PgmError('dcs.unavailable', `etcd (${this.cfg.endpoints.join(', ')}) did not answer ${what}: ${failures.length > 0 ? failures.join('; ') : oneLine(err)}.`, {
      hint: 'check that a majority of the etcd members run and that this host reaches them (dcs.etcd.endpoints).',
      cause: err,
    });
  }

  /**
   * Calls `onChange` whenever a key under `prefix` changes (put or delete).
   * Best effort, for reacting at once: callers still poll, as a watch
   * cut off from the majority simply stays silent.
   */
  async watch(prefix: string, onChange: () => void): Promise<void> {
    this.watcher ??= this.connect([...this.cfg.endpoints]);
    const w = await this.watcher.watch().prefix(prefix).create();
    w.on('put', onChange).on('delete', onChange).on('error', () => undefined).on('disconnected', () => undefined);
  }

  async get(key: string): Promise<Kv | null> {
    const r = await this.call(`a read of ${key}`, (c) => c.kv.range({ key: Buffer.from(key) }));
    return r.kvs.length > 0 ? kv(r.kvs[0]) : null;
  }

  async list(prefix: string): Promise<Kv[]> {
    const r = await this.call(`a read of ${prefix}*`, (c) => c.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix) }));
    return r.kvs.map(kv).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** Several reads in one round trip, all at one revision: each a key, or a prefix (`prefix: true`). */
  async readMany(reads: readonly { readonly key: string; readonly prefix?: boolean }[]): Promise<Kv[][]> {
    const r = await this.call('a read', (c) =>
      c.kv.txn({ compare: [], success: reads.map((x) => ({ request_range: { key: Buffer.from(x.key), range_end: x.prefix ? prefixEnd(x.key) : undefined } })), failure: [] }),
    );
    return r.responses.map((res) => (res.response_range?.kvs ?? []).map(kv).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)));
  }

  /** Runs `ops` if every comparison holds; returns whether it did (and the revision it made: the mod_revision of what it put). */
  async txn(compares: readonly Compare[], ops: readonly Op[]): Promise<boolean> {
    return (await this.txnRevision(compares, ops)) !== null;
  }

  async txnRevision(compares: readonly Compare[], ops: readonly Op[]): Promise<string | null> {
    const r = await this.call('a transaction', (c) =>
      c.kv.txn({ compare: compares.map(compare), success: ops.map(op), failure: [] }),
    );
    return r.succeeded ? String(r.header.revision) : null;
  }

  async grant(ttlMs: number): Promise<string> {
    const r = await this.call('a lease grant', (c) => c.leaseClient.leaseGrant({ TTL: Math.ceil(ttlMs / 1000) }));
    return String(r.ID);
  }

  /** One keepalive; returns the lease's remaining TTL in seconds, 0 when it expired (or never existed). */
  async keepAlive(lease: string): Promise<number> {
    return this.call('a lease renewal', async (c) => {
      const stream = await c.leaseClient.leaseKeepAlive();
      try {
        return await new Promise<number>((resolve, reject) => {
          stream.on('data', (res: { TTL: string }) => resolve(Number(res.TTL)));
          stream.on('error', reject);
          stream.write({ ID: lease });
        });
      } finally {
        stream.end();
      }
    });
  }

  async revoke(lease: string): Promise<void> {
    await this.call('a lease revocation', (c) => c.leaseClient.leaseRevoke({ ID: lease })).catch((err: PgmError) => {
      if (!/not found/i.test(String(err.cause ?? ''))) throw err;
    });
  }

  /** Whether each configured endpoint answers a status request on its own, within the budget. Never throws. */
  async endpointHealth(): Promise<{ endpoint: string; healthy: boolean }[]> {
    return Promise.all(
      this.conns.map(async (c, i) => ({
        endpoint: this.cfg.endpoints[i],
        healthy: await withTimeout(c.maintenance.status(), this.budgetMs).then(() => true, () => false),
      })),
    );
  }

  /** Each member's name, client URLs and whether it answers a status request. */
  async members(): Promise<{ name: string; endpoints: string[]; healthy: boolean; leader: boolean }[]> {
    const list = await this.call('a member list', (c) => c.cluster.memberList({}));
    const out = [];
    for (const m of list.members) {
      const urls = m.clientURLs ?? [];
      let healthy = false;
      let leader = false;
      if (urls.length > 0) {
        const one = new Etcd3({ hosts: urls, dialTimeout: this.budgetMs, defaultCallOptions: () => ({ deadline: Date.now() + this.budgetMs }), credentials: this.cfg.tls ? { rootCertificate: readFile(this.cfg.tls.ca), certChain: readFile(this.cfg.tls.cert), privateKey: readFile(this.cfg.tls.key) } : undefined });
        try {
          const st = await one.maintenance.status();
          healthy = true;
          leader = st.leader === m.ID;
        } catch {
          healthy = false;
        } finally {
          one.close();
        }
      }
      out.push({ name: m.name, endpoints: urls, healthy, leader });
    }
    return out;
  }

  close(): void {
    for (const m of this.conns) m.close();
    this.watcher?.close();
  }
}

function kv(k: IKeyValue): Kv {
  return { key: k.key.toString(), value: k.value.toString(), modRevision: String(k.mod_revision), createRevision: String(k.create_revision), lease: String(k.lease ?? '0') };
}

function compare(c: Compare): ICompare {
  const key = Buffer.from(c.key);
  switch (c.target) {
    case 'Mod':
      return { key, target: 'Mod', result: 'Equal', mod_revision: c.revision };
    case 'Create':
      return { key, target: 'Create', result: 'Equal', create_revision: c.revision };
    case 'Lease':
      return { key, target: 'Lease', result: 'Equal', lease: c.lease };
    case 'Value':
      return { key, target: 'Value', result: 'Equal', value: Buffer.from(c.value) };
  }
}

function op(o: Op): IRequestOp {
  if ('put' in o) return { request_put: { key: Buffer.from(o.put), value: Buffer.from(o.value), lease: o.lease ?? '0' } };
  return { request_delete_range: { key: Buffer.from(o.del), range_end: o.prefix ? prefixEnd(o.del) : undefined } };
}

/** Errors of the member or the way to it (another member may answer); an answer of etcd itself (a bad request, an expired lease) is final. */
function retriable(err: unknown): boolean {
  return err instanceof Error && (isRecoverableError(err) || /no answer within|ECONNREFUSED|UNAVAILABLE|DEADLINE|Connection|closed/i.test(err.message));
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]);
}

function readFile(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new PgmError('certs.invalid', `cannot read ${file} for TLS to etcd (${(err as NodeJS.ErrnoException).code}).`, { hint: 'fix dcs.etcd.tls in the configuration.' });
  }
}

function oneLine(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  return m.split('\n')[0].replace(/\.$/, '');
}
