import net from 'node:net';
import { listenOn } from '../daemon/listen.js';

/**
 * A TCP endpoint (it does not parse the PostgreSQL protocol) that pipes every
 * client connection to a target: `rw` forwards to the one current target (the
 * primary, `setTarget`); `ro` passes a `pick` function that chooses a target
 * for each new connection (a replica by least connections) and takes targets
 * out with `dropTarget`.
 *
 * Guarantees:
 * - `setTarget(next)` destroys every session with the previous target before
 *   it returns, so no client keeps writing to an old primary; connections
 *   accepted afterwards go to `next`. A connection still being opened to the
 *   previous target has not passed it a byte, so it moves to `next` instead.
 * - With no target (`null`: during failover or fencing) new connections are
 *   held, unread, for up to `holdMs`; they are forwarded as soon as a target is
 *   set, or closed when the time is up. Nothing a client sends is lost while
 *   it waits (a client that gives up meanwhile is noticed only then).
 * - A target that refuses or does not answer within `connectTimeoutMs` (a
 *   primary that crashed, before the failover is decided) is tried again every
 *   250 ms, the client held meanwhile, within the same `holdMs`: a failover
 *   looks like a pause to a new client, not like an error; when the time is
 *   up the client's connection is closed (it sees an EOF and retries).
 * - Each direction is piped with backpressure; a half-close (FIN) is passed on
 *   and the other direction keeps flowing until it ends too.
 * - `close()` stops accepting and destroys every connection; nothing is left
 *   behind (no socket, timer or listener).
 */

export interface EndpointTarget {
  readonly name: string;
  readonly host: string;
  readonly port: number;
}

export interface EndpointOptions {
  readonly host: string;
  /** 0 picks a free port; `address` then reports the real one. */
  readonly port: number;
  /** How long connecting to the target may take before the client is closed (default 5 s). */
  readonly connectTimeoutMs?: number;
  /** How long a connection waits for a target when there is none (default 10 s). */
  readonly holdMs?: number;
  readonly log?: (sentence: string) => void;
  /**
   * Chooses the target of each new connection instead of the current one:
   * a target, null to hold the connection until `release()` finds one, or
   * 'refuse' to close it at once.
   */
  readonly pick?: () => EndpointTarget | null | 'refuse';
  /** A listening socket inherited from the endpoint's keeper (see daemon/listen.ts); null: bind host:port. */
  readonly fd?: number | null;
}

export interface EndpointStats {
  readonly address: string;
  readonly listening: boolean;
  readonly target: EndpointTarget | null;
  /** Connections piped to the target right now. */
  readonly active: number;
  /** Connections whose connection to the target is being opened. */
  readonly connecting: number;
  /** Connections waiting for a target. */
  readonly held: number;
  /** Totals since the endpoint was created (bytes include the live connections'). */
  readonly accepted: number;
  readonly forwarded: number;
  readonly dropped: number;
  readonly unreachable: number;
  readonly holdExpired: number;
  readonly bytesFromClients: number;
  readonly bytesToClients: number;
  /** Connections piped or being opened, by target name. */
  readonly perTarget: Record<string, number>;
}

/** One client connection and, once opened, its connection to a target. */
interface Link {
  readonly client: net.Socket;
  state: 'held' | 'connecting' | 'piped';
  upstream: net.Socket | null;
  /** The target of `upstream`. */
  target: EndpointTarget | null;
  holdTimer: NodeJS.Timeout | null;
  /** The next attempt after the target refused. */
  retryTimer: NodeJS.Timeout | null;
  /** Since when it waits for a target (held or retrying); null once piped. */
  waitingSince: number | null;
  /** Sockets of a piped link that have closed cleanly; the link is forgotten when both have. */
  closed: number;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
const RETRY_MS = 250;
const DEFAULT_HOLD_MS = 10_000;

export class Endpoint {
  private readonly opts: EndpointOptions;
  private readonly server: net.Server;
  private readonly links = new Set<Link>();
  private readonly connectTimeoutMs: number;
  private readonly holdMs: number;
  private readonly log: (sentence: string) => void;
  private current: EndpointTarget | null = null;
  private boundPort: number | null = null;
  private closing = false;
  /** Whether an unreachable target has been logged since it last answered (one line per outage, not per client). */
  private unreachableLogged = false;
  private expiredSinceChange = 0;
  private totals = { accepted: 0, forwarded: 0, dropped: 0, unreachable: 0, holdExpired: 0, bytesFromClients: 0, bytesToClients: 0 };

