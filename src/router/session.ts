import { createHash } from 'node:crypto';
import type net from 'node:net';
import * as out from '../protocol/backend-serializer.js';
import type { Frame } from '../protocol/framer.js';
import type { FrontendMessage } from '../protocol/frontend-messages.js';
import { FrontendParser, FrontendProtocolError } from '../protocol/frontend-parser.js';
import * as wire from '../protocol/serializer.js';
import type { Classification, RouteSetting } from './classify.js';
import type { Route } from './route.js';
import type { ServerConn } from './server.js';

/**
 * One client of the auto endpoint after authentication: its messages, the
 * server connection it holds for the current unit of work (a transaction,
 * or a statement outside one), and what it keeps across units (its
 * prepared statements, `SET pgmaestro.route`, its last commit's LSN, a
 * pin). The decisions are the router's pure functions; this is the plumbing.
 */
export interface SessionHost {
  classify(sql: string): Classification;
  /**
   * Where a unit starting with `cls` goes (null: no statement text, e.g. a
   * lone Bind), avoiding the node `exclude`; `inDeferredBegin`: the unit runs
   * inside a plain BEGIN the router answered itself.
   */
  route(s: Session, cls: Classification | null, exclude: string | null, inDeferredBegin: boolean): Promise<Route>;
  /** route() at once, or null when it must wait (a catalog lookup). */
  routeNow(s: Session, cls: Classification | null, exclude: string | null, inDeferredBegin: boolean): Route | null;
  /** A server connection on the route's node for this session's user, database and parameters; throws a sendable error. */
  acquire(s: Session, route: Route): Promise<ServerConn>;
  /** An idle pooled connection for the route at once, or null. */
  acquireNow(s: Session, route: Route): ServerConn | null;
  release(conn: ServerConn, reusable: boolean): void;
  /** Whether asking the primary for the commit LSN after a write is worth it (some replica may take reads). */
  readonly wantsCommitLsn: boolean;
  count(route: 'primary' | 'replica' | 'retried' | 'pinned'): void;
  forget(s: Session): void;
}

interface ClientStatement {
  readonly sql: string;
  /** Classified once, at its Parse: each Bind runs the same text. */
  readonly cls: Classification;
  readonly paramTypes: Buffer;
  readonly serverName: string;
}

interface Unit {
  readonly route: Route;
  /** The messages of the unit, kept to send it elsewhere if its replica dies before answering; null once something reached the client. */
  replay: FrontendMessage[] | null;
  /** Something in it may have written since the commit LSN was last asked for (it is asked again before the unit ends). */
  dirty: boolean;
  /** Transaction control seen since the last Query or Sync: how the transaction status will change at it. */
  batchTx: 'begin' | 'end' | 'unknown' | null;
  retried: boolean;
  /** The deferred BEGIN the unit opened with, sent again if the unit is retried elsewhere. */
  readonly begin: Buffer | null;
}

const REPLAY_LIMIT = 64;

export class Session {
  readonly processId: number;
  readonly secretKey: Buffer;
  setting: RouteSetting = 'auto';
  lastCommit: bigint | null = null;
  pinned: string | null = null;
  server: ServerConn | null = null;
  bytesIn = 0;
  bytesOut = 0;

  private readonly parser = new FrontendParser();
  private readonly statements = new Map<string, ClientStatement>();
  private unit: Unit | null = null;
  /** Messages waiting while a server is acquired or a unit is being finished. */
  private waiting: FrontendMessage[] = [];
  private busy = false;
  /** A plain BEGIN answered by the router itself, sent to the server with the transaction's first statement. */
  private deferredBegin: Buffer | null = null;
  private closed = false;
  private corked = false;

  constructor(
    private readonly host: SessionHost,
    readonly socket: net.Socket,
    readonly user: string,
    readonly database: string,
    readonly params: ReadonlyMap<string, string>,
    key: { processId: number; secretKey: Buffer },
  ) {
    this.processId = key.processId;
    this.secretKey = key.secretKey;
  }

