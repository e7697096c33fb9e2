import net from 'node:net';
import { authenticate } from '../protocol/auth.js';
import { Framer, type Frame } from '../protocol/framer.js';
import { Inbox } from '../protocol/inbox.js';
import type { BackendMessage, NoticeFields } from '../protocol/messages.js';
import { Parser } from '../protocol/parser.js';
import type { ScramKeys } from '../protocol/scram.js';
import * as wire from '../protocol/serializer.js';
import { ResponseTracker } from './pipeline.js';

/** A server refused the connection with an ErrorResponse (wrong database, too many connections…): relayed to the client as is. */
export class ServerRefusal extends Error {
  constructor(readonly fields: NoticeFields) {
    super(fields.M ?? 'the server refused the connection');
  }
}

export interface ServerConnOptions {
  readonly node: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
  /** Startup parameters the client sent besides user and database (client_encoding, options, …). */
  readonly params: ReadonlyMap<string, string>;
  readonly keys: ScramKeys;
  readonly connectTimeoutMs: number;
}

/**
 * One connection of the router to a PostgreSQL server, authenticated as the
 * client's user with the SCRAM keys recovered from the client's proof. After
 * startup it is a raw message pipe: `onFrames` gets whole server messages,
 * `tracker` knows what is still owed to the client attached to it.
 */
export class ServerConn {
  readonly node: string;
  readonly host: string;
  readonly port: number;
  readonly parameters = new Map<string, string>();
  /** Server-side names of the statements prepared on this connection. */
  readonly prepared = new Set<string>();
  readonly tracker = new ResponseTracker();
  processId = 0;
  secretKey: Buffer = Buffer.alloc(0);
  closed = false;
  idleSince = Date.now();
  onFrames: (frames: Frame[]) => void = () => undefined;
  onClose: () => void = () => undefined;

  private readonly framer = new Framer(() => 0x7fffffff);
  private corked = false;

  private constructor(
    readonly socket: net.Socket,
    opts: ServerConnOptions,
  ) {
    this.node = opts.node;
    this.host = opts.host;
    this.port = opts.port;
  }

  static async connect(opts: ServerConnOptions): Promise<ServerConn> {
    const socket = net.connect({ host: opts.host, port: opts.port, noDelay: true });
    const conn = new ServerConn(socket, opts);
    const parser = new Parser();
    const inbox = new Inbox({ pause: () => socket.pause(), resume: () => socket.resume() });
    let refusal: NoticeFields | null = null;
    const onData = (chunk: Buffer) => {
      try {
        for (const m of parser.parse(chunk)) inbox.push(m);
      } catch (err) {
        inbox.fail(err as Error);
      }
    };
    const onError = (err: Error) => inbox.fail(err);
    const onEnd = () => inbox.fail(new Error(`the server ${opts.node} closed the connection during startup`));
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onEnd);
    const timer = setTimeout(() => socket.destroy(new Error(`no answer from ${opts.node} within ${opts.connectTimeoutMs} ms`)), opts.connectTimeoutMs);
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
      socket.setKeepAlive(true, 10_000);
      const params: Record<string, string> = {};
      for (const [k, v] of opts.params) params[k] = v;
      socket.write(wire.startup({ ...params, user: opts.user, database: opts.database }));
      const next = async (): Promise<BackendMessage> => {
        for (;;) {
          const m = await inbox.next();
          if (m.kind === 'parameterStatus') conn.parameters.set(m.name, m.value);
          else if (m.kind === 'noticeResponse') continue;
          else {
            if (m.kind === 'backendKeyData') conn.secretKey = Buffer.from(m.secretKey);
            if (m.kind === 'errorResponse') refusal = m.fields;
            return m;
          }
        }
      };
      conn.processId = await authenticate({ host: opts.host, port: opts.port }, { user: opts.user, password: opts.keys, next, write: (b) => void socket.write(b) });
    } catch (err) {
      socket.destroy();
      if (refusal) throw new ServerRefusal(refusal);
      throw err;
    } finally {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onEnd);
    }
    // From here on: raw frames to whoever is attached.
    socket.on('data', (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = conn.framer.push(chunk);
      } catch {
        conn.destroy();
        return;
      }
      if (frames.length > 0) conn.onFrames(frames);
    });
    socket.on('error', () => conn.destroy());
    socket.on('close', () => conn.destroy());
    return conn;
  }

  /**
   * Queues `b`; everything written in one turn of the event loop leaves in
   * one segment (a client's Bind/Execute/Sync, the router's own query behind
   * them), so the server wakes once for it.
   */
  write(b: Buffer): void {
    if (this.closed) return;
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

  /** Closes the connection; `onClose` runs once. */
  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.tracker.abandon();
    this.socket.destroy();
    this.onClose();
  }

  /** A polite close for an idle connection. */
  terminate(): void {
    if (this.closed) return;
    this.socket.end(wire.terminate());
    this.destroy();
  }
}

/** Sends a CancelRequest for `conn`'s backend on a connection of its own (how PostgreSQL cancels). */
export function cancelOn(conn: { host: string; port: number; processId: number; secretKey: Buffer }): void {
  const s = net.connect({ host: conn.host, port: conn.port });
  s.on('error', () => s.destroy());
  s.once('connect', () => s.end(wire.cancelRequest(conn.processId, conn.secretKey)));
  setTimeout(() => s.destroy(), 5000).unref();
}