  constructor(opts: EndpointOptions) {
    this.opts = opts;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.holdMs = opts.holdMs ?? DEFAULT_HOLD_MS;
    this.log = opts.log ?? (() => undefined);
    // allowHalfOpen: a client's FIN must not close our side before the server has answered.
    // pauseOnConnect: a held client's bytes stay in the kernel until it is piped.
    this.server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => this.accept(socket));
    this.server.on('error', (err) => {
      if (this.server.listening) this.log(`endpoint ${this.address} listener error: ${err.message}`);
    });
  }

  get address(): string {
    const host = net.isIPv6(this.opts.host) ? `[${this.opts.host}]` : this.opts.host;
    return `${host}:${this.boundPort ?? this.opts.port}`;
  }

  get target(): EndpointTarget | null {
    return this.current;
  }

  get stats(): EndpointStats {
    let active = 0;
    let connecting = 0;
    let held = 0;
    const perTarget: Record<string, number> = {};
    let liveIn = 0;
    let liveOut = 0;
    for (const l of this.links) {
      liveIn += l.client.bytesRead;
      liveOut += l.client.bytesWritten;
      if (l.state === 'held') held++;
      else if (l.state === 'connecting') connecting++;
      else active++;
      if (l.target && l.state !== 'held') perTarget[l.target.name] = (perTarget[l.target.name] ?? 0) + 1;
    }
    const t = this.totals;
    return {
      address: this.address,
      listening: this.server.listening,
      target: this.current,
      active,
      connecting,
      held,
      ...t,
      bytesFromClients: t.bytesFromClients + liveIn,
      bytesToClients: t.bytesToClients + liveOut,
      perTarget,
    };
  }

  /** Resolves once the endpoint accepts connections (on the inherited socket `opts.fd` when given). */
  async listen(): Promise<void> {
    await listenOn(this.server, { host: this.opts.host, port: this.opts.port }, 'endpoint', this.opts.fd ?? null);
    const a = this.server.address();
    if (a && typeof a === 'object') this.boundPort = a.port;
  }

  /**
   * Points the endpoint at `next` (or at nothing), dropping every connection to
   * the previous target first. Returns, and logs, one sentence saying what changed.
   */
  setTarget(next: EndpointTarget | null, reason: string): string {
    const sentence = describeChange(this.address, this.holdMs, reason, this.retarget(next));
    this.log(sentence);
    return sentence;
  }

  /** setTarget's work without the sentence: what changed, for a caller that sums several endpoints (forwarders.ts). */
  retarget(next: EndpointTarget | null): TargetChange {
    const prev = this.current;
    if (sameTarget(prev, next)) return { prev, next, same: true, dropped: 0, moved: 0, released: 0, expired: 0 };
    this.current = next;
    this.unreachableLogged = false;

    // Drop every session on the previous target. A connection still opening
    // to it has not passed it a byte (the client is read only once piped), so
    // it moves to the new target, or waits for one.
    let dropped = 0;
    let moved = 0;
    let released = 0;
    for (const l of [...this.links]) {
      if (l.state === 'piped') {
        dropped++;
        this.teardown(l);
      } else if (l.state === 'connecting') {
        moved++;
        this.abandonUpstream(l);
        if (next) this.forward(l, next);
        else this.hold(l);
      } else if (next) {
        released++;
        this.forward(l, next);
      }
    }
    this.totals.dropped += dropped;
    const expired = this.expiredSinceChange;
    this.expiredSinceChange = 0;
    return { prev, next, same: false, dropped, moved, released, expired };
  }

  /** Connections piped to or being opened to `name` (what least-connections balancing counts). */
  connectionsTo(name: string): number {
    let n = 0;
    for (const l of this.links) if (l.state !== 'held' && l.target?.name === name) n++;
    return n;
  }

