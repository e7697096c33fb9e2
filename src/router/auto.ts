import { randomBytes, randomInt } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import * as pgq from 'libpg-query';
import { findNode, requireSecrets } from '../cluster/context.js';
import type { NodeConfig } from '../config/types.js';
import { listenOn } from '../daemon/listen.js';
import * as out from '../protocol/backend-serializer.js';
import { decodeSaslInitial, readStartupPacket, FrontendParser, FrontendProtocolError } from '../protocol/frontend-parser.js';
import { MECHANISM, type ScramKeys } from '../protocol/scram.js';
import { mockVerifier, ScramServer } from '../protocol/scram-server.js';
import { eligibleReplicas, type Eligibility, type NodeView } from './balance.js';
import { Catalog } from './catalog.js';
import { classifyText, type Classification } from './classify.js';
import { StateFollower, type Followed } from './follow.js';
import { admits } from './hba.js';
import { PoolTimeout, Pools } from './pool.js';
import { Prober } from './probes.js';
import { formatAddress } from './processes.js';
import { routeUnit, type Route } from './route.js';
import { ServerRefusal, cancelOn, type ServerConn, type ServerConnOptions } from './server.js';
import type { EndpointService, ServiceDeps } from './service.js';
import { Session, type SessionHost } from './session.js';
import { shapeOf } from './shape.js';

/**
 * The auto endpoint: a PostgreSQL-protocol router on one port. It
 * authenticates clients itself (SCRAM against the roles' verifiers; no
 * password known or kept), pools its own server connections per user and
 * database (transaction pooling), and sends each unit of work to the primary
 * or a replica (classify → route, both pure). It follows the cluster state
 * and its own probes like the other endpoints.
 */
export function makeAutoService(deps: ServiceDeps): EndpointService {
  return new AutoService(deps);
}

const CACHE_MAX = 20_000;
const NO_TEXT: Classification = { write: true, reason: 'no statement text', pin: null, tx: null, functions: [], route: null, hint: null };
/** Longer texts (a bulk INSERT with its data) are classified each time rather than kept. */
const CACHED_TEXT_MAX = 8192;
const RETRY_MS = 250;

/** Adds to a bounded cache, forgetting the oldest entry when full. */
function remember<V>(cache: Map<string, V>, key: string, value: V): void {
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value!);
  cache.set(key, value);
}

/** A failure to reach a server that a moment may cure: no answer, a refusal, a server starting up or shutting down (57P03). */
function transient(err: unknown): boolean {
  if (err instanceof ServerRefusal) return err.fields.C === '57P03';
  return !(err instanceof PoolTimeout);
}

class AutoService implements EndpointService, SessionHost {
  private readonly server: net.Server;
  private readonly follower: StateFollower;
  private readonly prober: Prober;
  private readonly catalog: Catalog;
  private readonly pools: Pools;
  private readonly sessions = new Map<number, Session>();
  private readonly pending = new Set<net.Socket>();
  private readonly cache = new Map<string, Classification>();
  private readonly byText = new Map<string, Classification>();
  /** Client SCRAM keys by user and verifier: what authenticates pooled connections as that user. Memory only. */
  private readonly keys = new Map<string, ScramKeys>();
  private followedNow: Followed = { primary: null, fenced: [], reason: 'not started' };
  private views: NodeView[] = [];
  private eligibility = new Map<string, Eligibility>();
  /** Kept with `eligibility` and `views`: the replicas that take reads, and each node's replay position. */
  private readable: string[] = [];
  private replayOf = new Map<string, bigint | null>();
  private primaryWaiters: (() => void)[] = [];
  private turn = 0;
  private accepted = 0;
  private closedBytes = { in: 0, out: 0 };
  private readonly routes = { primary: 0, replica: 0, retried: 0, pinned: 0 };
  private tlsContext: tls.SecureContext | null = null;
  private readonly mockSecret = randomBytes(32);

  constructor(private readonly deps: ServiceDeps) {
    const { ctx } = deps;
    const secrets = requireSecrets(ctx);
    this.server = net.createServer({ noDelay: true }, (s) => this.accept(s));
    this.server.on('error', (err) => deps.log(`auto listener error: ${err.message}`));
    this.pools = new Pools(ctx.cfg.endpoints.poolSize);
    this.catalog = new Catalog({ user: ctx.cfg.superuser, password: secrets.superuserPassword }, () => this.catalogNodes());
    this.follower = new StateFollower(ctx, (f) => this.follow(f));
    this.prober = new Prober(ctx.cfg.nodes, {
      user: ctx.cfg.superuser,
      password: secrets.superuserPassword,
      onRound: (views) => {
        this.views = views;
        this.setEligibility(eligibleReplicas(views, this.followedNow.primary, this.followedNow.fenced, ctx.cfg.endpoints));
        // Idle pooled connections to a node that takes no reads now go (a server shutting down waits for them).
        for (const [name, e] of this.eligibility) if (!e.eligible && name !== this.followedNow.primary) this.pools.closeIdle(name);
      },
    });
  }

