import net from 'node:net';
import { PgmError } from '../errors.js';
import { parseLsn, formatLsn } from '../postgres/lsn.js';
import type { Lsn } from '../postgres/lsn.js';
import { authenticate } from './auth.js';
import { Inbox } from './inbox.js';
import type { BackendMessage, NoticeFields } from './messages.js';
import { Parser } from './parser.js';
import * as wire from './serializer.js';
import { WalStream, parseTimelineEnd } from './wal-stream.js';
import { addressOf, connectFailure, connectionClosed, connectionLost, serverError, unexpected } from './conn-errors.js';

export interface ConnectOptions {
  host: string;
  port: number;
  user: string;
  password: string;
  database?: string;
  /** 'true': physical walsender (replication commands only); 'database': logical walsender (also SQL); false: a normal backend. */
  replication: 'true' | 'database' | false;
  applicationName?: string;
  /** Bounds TCP connect plus authentication; default 10 s. */
  connectTimeoutMs?: number;
  /** Called for every NoticeResponse; notices are otherwise dropped. */
  onNotice?: (fields: NoticeFields) => void;
}

export interface QueryResult {
  command: string;
  fields: { name: string; typeOid: number }[];
  rows: (string | null)[][];
}

/** A result with values as raw bytes (for bytea-like columns such as TIMELINE_HISTORY's content). */
export interface RawQueryResult {
  command: string;
  fields: { name: string; typeOid: number }[];
  rows: (Buffer | null)[][];
}

export type CopyMode = 'in' | 'out' | 'both';

/** What a query produced so far: either it is finished (`copy: null`), or it entered COPY mode. */
export interface QueryStep {
  results: RawQueryResult[];
  copy: CopyMode | null;
}

export interface SystemIdentity {
  systemId: string;
  timeline: number;
  xlogpos: Lsn;
  dbname: string | null;
}

/**
 * One connection speaking the simple-query and COPY sub-protocols, made for
 * walsender connections. Operations must not overlap: the caller awaits one
 * query (including its COPY phase) before starting the next. Any failure that
 * leaves the protocol state unknown destroys the connection; server errors
 * (ErrorResponse) leave it usable.
 */
export class ReplicationConnection {
  readonly host: string;
  readonly port: number;
  /** ParameterStatus values reported by the server (server_version, …). */
  readonly parameters = new Map<string, string>();
  /** Backend PID from BackendKeyData (0 if the server sent none). */
  processId = 0;

  private readonly parser = new Parser();
  /** Socket reads pause while 1 MiB of parsed messages wait for the consumer. */
  private readonly inbox: Inbox;
  private failure: Error | null = null;
  private readonly failed: Promise<never>;
  private rejectFailed!: (e: Error) => void;
  private connected = false;
  private inQuery = false;

  private readonly socket: net.Socket;

  private constructor(private readonly opts: ConnectOptions) {
    this.host = opts.host;
    this.port = opts.port;
    this.failed = new Promise<never>((_, reject) => (this.rejectFailed = reject));
    this.failed.catch(() => {});
    const socket = net.connect({ host: opts.host, port: opts.port, onread: readIntoSlabs((chunk) => this.onData(chunk)) });
    this.socket = socket;
    this.inbox = new Inbox({ pause: () => socket.pause(), resume: () => socket.resume() });
    socket.on('error', (err) => this.fail(this.connected ? connectionLost(this, err) : connectFailure(opts, err)));
    socket.on('close', () => this.fail(connectionLost(this)));
  }

