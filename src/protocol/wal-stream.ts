import { parseLsn } from '../postgres/lsn.js';
import type { Lsn } from '../postgres/lsn.js';
import { decodeReplicationMessage, encodeStandbyStatus, pgTimestampNow } from './copy-messages.js';
import type { ReplicationMessage } from './copy-messages.js';
import type { RawQueryResult, ReplicationConnection } from './connection.js';

/** Where streaming continues after the server ended a historic timeline. */
export interface TimelineEnd {
  nextTimeline: number;
  startLsn: Lsn;
}

/**
 * The CopyBoth phase of START_REPLICATION. Iterate it for XLogData and
 * keepalives; iteration ends when the server ends the timeline (then
 * `timelineEnd` says where to go next) or after `stop()`.
 *
 * Backpressure: WAL is read from the socket only as fast as the iteration
 * consumes it. Breaking out of a `for await` does not end the COPY; call
 * `stop()` to hand the connection back in an idle state.
 */
export class WalStream implements AsyncIterable<ReplicationMessage> {
  /** Set once the stream has ended because the timeline ended (null if stopped by us). */
  timelineEnd: TimelineEnd | null = null;
  private stopping = false;
  private ended = false;
  private finishing: Promise<void> | null = null;
  private reading: Promise<unknown> = Promise.resolve();

  constructor(private readonly conn: ReplicationConnection) {}

  /** A stream that ended before it began (start point = end of a historic timeline). */
  static ended(conn: ReplicationConnection, end: TimelineEnd | null): WalStream {
    const s = new WalStream(conn);
    s.ended = true;
    s.timelineEnd = end;
    return s;
  }

  get done(): boolean {
    return this.ended;
  }

  /** Calls are serialized, so stop() may run while a consumer is waiting in next(). */
  next(): Promise<IteratorResult<ReplicationMessage, undefined>> {
    const result = this.reading.then(() => this.read());
    this.reading = result.catch(() => {});
    return result;
  }

  private async read(): Promise<IteratorResult<ReplicationMessage, undefined>> {
    while (!this.ended) {
      const payload = await this.conn.readCopyData();
      if (payload === null) {
        await this.finish();
        break;
      }
      if (!this.stopping) return { value: decodeReplicationMessage(payload), done: false };
    }
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): AsyncIterator<ReplicationMessage, undefined> {
    return {
      next: () => this.next(),
      // Leaving a for-await must not tear down the COPY: stop() does that.
      return: async () => ({ value: undefined, done: true }),
    };
  }

  /**
   * Standby status update. Positions are "LSN after the last byte" written,
   * flushed durably, and applied; the server releases WAL up to `flushed`.
   */
  sendStandbyStatus(written: Lsn, flushed: Lsn, applied: Lsn, replyRequested = false): Promise<void> {
    return this.conn.sendCopyData(encodeStandbyStatus({ written, flushed, applied, clientTime: pgTimestampNow(), replyRequested }));
  }

  /** Ends streaming (CopyDone), discards WAL still in flight, and returns once the connection is idle. */
  async stop(): Promise<TimelineEnd | null> {
    if (!this.ended && !this.stopping) {
      this.stopping = true;
      await this.conn.sendCopyDone();
    }
    while (!(await this.next()).done);
    return this.timelineEnd;
  }

  private finish(): Promise<void> {
    this.finishing ??= (async () => {
      if (!this.stopping) await this.conn.sendCopyDone();
      const step = await this.conn.continueQuery();
      this.timelineEnd = parseTimelineEnd(step.results);
      this.ended = true;
    })();
    return this.finishing;
  }
}

/** The one-row result set (next_tli, next_tli_startpos) that follows a historic timeline's CopyDone. */
export function parseTimelineEnd(results: RawQueryResult[]): TimelineEnd | null {
  for (const r of results) {
    const row = r.rows[0];
    if (row && row.length >= 2 && row[0] !== null && row[1] !== null) {
      return { nextTimeline: Number(row[0].toString('utf8')), startLsn: parseLsn(row[1].toString('utf8')) };
    }
  }
  return null;
}