  get wantsCommitLsn(): boolean {
    return [...this.eligibility.values()].some((e) => e.eligible);
  }

  async start(): Promise<void> {
    await pgq.loadModule();
    this.tlsContext = loadTls(this.deps);
    await this.follower.start();
    await this.prober.start();
    await listenOn(this.server, this.deps.address, 'auto endpoint');
  }

  async refresh(): Promise<string> {
    const f = await this.follower.refresh();
    return `endpoint auto ${formatAddress(this.deps.address)}: writes to ${f.primary ?? `nothing (${f.reason})`}`;
  }

  stats() {
    let bin = this.closedBytes.in;
    let bout = this.closedBytes.out;
    for (const s of this.sessions.values()) {
      bin += s.bytesIn;
      bout += s.bytesOut;
    }
    const replicas: Record<string, string> = {};
    for (const [name, e] of this.eligibility) replicas[name] = e.eligible ? 'eligible' : e.reason;
    return {
      address: formatAddress(this.deps.address),
      primary: this.followedNow.primary,
      connections: { current: this.sessions.size + this.pending.size, total: this.accepted },
      bytes: { from_clients: bin, to_clients: bout },
      routes: { ...this.routes },
      nodes: this.pools.byNode(),
      replicas,
    };
  }

  async close(): Promise<void> {
    this.follower.stop();
    for (const s of [...this.sessions.values()]) s.close();
    for (const s of this.pending) s.destroy();
    this.pools.close();
    await Promise.all([this.prober.stop(), this.catalog.close(), new Promise((r) => this.server.close(r))]);
  }

  // --- SessionHost ---------------------------------------------------------

  classify(sql: string): Classification {
    // the exact text first (a statement sent again), then its shape (the same statement with other literals)
    let c = this.byText.get(sql);
    if (c) return c;
    const key = shapeOf(sql) ?? sql;
    c = this.cache.get(key);
    if (!c) {
      c = classifyText(sql, (text) => pgq.parseSync(text));
      if (key.length <= CACHED_TEXT_MAX) remember(this.cache, key, c);
    }
    if (sql.length <= CACHED_TEXT_MAX) remember(this.byText, sql, c);
    return c;
  }

  async route(s: Session, cls: Classification | null, exclude: string | null, inDeferredBegin: boolean): Promise<Route> {
    const c = cls ?? NO_TEXT;
    let volatile = false;
    if (this.needsVolatility(s, c)) volatile = await this.catalog.anyVolatile(s.database, c.functions).catch(() => true);
    return this.routeWith(s, c, exclude, inDeferredBegin, volatile);
  }

  /** route() without waiting: null when the catalog must be asked first. */
  routeNow(s: Session, cls: Classification | null, exclude: string | null, inDeferredBegin: boolean): Route | null {
    const c = cls ?? NO_TEXT;
    let volatile = false;
    if (this.needsVolatility(s, c)) {
      const v = this.catalog.volatileCached(s.database, c.functions);
      if (v === null) return null;
      volatile = v;
    }
    return this.routeWith(s, c, exclude, inDeferredBegin, volatile);
  }

  private needsVolatility(s: Session, c: Classification): boolean {
    return !c.write && c.functions.length > 0 && !c.hint && s.setting === 'auto';
  }

  private routeWith(s: Session, c: Classification, exclude: string | null, inDeferredBegin: boolean, volatile: boolean): Route {
    return routeUnit({
      cls: c,
      volatile,
      setting: s.setting,
      inDeferredBegin,
      replicas: exclude === null ? this.readable : this.readable.filter((n) => n !== exclude),
      replayLsn: (n) => this.replayOf.get(n) ?? null,
      lastCommit: s.lastCommit,
      connections: (n) => this.pools.countFor(n),
      turn: this.turn++,
    });
  }

  /** acquire() without waiting: an idle pooled connection on the route's node, or null. */
  acquireNow(s: Session, route: Route): ServerConn | null {
    const name = route.target === 'replica' ? route.node : this.followedNow.primary;
    const keys = this.keys.get(s.user);
    if (name === null || !keys) return null;
    return this.pools.takeIdle(this.serverOptions(s, name, keys));
  }