  static async connect(opts: ConnectOptions): Promise<ReplicationConnection> {
    const timeoutMs = opts.connectTimeoutMs ?? 10_000;
    const conn = new ReplicationConnection(opts);
    const timer = setTimeout(() => conn.destroy(connectFailure(opts, 'timeout', timeoutMs)), timeoutMs);
    try {
      await Promise.race([new Promise((resolve) => conn.socket.once('connect', resolve)), conn.failed]);
      conn.connected = true;
      conn.socket.setNoDelay(true);
      conn.socket.setKeepAlive(true, 30_000);
      conn.write(
        wire.startup({
          user: opts.user,
          database: opts.database,
          replication: opts.replication === false ? undefined : opts.replication,
          application_name: opts.applicationName,
          client_encoding: 'UTF8',
        }),
      );
      conn.processId = await authenticate(conn, {
        user: opts.user,
        password: opts.password,
        next: () => conn.next(),
        write: (b) => void conn.write(b),
      });
      return conn;
    } catch (err) {
      conn.destroy();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** host:port, as error messages print it. */
  get address(): string {
    return addressOf(this);
  }

  get closed(): boolean {
    return this.failure !== null;
  }

  /** Runs `sql` with the simple query protocol; values are decoded as UTF-8 text. */
  async query(sql: string): Promise<QueryResult[]> {
    const step = await this.execute(sql);
    if (step.copy === 'in') {
      await this.sendCopyFail('query() cannot feed COPY FROM STDIN');
      await this.continueQuery(); // the server answers CopyFail with an error, which this throws
    } else if (step.copy !== null) {
      this.destroy(unexpected(this, `COPY ${step.copy.toUpperCase()} from ${JSON.stringify(sql)}; use execute() to run it`));
      throw this.failure;
    }
    return step.results.map((r) => ({ ...r, rows: r.rows.map((row) => row.map((v) => (v === null ? null : v.toString('utf8')))) }));
  }

  async identifySystem(): Promise<SystemIdentity> {
    const [result] = await this.query('IDENTIFY_SYSTEM');
    const row = result?.rows[0];
    if (!row || row.length < 4) throw unexpected(this, 'IDENTIFY_SYSTEM returned no row');
    return { systemId: row[0] ?? '', timeline: Number(row[1]), xlogpos: parseLsn(row[2] ?? ''), dbname: row[3] };
  }

  /** The history file of timeline `tli` (which must be > 1), byte for byte. */
  async timelineHistory(tli: number): Promise<{ filename: string; content: Buffer }> {
    const step = await this.execute(`TIMELINE_HISTORY ${checkTimeline(tli)}`);
    const row = step.results[0]?.rows[0];
    if (step.copy !== null || !row || row.length < 2) throw unexpected(this, `TIMELINE_HISTORY ${tli} returned no row`);
    return { filename: row[0]?.toString('utf8') ?? '', content: row[1] ?? Buffer.alloc(0) };
  }

  /**
   * START_REPLICATION … PHYSICAL. Resolves once streaming has begun (or, when
   * `lsn` is exactly the end of a historic timeline, already ended); iterate
   * the stream for XLogData and keepalives.
   */
  async startReplication(opts: { slot?: string; lsn: Lsn; timeline?: number }): Promise<WalStream> {
    if (opts.slot !== undefined && !/^[a-z0-9_]{1,63}$/.test(opts.slot)) {
      throw new PgmError('protocol.error', `${JSON.stringify(opts.slot)} is not a valid replication slot name.`, {
        hint: 'Slot names use only lower-case letters, digits and underscores, at most 63 characters.',
      });
    }
    const slot = opts.slot === undefined ? '' : `SLOT ${opts.slot} `;
    const tli = opts.timeline === undefined ? '' : ` TIMELINE ${checkTimeline(opts.timeline)}`;
    const step = await this.execute(`START_REPLICATION ${slot}PHYSICAL ${formatLsn(opts.lsn)}${tli}`);
    if (step.copy === null) return WalStream.ended(this, parseTimelineEnd(step.results));
    if (step.copy !== 'both') throw unexpected(this, `START_REPLICATION answered with COPY ${step.copy.toUpperCase()}`);
    return new WalStream(this);
  }

  /** Sends `sql` and reads results until ReadyForQuery or the start of a COPY. Throws the server's error, if any, after ReadyForQuery. */
  async execute(sql: string): Promise<QueryStep> {
    if (this.inQuery) throw new Error(`ReplicationConnection: ${JSON.stringify(sql)} started while another query is running`);
    this.write(wire.query(sql));
    this.inQuery = true;
    return this.readResults(sql);
  }

  /** After a COPY phase has ended, reads the query's remaining results. */
  continueQuery(): Promise<QueryStep> {
    return this.readResults(null);
  }

  /**
   * The next CopyData payload of a COPY OUT/BOTH phase, or null at CopyDone.
   * An ErrorResponse ends the phase: the rest of the query is read and the error thrown.
   */
  async readCopyData(): Promise<Buffer | null> {
    const m = await this.next();
    if (m.kind === 'copyData') return m.data;
    if (m.kind === 'copyDone') return null;
    if (m.kind === 'errorResponse') {
      await this.readResults(null, m.fields);
      throw new Error('unreachable: readResults throws the error');
    }
    throw this.protocolViolation(m, 'during COPY');
  }

  /** The CopyData payloads of a COPY OUT/BOTH phase until CopyDone. Breaking out early leaves the COPY unfinished. */
  async *copyData(): AsyncGenerator<Buffer, void, undefined> {
    for (let data = await this.readCopyData(); data !== null; data = await this.readCopyData()) yield data;
  }

  /** Resolves when the socket can take more (write backpressure). */
  async sendCopyData(data: Buffer): Promise<void> {
    this.socket.cork();
    this.write(wire.copyDataHeader(data.length));
    const ok = this.write(data);
    this.socket.uncork();
    if (!ok) await Promise.race([new Promise((resolve) => this.socket.once('drain', resolve)), this.failed]);
  }

  async sendCopyDone(): Promise<void> {
    this.write(wire.copyDone());
  }

  async sendCopyFail(reason: string): Promise<void> {
    this.write(wire.copyFail(reason));
  }

  /** Sends Terminate and waits for the socket to close. Idempotent. */
  async close(): Promise<void> {
    if (this.failure) return;
    const closedEvent = new Promise((resolve) => this.socket.once('close', resolve));
    this.fail(connectionClosed(this));
    this.socket.end(wire.terminate());
    const timer = setTimeout(() => this.socket.destroy(), 2000);
    await closedEvent;
    clearTimeout(timer);
  }

  /** Drops the connection at once; pending and later operations fail with `err`. */
  destroy(err?: Error): void {
    this.fail(err ?? connectionClosed(this));
    this.inbox.clear();
    this.socket.destroy();
  }

  private next(): Promise<BackendMessage> {
    return this.inbox.next();
  }

  /** Notices and parameter changes are handled here; everything else goes to the reader. */
  private onData(chunk: Buffer): void {
    let messages: BackendMessage[];
    try {
      messages = this.parser.parse(chunk);
    } catch (err) {
      this.destroy(err as Error);
      return;
    }
    for (const m of messages) {
      if (m.kind === 'noticeResponse') this.opts.onNotice?.(m.fields);
      else if (m.kind === 'parameterStatus') this.parameters.set(m.name, m.value);
      else this.inbox.push(m);
    }
  }

  private async readResults(sql: string | null, firstError: NoticeFields | null = null): Promise<QueryStep> {
    const results: RawQueryResult[] = [];
    let current: RawQueryResult | null = null;
    let error = firstError;
    const flush = () => {
      if (current) results.push(current);
      current = null;
    };
    for (;;) {
      const m = await this.next();
      switch (m.kind) {
        case 'rowDescription':
          flush();
          current = { command: '', fields: m.fields.map((f) => ({ name: f.name, typeOid: f.typeOid })), rows: [] };
          break;
        case 'dataRow':
          if (!current) throw this.protocolViolation(m, 'without RowDescription');
          current.rows.push(m.values.map((v) => (v === null ? null : Buffer.from(v)))); // own copies: callers keep rows, which must not pin read slabs
          break;
        case 'commandComplete':
          current ??= { command: '', fields: [], rows: [] };
          current.command = m.tag;
          flush();
          break;
        case 'emptyQueryResponse':
          break;
        case 'errorResponse':
          if (['FATAL', 'PANIC'].includes(m.fields.V ?? m.fields.S ?? '')) {
            this.destroy(serverError(this, m.fields, sql));
            throw this.failure;
          }
          error ??= m.fields;
          break;
        case 'copyInResponse':
        case 'copyOutResponse':
        case 'copyBothResponse':
          flush();
          return { results, copy: m.kind === 'copyInResponse' ? 'in' : m.kind === 'copyOutResponse' ? 'out' : 'both' };
        case 'readyForQuery':
          flush();
          this.inQuery = false;
          if (error) throw serverError(this, error, sql);
          return { results, copy: null };
        default:
          throw this.protocolViolation(m, 'in a query response');
      }
    }
  }

  private protocolViolation(m: BackendMessage, where: string): Error {
    this.destroy(unexpected(this, `a ${m.kind} message ${where}`));
    return this.failure as Error;
  }

  private write(buf: Buffer): boolean {
    if (this.failure) throw this.failure;
    return this.socket.write(buf);
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.rejectFailed(err);
    this.inbox.fail(err);
  }
}

/** Size of the buffers socket reads land in, back to back. */
const SLAB = 1 << 20;
/** A read gets at least this much room; a slab with less left is replaced. */
const MIN_READ = 64 << 10;

/**
 * Socket reads into large slabs instead of a fresh zero-filled 64 KiB buffer
 * per read: no zeroing, one allocation per slab, and consecutive reads are
 * adjacent in memory, so the parser joins a message split between them
 * without copying. A slab lives as long as any message viewing it.
 */
function readIntoSlabs(onChunk: (chunk: Buffer) => void): net.OnReadOpts {
  let slab = Buffer.allocUnsafeSlow(SLAB);
  let used = 0;
  return {
    buffer: () => {
      if (SLAB - used < MIN_READ) {
        slab = Buffer.allocUnsafeSlow(SLAB);
        used = 0;
      }
      return slab.subarray(used);
    },
    callback: (n, buf) => {
      used += n;
      onChunk(Buffer.from(buf.buffer, buf.byteOffset, n));
      return true;
    },
  };
}

function checkTimeline(tli: number): number {
  if (!Number.isInteger(tli) || tli < 1 || tli > 0xffffffff) throw new RangeError(`not a timeline ID: ${tli}`);
  return tli;
}