  /**
   * `pick` mode: destroys every piped connection to `name` and sends the ones
   * still opening to it elsewhere. Returns how many were dropped.
   */
  dropTarget(name: string): number {
    let dropped = 0;
    for (const l of [...this.links]) {
      if (l.target?.name !== name) continue;
      if (l.state === 'piped') {
        dropped++;
        this.teardown(l);
      } else if (l.state === 'connecting') {
        this.abandonUpstream(l);
        this.route(l);
      }
    }
    this.totals.dropped += dropped;
    return dropped;
  }

  /** `pick` mode: offers every held connection to `pick` again. Returns how many found a target. */
  release(): number {
    let released = 0;
    for (const l of [...this.links]) {
      if (l.state !== 'held') continue;
      const t = this.choose();
      if (t === null) break;
      if (t === 'refuse') {
        this.teardown(l);
        continue;
      }
      released++;
      this.forward(l, t);
    }
    return released;
  }

  /** Stops accepting, destroys every connection, and resolves once the listener is closed. */
  close(): Promise<void> {
    this.closing = true;
    for (const l of [...this.links]) this.teardown(l);
    if (!this.server.listening) return Promise.resolve();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    if (this.closing) {
      client.destroy();
      return;
    }
    this.totals.accepted++;
    const link: Link = { client, state: 'held', upstream: null, target: null, holdTimer: null, retryTimer: null, waitingSince: null, closed: 0 };
    this.links.add(link);
    client.setNoDelay(true);
    client.setKeepAlive(true, 10_000);
    client.on('error', () => this.teardown(link));
    client.once('close', (hadError: boolean) => {
      this.totals.bytesFromClients += client.bytesRead;
      this.totals.bytesToClients += client.bytesWritten;
      this.closed(link, hadError);
    });
    this.route(link);
  }

  private choose(): EndpointTarget | null | 'refuse' {
    return this.opts.pick ? this.opts.pick() : this.current;
  }

  /** Sends a new (or redirected) connection to its target, holds it, or refuses it. */
  private route(link: Link): void {
    const t = this.choose();
    if (t === 'refuse') this.teardown(link);
    else if (t) this.forward(link, t);
    else this.hold(link);
  }

  /** Keeps the client waiting, unread, until a target is set or holdMs has passed since it began to wait. */
  private hold(link: Link): void {
    link.state = 'held';
    link.target = null;
    link.waitingSince ??= Date.now();
    if (link.holdTimer) clearTimeout(link.holdTimer);
    link.holdTimer = setTimeout(() => {
      this.totals.holdExpired++;
      this.expiredSinceChange++;
      this.teardown(link);
    }, Math.max(0, link.waitingSince + this.holdMs - Date.now()));
  }

  /** The target refused: hold the client and try again shortly (the target, or whatever `pick` or a new target says then). */
  private retry(link: Link): void {
    this.abandonUpstream(link);
    this.hold(link);
    if (link.retryTimer) clearTimeout(link.retryTimer);
    link.retryTimer = setTimeout(() => {
      link.retryTimer = null;
      if (this.links.has(link) && link.state === 'held') this.route(link);
    }, RETRY_MS);
  }