  /** Bytes from the client after startup. A failure here ends this client only, never the router. */
  data(chunk: Buffer): void {
    try {
      this.dataUnsafe(chunk);
    } catch (err) {
      this.fatal('XX000', `pgmaestro router error: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private dataUnsafe(chunk: Buffer): void {
    this.bytesIn += chunk.length;
    let msgs: FrontendMessage[];
    try {
      msgs = this.parser.push(chunk);
    } catch (err) {
      this.fatal(err instanceof FrontendProtocolError ? err.sqlstate : '08P01', err instanceof Error ? err.message : String(err));
      return;
    }
    for (const m of msgs) this.onMessage(m);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const s = this.server;
    this.server = null;
    if (s) {
      s.onClose = () => undefined;
      // Mid-unit the server's state is unknown (an open transaction, a result half sent): never reuse it.
      this.host.release(s, s.tracker.owed === 0 && s.tracker.status === 'I' && !this.pinned && !s.closed);
    }
    this.socket.destroy();
    this.host.forget(this);
  }

  /** Ends the client's connection with a FATAL error, as PostgreSQL would. */
  fatal(sqlstate: string, text: string): void {
    if (this.closed) return;
    this.send(out.pgError('FATAL', sqlstate, text));
    this.socket.end();
    this.close();
  }

  /** Queues `b` for the client; what is sent in one turn of the event loop leaves together (see ServerConn.write). */
  private send(b: Buffer): void {
    if (this.closed || b.length === 0) return;
    this.bytesOut += b.length;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(b);
  }

  private onMessage(m: FrontendMessage): void {
    if (this.closed) return;
    if (m.kind === 'terminate') {
      this.close();
      return;
    }
    if (this.busy) {
      this.waiting.push(m);
      return;
    }
    if (this.server) {
      this.forward(m);
      return;
    }
    this.startUnit(m);
  }

  /** No server attached: answer it here, or route a new unit. */
  private startUnit(m: FrontendMessage): void {
    const status = this.deferredBegin ? 'T' : 'I';
    switch (m.kind) {
      case 'sync':
        this.send(out.readyForQuery(status));
        return;
      case 'flush':
        return;
      case 'close':
        if (m.target === 'S' && m.name !== '') {
          this.statements.delete(m.name);
          this.send(out.closeComplete());
          return;
        }
        break;
      case 'copyData':
      case 'copyDone':
      case 'copyFail':
        return; // COPY data with no COPY in progress: PostgreSQL ignores it too
      case 'password':
      case 'unknown':
        this.fatal('08P01', `invalid frontend message type ${m.kind === 'unknown' ? JSON.stringify(m.code) : "'p'"}`);
        return;
      case 'query': {
        const cls = this.host.classify(m.sql);
        if (cls.route) {
          this.setting = cls.route;
          this.send(Buffer.concat([out.commandComplete(cls.route === 'auto' && /^\s*RESET/i.test(m.sql) ? 'RESET' : 'SET'), out.readyForQuery(status)]));
          return;
        }
        if (!this.deferredBegin && cls.tx === 'begin' && !cls.pin && !cls.hint && this.setting === 'auto') {
          this.deferredBegin = m.bytes;
          this.send(Buffer.concat([out.commandComplete('BEGIN'), out.readyForQuery('T')]));
          return;
        }
        if (this.deferredBegin && cls.tx === 'end') {
          this.deferredBegin = null;
          this.send(Buffer.concat([out.commandComplete(/^\s*(ROLLBACK|ABORT)/i.test(m.sql) ? 'ROLLBACK' : 'COMMIT'), out.readyForQuery('I')]));
          return;
        }
        this.begin(m, cls);
        return;
      }
      default:
        break;
    }
    if (m.kind === 'bind') {
      this.begin(m, this.statements.get(m.statement)?.cls ?? null);
      return;
    }
    this.begin(m, m.kind === 'parse' ? this.host.classify(m.sql) : null);
  }

  /** Routes the unit that `first` starts, then sends it (and whatever the client sent meanwhile). */
  private begin(first: FrontendMessage, cls: Classification | null, exclude: string | null = null, replay: FrontendMessage[] | null = null): void {
    const inDeferred = this.deferredBegin !== null;
    // the common case at once: the route needs no catalog lookup and its pool has an idle connection
    const now = this.host.routeNow(this, cls, exclude, inDeferred);
    const idle = now && this.host.acquireNow(this, now);
    if (now && idle) {
      this.start(first, now, idle, inDeferred, exclude, replay);
      return;
    }
    this.busy = true;
    void (async () => {
      let route: Route;
      let conn: ServerConn;
      try {
        route = now ?? (await this.host.route(this, cls, exclude, inDeferred));
        conn = await this.host.acquire(this, route);
      } catch (err) {
        this.refuse(first, err instanceof Error ? err.message : String(err));
        return;
      }
      if (this.closed) {
        this.host.release(conn, true);
        return;
      }
      this.busy = false;
      this.start(first, route, conn, inDeferred, exclude, replay);
    })();
  }

  /** Sends the unit that `first` starts (and whatever the client sent meanwhile) on `conn`. */
  private start(first: FrontendMessage, route: Route, conn: ServerConn, inDeferred: boolean, exclude: string | null, replay: FrontendMessage[] | null): void {
    this.busy = true;
    this.host.count(exclude ? 'retried' : route.target);
    this.attach(conn, route, replay !== null, this.deferredBegin);
    if (this.deferredBegin) {
      // The client already saw BEGIN's answer: send it now, answers swallowed.
      conn.tracker.push({ kind: 'internal', done: () => undefined });
      conn.write(this.deferredBegin);
      this.deferredBegin = null;
    }
    if (inDeferred && this.unit) this.unit.dirty = route.target === 'primary';
    for (const m of replay ?? [first]) this.forward(m);
    this.busy = false;
    this.drain();
  }

  private attach(conn: ServerConn, route: Route, retried: boolean, begin: Buffer | null): void {
    this.server = conn;
    this.unit = { route, replay: route.target === 'replica' && !retried ? [] : null, dirty: false, batchTx: null, retried, begin };
    conn.onFrames = (frames) => {
      try {
        this.fromServer(frames);
      } catch (err) {
        this.fatal('XX000', `pgmaestro router error: ${err instanceof Error ? err.message : String(err)}`);
      }
    };
    conn.onClose = () => this.serverLost(conn);
  }

  /** A unit the router could not place (no primary within the hold time, a refusal): the client gets an error and may go on. */
  private refuse(first: FrontendMessage, reason: string): void {
    this.busy = false;
    const queued = [first, ...this.waiting];
    this.waiting = [];
    const extended = queued.some((m) => m.kind !== 'query');
    this.send(out.pgError('ERROR', '57P03', `pgmaestro cannot run this now: ${reason}`, 'retry in a moment'));
    // Answer what the client waits for: one ReadyForQuery per Query and per Sync it sent.
    const readies = queued.filter((m) => m.kind === 'query' || m.kind === 'sync').length;
    for (let i = 0; i < Math.max(readies, extended ? 0 : 1); i++) this.send(out.readyForQuery(this.deferredBegin ? 'E' : 'I'));
  }

  private drain(): void {
    while (!this.busy && this.waiting.length > 0 && !this.closed) this.onMessage(this.waiting.shift()!);
  }

  /** Sends one client message on the attached server, rewriting statement names for the pool. */
  private forward(m: FrontendMessage): void {
    const conn = this.server!;
    const t = conn.tracker;
    const unit = this.unit!;
    if (unit.replay) {
      unit.replay.push(m);
      if (unit.replay.length > REPLAY_LIMIT) unit.replay = null;
    }
    switch (m.kind) {
      case 'query': {
        const cls = this.host.classify(m.sql);
        if (cls.route) {
          this.setting = cls.route;
          t.push({ kind: 'synth', bytes: Buffer.concat([out.commandComplete('SET'), out.readyForQuery(t.status)]) });
          break;
        }
        this.note(cls);
        t.push({ kind: 'query' });
        conn.write(m.bytes);
        this.pipelineCommitLsn(conn);
        break;
      }
      case 'parse': {
        const cls = this.host.classify(m.sql);
        this.note(cls);
        if (m.name === '') {
          t.push({ kind: 'step', step: 'parse', swallow: false });
          conn.write(m.bytes);
          break;
        }
        const st = { sql: m.sql, cls, paramTypes: Buffer.from(m.paramTypes), serverName: serverName(m.sql, m.paramTypes) };
        this.statements.set(m.name, st);
        if (conn.prepared.has(st.serverName)) {
          t.push({ kind: 'synth', bytes: out.parseComplete() });
        } else {
          conn.prepared.add(st.serverName);
          t.push({ kind: 'step', step: 'parse', swallow: false, failed: () => conn.prepared.delete(st.serverName) });
          conn.write(wire.parse(st.serverName, st.sql, st.paramTypes));
        }
        break;
      }
      case 'bind': {
        const st = this.ensurePrepared(m.statement);
        // a Bind of a named statement runs it again: what it does counts now, as its Parse did (a write asks for the commit LSN)
        if (st) this.note(st.cls);
        t.push({ kind: 'step', step: 'bind', swallow: false });
        conn.write(st ? wire.bind(m.portal, st.serverName, m.rest) : m.bytes);
        break;
      }
      case 'describe': {
        const st = m.target === 'S' ? this.ensurePrepared(m.name) : null;
        t.push({ kind: 'step', step: 'describe', swallow: false });
        conn.write(st ? wire.describe('S', st.serverName) : m.bytes);
        break;
      }
      case 'close':
        if (m.target === 'S' && this.statements.has(m.name)) {
          // The server keeps it for the pool's other clients; the client's name is gone.
          this.statements.delete(m.name);
          t.push({ kind: 'synth', bytes: out.closeComplete() });
          break;
        }
        t.push({ kind: 'step', step: 'close', swallow: false });
        conn.write(m.bytes);
        break;
      case 'execute':
        t.push({ kind: 'step', step: 'execute', swallow: false });
        conn.write(m.bytes);
        break;
      case 'sync':
        t.push({ kind: 'sync' });
        conn.write(m.bytes);
        this.pipelineCommitLsn(conn);
        break;
      case 'functionCall':
        this.note({ write: true, pin: null } as Classification);
        t.push({ kind: 'query' });
        conn.write(m.bytes);
        break;
      case 'flush':
      case 'copyData':
      case 'copyDone':
      case 'copyFail':
        conn.write(m.bytes);
        break;
      default:
        this.fatal('08P01', `invalid frontend message type ${m.kind === 'unknown' ? JSON.stringify(m.code) : "'p'"}`);
        return;
    }
    this.send(joinAll(t.flushSynth()));
  }

  /** A client-named statement, prepared on the attached server first if it is not yet (its ParseComplete swallowed). */
  private ensurePrepared(name: string): ClientStatement | null {
    if (name === '') return null;
    const st = this.statements.get(name);
    if (!st) return null;
    const conn = this.server!;
    if (!conn.prepared.has(st.serverName)) {
      conn.prepared.add(st.serverName);
      conn.tracker.push({ kind: 'step', step: 'parse', swallow: true, failed: () => conn.prepared.delete(st.serverName) });
      conn.write(wire.parse(st.serverName, st.sql, st.paramTypes));
    }
    return st;
  }

  /** What a statement run in this unit means for the session: a pin, a write. */
  private note(cls: Classification): void {
    if (cls.pin && !this.pinned) {
      this.pinned = cls.pin;
      this.host.count('pinned');
    }
    const unit = this.unit!;
    if (cls.write || cls.tx === 'begin' || cls.tx === 'begin_read_write') unit.dirty = true;
    if (cls.tx === 'begin' || cls.tx === 'begin_read_only' || cls.tx === 'begin_read_write') unit.batchTx = unit.batchTx === null ? 'begin' : 'unknown';
    else if (cls.tx === 'end') unit.batchTx = unit.batchTx === null || unit.batchTx === 'begin' ? 'end' : 'unknown';
    else if (cls.reason === 'transaction control among several statements') unit.batchTx = 'unknown';
    if (cls.copyIn) unit.batchTx = 'unknown'; // the server will read CopyData next: nothing may be sent behind it
  }

  /**
   * Read-your-writes without a round trip of its own: right behind a Query or
   * Sync that ends a transaction which wrote, the commit LSN is asked on the
   * same connection. The server runs it after the commit, so the answer
   * covers it. Only when the status after is known to be idle (no answer
   * owed before this one, no transaction left open); otherwise `unitDone`
   * asks once the unit is over.
   */
  private pipelineCommitLsn(conn: ServerConn): void {
    const unit = this.unit!;
    const t = conn.tracker;
    const tx = unit.batchTx;
    unit.batchTx = null;
    if (!unit.dirty || unit.route.target !== 'primary' || this.pinned || !this.host.wantsCommitLsn) return;
    if (t.readiesOwed !== 1 || tx === 'unknown') return;
    const after = tx === 'end' ? 'I' : tx === 'begin' ? 'T' : t.status;
    if (after !== 'I') return;
    unit.dirty = false;
    t.push({ kind: 'internal', done: (lsn) => lsn && this.noteCommit(lsn) });
    conn.write(LSN_QUERY);
  }

  private fromServer(frames: Frame[]): void {
    const conn = this.server;
    if (!conn) return;
    const fed = conn.tracker.feed(frames);
    if (fed.bytes > 0 && this.unit) this.unit.replay = null;
    for (const b of fed.out) this.send(b);
    if (fed.idle !== null && this.server === conn && conn.tracker.owed === 0) this.unitDone(conn, fed.idle);
  }

  /** Everything owed was answered. Outside a transaction the server goes back to the pool, after learning the commit LSN of a write. */
  private unitDone(conn: ServerConn, status: 'I' | 'T' | 'E'): void {
    if (status !== 'I' || this.pinned || this.busy || this.waiting.length > 0) return;
    const unit = this.unit!;
    if (unit.route.target === 'primary' && unit.dirty && this.host.wantsCommitLsn) {
      this.busy = true;
      conn.tracker.push({
        kind: 'internal',
        done: (lsn) => {
          if (lsn) this.noteCommit(lsn);
          this.busy = false;
          if (this.server === conn && conn.tracker.owed === 0) this.detach(conn);
          this.drain();
        },
      });
      conn.write(LSN_QUERY);
      return;
    }
    this.detach(conn);
  }

  private noteCommit(text: string): void {
    const m = /^([0-9A-F]+)\/([0-9A-F]+)$/i.exec(text);
    if (!m) return;
    const lsn = (BigInt('0x' + m[1]) << 32n) | BigInt('0x' + m[2]);
    if (this.lastCommit === null || lsn > this.lastCommit) this.lastCommit = lsn;
  }

  private detach(conn: ServerConn): void {
    this.server = null;
    this.unit = null;
    this.host.release(conn, true);
  }

  /** The server connection died under the unit: a read that nothing was answered for yet is retried once on another node; anything else ends the client's session. */
  private serverLost(conn: ServerConn): void {
    if (this.server !== conn || this.closed) return;
    const unit = this.unit;
    this.server = null;
    this.unit = null;
    this.host.release(conn, false);
    if (unit && unit.replay && unit.replay.length > 0 && !unit.retried && unit.route.target === 'replica') {
      const [first, ...rest] = unit.replay;
      const sql = first.kind === 'query' || first.kind === 'parse' ? first.sql : null;
      this.deferredBegin = unit.begin; // the client saw its BEGIN answered: the retry opens the transaction again
      this.begin(first, sql === null ? null : this.host.classify(sql), unit.route.node, [first, ...rest]);
      return;
    }
    this.fatal('57P01', `terminating connection: the connection to ${conn.node} was lost${unit?.route.target === 'primary' ? ' (the primary changed or failed)' : ''}`);
  }
}

const LSN_QUERY = wire.query('SELECT pg_current_wal_lsn()::text');

/** The name a client's statement has on the servers: the same text and parameter types share one, across clients. */
function serverName(sql: string, paramTypes: Buffer): string {
  return `pgm_${createHash('sha1').update(sql).update(paramTypes).digest('hex').slice(0, 20)}`;
}

function joinAll(bufs: Buffer[]): Buffer {
  return bufs.length === 1 ? bufs[0] : Buffer.concat(bufs);
}
