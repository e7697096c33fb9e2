import fs from 'node:fs';
import { Etcd3, type IKeyValue, type ICompare, type IRequestOp } from 'etcd3';
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
 */
export class EtcdClient {
  private readonly client: Etcd3;

  constructor(private readonly cfg: EtcdConfig) {
    const credentials = cfg.tls ? { rootCertificate: readFile(cfg.tls.ca), certChain: readFile(cfg.tls.cert), privateKey: readFile(cfg.tls.key) } : undefined;
    this.client = new Etcd3({
      hosts: [...cfg.endpoints],
      credentials,
      dialTimeout: cfg.retryTimeoutMs,
      defaultCallOptions: () => ({ deadline: Date.now() + cfg.retryTimeoutMs }),
    });
  }

  get endpoints(): readonly string[] {
    return this.cfg.endpoints;
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.cfg.retryTimeoutMs} ms`)), this.cfg.retryTimeoutMs + 50);
    });
    try {
      return await Promise.race([fn(), timeout]);
    } catch (err) {
      if (err instanceof PgmError) throw err;
      throw new PgmError('dcs.unavailable', `etcd (${this.cfg.endpoints.join(', ')}) did not answer ${what}: ${oneLine(err)}.`, {
        hint: 'check that a majority of the etcd members run and that this host reaches them (dcs.etcd.endpoints).',
        cause: err,
      });
    } finally {
      clearTimeout(timer);
    }
  }

  async get(key: string): Promise<Kv | null> {
    const r = await this.call(`a read of ${key}`, () => this.client.kv.range({ key: Buffer.from(key) }));
    return r.kvs.length > 0 ? kv(r.kvs[0]) : null;
  }

  async list(prefix: string): Promise<Kv[]> {
    const r = await this.call(`a read of ${prefix}*`, () => this.client.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix) }));
    return r.kvs.map(kv).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** Runs `ops` if every comparison holds; returns whether it did (and the revision it made: the mod_revision of what it put). */
  async txn(compares: readonly Compare[], ops: readonly Op[]): Promise<boolean> {
    return (await this.txnRevision(compares, ops)) !== null;
  }

  async txnRevision(compares: readonly Compare[], ops: readonly Op[]): Promise<string | null> {
    const r = await this.call('a transaction', () =>
      this.client.kv.txn({ compare: compares.map(compare), success: ops.map(op), failure: [] }),
    );
    return r.succeeded ? String(r.header.revision) : null;
  }

  async grant(ttlMs: number): Promise<string> {
    const r = await this.call('a lease grant', () => this.client.leaseClient.leaseGrant({ TTL: Math.ceil(ttlMs / 1000) }));
    return String(r.ID);
  }

  /** One keepalive; returns the lease's remaining TTL in seconds, 0 when it expired (or never existed). */
  async keepAlive(lease: string): Promise<number> {
    return this.call('a lease renewal', async () => {
      const stream = await this.client.leaseClient.leaseKeepAlive();
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
    await this.call('a lease revocation', () => this.client.leaseClient.leaseRevoke({ ID: lease })).catch((err: PgmError) => {
      if (!/not found/i.test(String(err.cause ?? ''))) throw err;
    });
  }

  /** Each member's name, client URLs and whether it answers a status request. */
  async members(): Promise<{ name: string; endpoints: string[]; healthy: boolean; leader: boolean }[]> {
    const list = await this.call('a member list', () => this.client.cluster.memberList({}));
    const out = [];
    for (const m of list.members) {
      const urls = m.clientURLs ?? [];
      let healthy = false;
      let leader = false;
      if (urls.length > 0) {
        const one = new Etcd3({ hosts: urls, dialTimeout: this.cfg.retryTimeoutMs, defaultCallOptions: () => ({ deadline: Date.now() + this.cfg.retryTimeoutMs }), credentials: this.cfg.tls ? { rootCertificate: readFile(this.cfg.tls.ca), certChain: readFile(this.cfg.tls.cert), privateKey: readFile(this.cfg.tls.key) } : undefined });
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
    this.client.close();
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