  /** Opens the connection to `target` and pipes both ways once it is up. */
  private forward(link: Link, target: EndpointTarget): void {
    if (link.holdTimer) clearTimeout(link.holdTimer);
    if (link.retryTimer) clearTimeout(link.retryTimer);
    link.holdTimer = link.retryTimer = null;
    link.state = 'connecting';
    const upstream = net.connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
    link.upstream = upstream;
    link.target = target;
    upstream.setTimeout(this.connectTimeoutMs);
    upstream.once('timeout', () => upstream.destroy(Object.assign(new Error(`no answer within ${seconds(this.connectTimeoutMs)}`), { code: 'ETIMEDOUT' })));
    // The guards ignore an upstream the link has abandoned (see abandonUpstream).
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (link.upstream !== upstream) return;
      if (link.state === 'connecting') {
        this.unreachable(target, err);
        this.retry(link);
        return;
      }
      this.teardown(link);
    });
    upstream.once('close', (hadError: boolean) => {
      if (link.upstream === upstream) this.closed(link, hadError);
    });
    upstream.once('connect', () => {
      if (link.upstream !== upstream) return;
      upstream.setTimeout(0);
      upstream.setKeepAlive(true, 10_000);
      link.state = 'piped';
      link.waitingSince = null;
      this.totals.forwarded++;
      this.unreachableLogged = false;
      // pipe() ends the destination when its source ends (half-close) and
      // pauses the source while the destination's buffer is full (backpressure).
      link.client.pipe(upstream);
      upstream.pipe(link.client);
    });
  }

  /** Forgets and destroys a connection still being opened, keeping its client. */
  private abandonUpstream(link: Link): void {
    const upstream = link.upstream;
    link.upstream = null;
    upstream?.destroy();
  }

  /**
   * One socket of a link closed. A clean close of a piped link means its
   * direction ended normally and the other socket is finishing on its own (it
   * may still be flushing the last bytes), so it is left alone; any other
   * close takes the whole link down.
   */
  private closed(link: Link, hadError: boolean): void {
    if (link.state !== 'piped' || hadError) {
      this.teardown(link);
      return;
    }
    if (++link.closed === 2) this.links.delete(link);
  }

  private unreachable(target: EndpointTarget, err: NodeJS.ErrnoException): void {
    this.totals.unreachable++;
    if (this.unreachableLogged || (!this.opts.pick && !sameTarget(target, this.current))) return;
    this.unreachableLogged = true;
    this.log(`endpoint ${this.address} cannot reach ${describe(target)} (${err.code ?? err.message}); new connections wait for it (up to ${seconds(this.holdMs)}) and are closed after that`);
  }

  /** Destroys both sockets of a link and forgets it; safe to call more than once. */
  private teardown(link: Link): void {
    if (!this.links.delete(link)) return;
    if (link.holdTimer) clearTimeout(link.holdTimer);
    if (link.retryTimer) clearTimeout(link.retryTimer);
    link.holdTimer = link.retryTimer = null;
    link.upstream?.destroy();
    link.client.destroy();
  }
}

/** What a change of target did (summed over the threads of a multi-threaded endpoint). */
export interface TargetChange {
  readonly prev: EndpointTarget | null;
  readonly next: EndpointTarget | null;
  /** The target was already that one: nothing changed. */
  readonly same: boolean;
  readonly dropped: number;
  readonly moved: number;
  readonly released: number;
  readonly expired: number;
}

/** One sentence saying what a change of target did. Pure. */
export function describeChange(address: string, holdMs: number, reason: string, c: TargetChange): string {
  const { prev, next } = c;
  if (c.same) return next ? `endpoint ${address} already forwards to ${describe(next)}: ${reason}` : `endpoint ${address} already holds new connections with no target: ${reason}`;
  const parts = [next ? `endpoint ${address} now forwards to ${describe(next)}: ${reason}` : `endpoint ${address} holds new connections (up to ${seconds(holdMs)}) with no target: ${reason}`];
  if (prev) parts.push(`dropped ${plural(c.dropped, 'connection')} to ${prev.name}`);
  if (prev && c.moved > 0) parts.push(`${next ? 'redirected' : 'holding'} ${plural(c.moved, 'connection')} still opening to ${prev.name}`);
  if (c.released > 0) parts.push(`released ${plural(c.released, 'held connection')}`);
  if (c.expired > 0) parts.push(`closed ${plural(c.expired, 'connection')} held longer than ${seconds(holdMs)}`);
  return parts.join('; ');
}

/** Adds two changes of the same target on two threads. */
export function sumChanges(a: TargetChange, b: TargetChange): TargetChange {
  return { prev: a.prev ?? b.prev, next: a.next, same: a.same && b.same, dropped: a.dropped + b.dropped, moved: a.moved + b.moved, released: a.released + b.released, expired: a.expired + b.expired };
}

function sameTarget(a: EndpointTarget | null, b: EndpointTarget | null): boolean {
  if (a === null || b === null) return a === b;
  return a.name === b.name && a.host === b.host && a.port === b.port;
}

function describe(t: EndpointTarget): string {
  const host = net.isIPv6(t.host) ? `[${t.host}]` : t.host;
  return `${t.name} (${host}:${t.port})`;
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))} s`;
}