  private serverOptions(s: Session, name: string, keys: ScramKeys): ServerConnOptions {
    const node = findNode(this.deps.ctx.cfg, name);
    return { node: node.name, host: node.service, port: node.port, user: s.user, database: s.database, params: s.params, keys, connectTimeoutMs: 5000 };
  }

  /**
   * A server connection for the route. For the primary, waits (up to
   * `endpoints.hold`) while there is none and while it does not answer or is
   * starting up or shutting down (crashed, restarting, a failover not decided
   * yet), re-reading which node is the primary on each try; a replica is
   * tried once (the caller retries a read elsewhere).
   */
  async acquire(s: Session, route: Route, holdMs = this.deps.ctx.cfg.endpoints.holdMs): Promise<ServerConn> {
    const keys = this.keys.get(s.user);
    if (!keys) throw new Error('the session has no credentials');
    const open = (name: string, waitMs: number) => this.pools.acquire(this.serverOptions(s, name, keys), waitMs);
    if (route.target === 'replica') return open(route.node, Math.max(1, holdMs));
    const deadline = Date.now() + holdMs;
    for (;;) {
      const primary = await this.awaitPrimary(deadline);
      try {
        return await open(primary, Math.max(1, deadline - Date.now()));
      } catch (err) {
        if (!transient(err) || Date.now() + RETRY_MS >= deadline) throw err;
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
  }

  /** The primary's name, waiting for one until `deadline`. */
  private async awaitPrimary(deadline: number): Promise<string> {
    while (this.followedNow.primary === null) {
      if (Date.now() >= deadline) throw new Error(`no primary (${this.followedNow.reason})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(RETRY_MS, deadline - Date.now()));
        this.primaryWaiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.followedNow.primary;
  }

  release(conn: ServerConn, reusable: boolean): void {
    const stillValid = reusable && (conn.node === this.followedNow.primary || this.eligibility.get(conn.node)?.eligible === true);
    this.pools.release(conn, stillValid);
  }

  count(route: 'primary' | 'replica' | 'retried' | 'pinned'): void {
    this.routes[route]++;
  }

  forget(s: Session): void {
    if (this.sessions.get(s.processId) === s) this.sessions.delete(s.processId);
    this.closedBytes.in += s.bytesIn;
    this.closedBytes.out += s.bytesOut;
  }

  // --- following the cluster --------------------------------------------------

  private follow(f: Followed): void {
    const before = this.followedNow.primary;
    this.followedNow = f;
    this.setEligibility(eligibleReplicas(this.views, f.primary, f.fenced, this.deps.ctx.cfg.endpoints));
    if (before !== f.primary) {
      // Fence first: nothing may go on talking to the old primary.
      let dropped = 0;
      if (before) {
        this.pools.closeIdle(before);
        for (const s of [...this.sessions.values()]) {
          if (s.server?.node === before) {
            s.server.destroy();
            dropped++;
          }
        }
      }
      this.deps.event(`auto: writes now go to ${f.primary ?? 'nothing (new ones wait)'}: ${f.reason}${before ? `; dropped ${dropped} session${dropped === 1 ? '' : 's'} in a unit on ${before}` : ''}`);
      const waiters = this.primaryWaiters.splice(0);
      for (const w of waiters) w();
    }
    for (const name of f.fenced) {
      this.pools.closeIdle(name);
      for (const s of [...this.sessions.values()]) if (s.server?.node === name) s.server.destroy();
    }
  }

  private setEligibility(e: Map<string, Eligibility>): void {
    this.eligibility = e;
    this.readable = [...e].filter(([, x]) => x.eligible).map(([n]) => n);
    this.replayOf = new Map(this.views.map((v) => [v.name, v.replayLsn]));
  }

  private catalogNodes(): NodeConfig[] {
    const { cfg } = this.deps.ctx;
    const primary = this.followedNow.primary;
    const rest = cfg.nodes.filter((n) => n.name !== primary && !this.followedNow.fenced.includes(n.name));
    return primary ? [findNode(cfg, primary), ...rest] : rest;
  }

  // --- startup and authentication -------------------------------------------

  private accept(socket: net.Socket): void {
    this.accepted++;
    this.pending.add(socket);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    socket.on('error', () => socket.destroy());
    socket.once('close', () => this.pending.delete(socket));
    const timer = setTimeout(() => socket.destroy(), 60_000); // authentication_timeout
    void this.startup(socket).catch((err: unknown) => {
      if (err instanceof FrontendProtocolError) writeFatal(socket, err.sqlstate, err.message);
      else if (err instanceof ServerRefusal) {
        socket.end(out.errorResponse(err.fields));
      } else if (!(err instanceof ClientGone)) writeFatal(socket, '08006', `pgmaestro: ${err instanceof Error ? err.message : String(err)}`);
      socket.destroy();
    }).finally(() => clearTimeout(timer));
  }

  private async startup(raw: net.Socket): Promise<void> {
    let socket: net.Socket = raw;
    let reader = new SocketReader(socket);
    let encrypted = false;
    for (;;) {
      const packet = await reader.startupPacket();
      if (packet.kind === 'sslRequest') {
        if (!this.tlsContext || encrypted) {
          socket.write('N');
          continue;
        }
        reader.detach();
        socket.write('S');
        const secure = new tls.TLSSocket(socket, { isServer: true, secureContext: this.tlsContext });
        secure.on('error', () => secure.destroy());
        socket = secure;
        reader = new SocketReader(secure);
        encrypted = true;
        continue;
      }
      if (packet.kind === 'gssEncRequest') {
        socket.write('N');
        continue;
      }
      if (packet.kind === 'cancelRequest') {
        const s = this.sessions.get(packet.processId);
        if (s && s.secretKey.equals(packet.secretKey) && s.server) cancelOn(s.server);
        socket.destroy();
        return;
      }
      if (packet.kind === 'unsupported') throw new FrontendProtocolError(`unsupported frontend protocol ${packet.code >>> 16}.${packet.code & 0xffff}: server supports 3.0 to 3.0`, '0A000');
      const params = new Map(packet.params);
      const user = params.get('user');
      if (!user) throw new FrontendProtocolError('no PostgreSQL user name specified in startup packet', '28000');
      const database = params.get('database') || user;
      if (params.has('replication') && params.get('replication') !== 'false' && params.get('replication') !== 'off') {
        throw new FrontendProtocolError('the pgmaestro auto endpoint does not take replication connections; connect to a node directly', '28000');
      }
      // The rest (application_name, client_encoding, options, …) goes to the server connections, which are pooled by it.
      for (const k of ['user', 'database', 'replication']) params.delete(k);
      await this.authenticate(socket, reader, { user, database, params, encrypted });
      return;
    }
  }

  private async authenticate(socket: net.Socket, reader: SocketReader, c: { user: string; database: string; params: Map<string, string>; encrypted: boolean }): Promise<void> {
    const { cfg } = this.deps.ctx;
    const role = await this.catalog.role(c.user).catch(() => null);
    if (role === null) throw new FrontendProtocolError('the pgmaestro auto endpoint cannot read the roles from any node right now', '57P03');
    const peer = socket.remoteAddress ?? '';
    if (!admits(cfg, peer, c.user, role.superuser)) {
      throw new FrontendProtocolError(`no pg_hba.conf entry for host "${peer.replace(/^::ffff:/, '')}", user "${c.user}", database "${c.database}", ${c.encrypted ? 'SSL encryption' : 'no encryption'}`, '28000');
    }
    const failed = new FrontendProtocolError(`password authentication failed for user "${c.user}"`, '28P01');
    const scram = new ScramServer(role.verifier ?? mockVerifier(c.user, this.mockSecret));
    socket.write(out.authenticationSasl([MECHANISM]));
    const first = await reader.password();
    const init = decodeSaslInitial(first);
    if (init.mechanism !== MECHANISM || !init.data) throw new FrontendProtocolError('client selected an invalid SASL authentication mechanism', '28000');
    const s1 = scram.first(init.data.toString('utf8'));
    if (!s1.ok) throw new FrontendProtocolError(s1.reason, '08P01');
    socket.write(out.authenticationSaslContinue(s1.message));
    const s2 = scram.final((await reader.password()).toString('utf8'));
    if (!s2.ok || role.verifier === null) throw failed;
    this.keys.set(c.user, s2.keys);
    socket.write(Buffer.concat([out.authenticationSaslFinal(s2.message), out.authenticationOk()]));

    // A first server connection: checks the database exists and gives the parameters to report.
    const key = { processId: this.newProcessId(), secretKey: randomBytes(4) };
    const session = new Session(this, socket, c.user, c.database, c.params, key);
    const probe = await this.firstConnection(session);
    const hello: Buffer[] = [];
    for (const [k, v] of probe.parameters) hello.push(out.parameterStatus(k, k === 'in_hot_standby' ? 'off' : v)); // this port takes writes
    this.release(probe, true);
    hello.push(out.backendKeyData(key.processId, key.secretKey), out.readyForQuery('I'));
    const leftover = reader.detach();
    this.pending.delete(socket);
    if (socket.destroyed) return;
    this.sessions.set(key.processId, session);
    socket.write(Buffer.concat(hello));
    socket.on('data', (d: Buffer) => session.data(d));
    socket.once('close', () => session.close());
    if (leftover.length > 0) session.data(leftover);
  }

  /**
   * The connection a new client's startup is checked on: the primary's pool
   * when a primary answers, else an eligible replica's, so new clients get in
   * (and read) while a failover is decided; with neither, waiting for a
   * primary as a write would.
   */
  private async firstConnection(s: Session): Promise<ServerConn> {
    const replicas = [...this.eligibility].filter(([, e]) => e.eligible).map(([n]) => n);
    const primary = this.followedNow.primary;
    const primaryUp = primary !== null && this.views.find((v) => v.name === primary)?.reachable !== false;
    if (replicas.length === 0) return this.acquire(s, { target: 'primary', reason: 'startup' });
    if (primaryUp) {
      try {
        return await this.acquire(s, { target: 'primary', reason: 'startup' }, 0); // one try: a replica can take the client now
      } catch (err) {
        if (!transient(err) && !(err instanceof PoolTimeout)) throw err;
      }
    }
    let last: unknown = new Error('no node answers');
    for (const node of replicas) {
      try {
        return await this.acquire(s, { target: 'replica', node, reason: 'startup' });
      } catch (err) {
        if (err instanceof ServerRefusal && err.fields.C !== '57P03') throw err;
        last = err;
      }
    }
    throw last;
  }

  private newProcessId(): number {
    for (;;) {
      const id = randomInt(1, 0x7fffffff);
      if (!this.sessions.has(id)) return id;
    }
  }
}

class ClientGone extends Error {}

/** Reads the startup exchange (untyped packets, then 'p' messages) from a socket, keeping what follows. */
class SocketReader {
  private buf: Buffer = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  private gone = false;
  private readonly parser = new FrontendParser(10_000);
  private readonly onData = (d: Buffer) => {
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    this.wake?.();
  };
  private readonly onEnd = () => {
    this.gone = true;
    this.wake?.();
  };

  constructor(private readonly socket: net.Socket) {
    socket.on('data', this.onData);
    socket.once('close', this.onEnd);
    socket.once('end', this.onEnd);
  }

  async startupPacket() {
    for (;;) {
      const r = readStartupPacket(this.buf);
      if (r) {
        this.buf = this.buf.subarray(r.length);
        return r.packet;
      }
      await this.more();
    }
  }

  /** The body of the next 'p' message. */
  async password(): Promise<Buffer> {
    for (;;) {
      const msgs = this.buf.length > 0 ? this.parser.push(this.takeAll()) : [];
      if (msgs.length > 0) {
        const m = msgs[0];
        if (m.kind !== 'password') throw new FrontendProtocolError(`expected SASL response, got message type '${String.fromCharCode(m.bytes[0])}'`);
        if (msgs.length > 1) this.buf = Buffer.concat(msgs.slice(1).map((x) => x.bytes));
        return Buffer.from(m.body);
      }
      await this.more();
    }
  }

  /** Stops reading; returns bytes already received beyond what was read. */
  detach(): Buffer {
    this.socket.off('data', this.onData);
    this.socket.off('close', this.onEnd);
    this.socket.off('end', this.onEnd);
    return this.takeAll();
  }

  private takeAll(): Buffer {
    const b = this.buf;
    this.buf = Buffer.alloc(0);
    return b;
  }

  private more(): Promise<void> {
    if (this.gone) return Promise.reject(new ClientGone());
    return new Promise((resolve) => {
      this.wake = () => {
        this.wake = null;
        resolve();
      };
    });
  }
}

function writeFatal(socket: net.Socket, sqlstate: string, text: string): void {
  if (!socket.destroyed) socket.end(out.pgError('FATAL', sqlstate, text));
}

/** The server certificate for clients that ask for TLS: endpoints.tls_cert/tls_key, else secrets/server.{crt,key} when present. */
function loadTls(deps: ServiceDeps): tls.SecureContext | null {
  const { cfg, paths } = deps.ctx;
  const cert = cfg.endpoints.tlsCert ?? path.join(paths.secretsDir, 'server.crt');
  const key = cfg.endpoints.tlsKey ?? path.join(paths.secretsDir, 'server.key');
  if (!fs.existsSync(cert) || !fs.existsSync(key)) {
    if (cfg.endpoints.tlsCert) throw new Error(`the certificate ${cert} or its key ${key} is missing`);
    return null;
  }
  return tls.createSecureContext({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) });
}
