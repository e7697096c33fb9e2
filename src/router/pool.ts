import { ServerConn, type ServerConnOptions } from './server.js';

/** Every connection of a pool stayed busy for as long as the client could wait. */
export class PoolTimeout extends Error {}

/**
 * The router's server connections, pooled per node, user, database and
 * startup parameters (transaction pooling: a client holds one only for a
 * transaction, or for its life once pinned). At most `size` per pool; a
 * client that finds its pool full waits its turn. Idle connections are
 * closed after `idleMs`.
 */
export class Pools {
  private readonly pools = new Map<string, Pool>();
  private readonly keys = new WeakMap<ReadonlyMap<string, string>, Map<string, string>>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly size: number,
    private readonly idleMs = 60_000,
  ) {
    this.sweeper = setInterval(() => this.sweep(), 10_000);
    this.sweeper.unref();
  }

  /** An idle connection of the pool at once, or null (the caller then awaits `acquire`). */
  takeIdle(opts: ServerConnOptions): ServerConn | null {
    const p = this.pools.get(this.keyOf(opts));
    if (!p) return null;
    for (let c = p.idle.pop(); c; c = p.idle.pop()) {
      if (c.closed) continue;
      p.busy++;
      return c;
    }
    return null;
  }

  async acquire(opts: ServerConnOptions, waitMs: number): Promise<ServerConn> {
    const key = this.keyOf(opts);
    let p = this.pools.get(key);
    if (!p) {
      p = { idle: [], busy: 0, waiters: [], node: opts.node };
      this.pools.set(key, p);
    }
    for (let c = p.idle.pop(); c; c = p.idle.pop()) {
      if (c.closed) continue;
      p.busy++;
      return c;
    }
    if (p.busy < this.size) {
      p.busy++;
      try {
        const c = await ServerConn.connect(opts);
        (c as { poolKey?: string }).poolKey = key;
        return c;
      } catch (err) {
        p.busy--;
        this.wake(p);
        throw err;
      }
    }
    return new Promise<ServerConn>((resolve, reject) => {
      const w: Waiter = {
        opts,
        take: (c: ServerConn) => {
          clearTimeout(timer);
          resolve(c);
        },
        fail: (err: Error) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      const timer = setTimeout(() => {
        p!.waiters.splice(p!.waiters.indexOf(w), 1);
        reject(new PoolTimeout(`all ${this.size} server connections of this user and database on ${opts.node} stayed busy for ${waitMs} ms`));
      }, waitMs);
      p!.waiters.push(w);
    });
  }

  /** Gives a connection back: to a waiting client, or to the idle list; a closed or dirty one is dropped. */
  release(c: ServerConn, reusable: boolean): void {
    const p = this.pools.get((c as { poolKey?: string }).poolKey ?? '');
    if (!p) {
      c.terminate();
      return;
    }
    if (!reusable || c.closed) {
      p.busy--;
      if (!c.closed) c.destroy();
      this.wake(p);
      return;
    }
    const w = p.waiters.shift();
    if (w) {
      w.take(c);
      return;
    }
    p.busy--;
    c.idleSince = Date.now();
    c.onFrames = () => undefined;
    c.onClose = () => undefined;
    p.idle.push(c);
  }

  /** Closes every idle connection to `node`; busy ones are the attached sessions' to drop. */
  closeIdle(node: string): number {
    let n = 0;
    for (const p of this.pools.values()) {
      if (p.node !== node) continue;
      for (const c of p.idle.splice(0)) {
        c.terminate();
        n++;
      }
    }
    return n;
  }

  /** Open connections to `node` (busy and idle): what least connections counts. */
  countFor(node: string): number {
    let n = 0;
    for (const p of this.pools.values()) if (p.node === node) n += p.busy + p.idle.length;
    return n;
  }

  /** The pool key of `opts`, computed once per session's parameters and node. */
  private keyOf(o: ServerConnOptions): string {
    let byNode = this.keys.get(o.params);
    if (!byNode) this.keys.set(o.params, (byNode = new Map()));
    const k = `${o.node}\0${o.user}\0${o.database}`;
    let key = byNode.get(k);
    if (key === undefined) byNode.set(k, (key = poolKey(o)));
    return key;
  }

  /** Open connections by node (busy and idle). */
  byNode(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const p of this.pools.values()) out[p.node] = (out[p.node] ?? 0) + p.busy + p.idle.length;
    return out;
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const p of this.pools.values()) for (const c of p.idle.splice(0)) c.terminate();
  }

  /** A slot freed up (a connection was dropped): the first waiter gets a new connection. */
  private wake(p: Pool): void {
    const w = p.waiters.shift();
    if (!w) return;
    p.busy++;
    ServerConn.connect(w.opts).then(
      (c) => {
        (c as { poolKey?: string }).poolKey = this.keyOf(w.opts);
        w.take(c);
      },
      (err: Error) => {
        p.busy--;
        w.fail(err);
      },
    );
  }

  private sweep(): void {
    const now = Date.now();
    for (const p of this.pools.values()) {
      p.idle = p.idle.filter((c) => {
        if (!c.closed && now - c.idleSince < this.idleMs) return true;
        c.terminate();
        return false;
      });
    }
  }
}

interface Waiter {
  readonly opts: ServerConnOptions;
  take(c: ServerConn): void;
  fail(err: Error): void;
}

interface Pool {
  idle: ServerConn[];
  busy: number;
  waiters: Waiter[];
  readonly node: string;
}

function poolKey(o: ServerConnOptions): string {
  const params = [...o.params].sort(([a], [b]) => (a < b ? -1 : 1));
  return JSON.stringify([o.node, o.host, o.port, o.user, o.database, params]);
}
