import { currentPrimaryName, findNode, requireSecrets, type ClusterContext } from '../cluster/context.js';
import { PgmError } from '../errors.js';
import { formatLsn, parseLsn, walFileName } from '../postgres/lsn.js';
import type { Lsn } from '../postgres/lsn.js';
import { ReplicationConnection } from '../protocol/connection.js';
import type { TimelineEnd, WalStream } from '../protocol/wal-stream.js';
import { Repository } from './repository.js';
import { openSegment, removeWalLeftovers, storeSegment, type SegmentSink } from './wal-archive.js';
import { resumePoint, type WalPoint } from './wal-continuity.js';
import { formatBytes } from '../util/format.js';
import { floorToSegment, historyName, parseSizeSetting, timelineSpans, type TimelineSpan } from './wal-names.js';

/** The physical slot the archiver streams through, on whichever node is primary. */
export const ARCHIVER_SLOT = 'pgm_archiver';

export interface WalArchiverOptions {
  /** Receives one sentence per notable event ("archived 000000010000000000000005 (16 MiB) at 0/6000000"). */
  readonly log?: (sentence: string) => void;
  /** Reconnection backoff: the first wait, doubled up to `max`. Default 1 s and 15 s. */
  readonly retryMs?: { readonly first: number; readonly max: number };
  /** A standby status update is sent at least this often while streaming. Default 10 s. */
  readonly statusIntervalMs?: number;
}

/**
 * Continuous WAL archiving over the replication protocol.
 *
 * Guarantees:
 * - No segment is skipped: streaming resumes at the end of the newest
 *   archived segment on the primary's timeline history, and the slot
 *   `pgm_archiver` is told a position is flushed only once every segment
 *   before it is durably in the repository, so the primary keeps the WAL
 *   the archive still needs — across daemon restarts and crashes. (The
 *   position may lie inside the segment in progress, when the server
 *   requests a reply: the server keeps WAL by whole segments, so that
 *   segment stays. Answering so matters: a primary's shutdown waits until
 *   every walsender's client confirmed all WAL.)
 * - A segment is archived whole or not at all. The segment in progress is
 *   streamed to disk (`wal/<name>.partial` under the storage's temporary
 *   name) rather than held in memory, so memory stays bounded whatever
 *   `wal_segment_size` is (up to 1 GiB); an interrupted segment is simply
 *   streamed again from its start.
 * - Timelines are followed: at the end of a timeline the history file of the
 *   next one is archived, the old timeline's last segment is kept as
 *   `<segment>.partial` (PostgreSQL's convention; recovery reads that segment
 *   from the new timeline's file instead), and streaming restarts at the
 *   start of the switch segment on the new timeline, whose file holds the
 *   old timeline's bytes up to the switch.
 * - Failover: every (re)connection resolves the primary afresh, so after a
 *   promotion the archiver follows the new primary and creates its slot there.
 */
export class WalArchiver {
  private stopping = false;
  private running: Promise<void> | null = null;
  private conn: ReplicationConnection | null = null;
  private stream: WalStream | null = null;
  private wake: (() => void) | null = null;
  /** Set when the server no longer has the WAL the archive needs: start from the slot next time. */
  private startFromSlot = false;
  /** WAL arrived since the last failure: the backoff starts over. */
  private flowing = false;
  private readonly log: (sentence: string) => void;
  private readonly retry: { first: number; max: number };
  private readonly statusIntervalMs: number;

  constructor(
    private readonly ctx: ClusterContext,
    private repo: Repository | null = null,
    opts: WalArchiverOptions = {},
  ) {
    this.log = opts.log ?? (() => undefined);
    this.retry = { first: opts.retryMs?.first ?? 1000, max: opts.retryMs?.max ?? 15_000 };
    this.statusIntervalMs = opts.statusIntervalMs ?? 10_000;
  }

  /** Starts archiving in the background; it runs until stop(), retrying on every failure. */
  start(): this {
    this.running ??= this.loop();
    return this;
  }

  /** Ends streaming, drops the segment in progress, and returns once the archiver is idle. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    const stream = this.stream;
    if (stream) await Promise.race([stream.stop().catch(() => null), sleep(3000)]);
    this.conn?.destroy();
    await this.running;
  }

  private async loop(): Promise<void> {
    let delay = this.retry.first;
    let lastProblem = '';
    while (!this.stopping) {
      try {
        await this.session();
      } catch (err) {
        if (this.stopping) break;
        const problem = (err as Error).message;
        if (/has already been removed/.test(problem)) this.startFromSlot = true;
        if (problem !== lastProblem) this.log(`WAL archiving is interrupted: ${problem.replace(/\.$/, '')}; retrying with a backoff of up to ${this.retry.max / 1000} s.`);
        lastProblem = problem;
      }
      if (this.flowing) {
        delay = this.retry.first;
        lastProblem = '';
        this.flowing = false;
      }
      if (this.stopping) break;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, delay);
      });
      delay = Math.min(delay * 2, this.retry.max);
    }
  }

  /** One connection to the primary: returns when stopped, throws when anything fails. */
  private async session(): Promise<void> {
    // 1. find the primary and connect to it as the replication user
    const repo = (this.repo ??= Repository.open(this.ctx));
    const nodeName = await currentPrimaryName(this.ctx);
    const node = findNode(this.ctx.cfg, nodeName);
    const conn = await ReplicationConnection.connect({
      host: node.replication,
      port: node.port,
      user: this.ctx.cfg.replicationUser,
      password: requireSecrets(this.ctx).replicationPassword,
      replication: 'true',
      applicationName: ARCHIVER_SLOT,
    });
    this.conn = conn;
    try {
      if (this.stopping) return;
      // 2. the database system and its segment size
      const ident = await conn.identifySystem();
      repo.bindSystem(ident.systemId);
      const [show] = await conn.query('SHOW wal_segment_size');
      const segmentSize = parseSizeSetting(show?.rows[0]?.[0] ?? '');
      // 3. our slot, and the server's timeline history (its history files archived)
      const restartLsn = await this.ensureSlot(conn, nodeName);
      const spans = await this.archiveHistories(conn, repo, ident.timeline);
      // 4. where to start: right after the archive, else at the slot
      const leftovers = removeWalLeftovers(repo);
      if (leftovers.length > 0) this.log(`removed ${leftovers.length} leftover file(s) of interrupted archiving: ${leftovers.slice(0, 3).join(', ')}${leftovers.length > 3 ? ', …' : ''}.`);
      const names = [...repo.walEntries().keys()];
      const start = resumePoint(names, segmentSize, spans, restartLsn, this.startFromSlot);
      this.startFromSlot = false;
      if (!start) throw new PgmError('backup.failed', `the slot ${ARCHIVER_SLOT} on ${nodeName} keeps no WAL and the archive has none on its timeline history.`, { hint: 'drop the slot so that the archiver re-creates it.' });
      this.log(`archiving WAL from ${nodeName} (${conn.address}) on timeline ${start.timeline} from ${formatLsn(start.lsn)}, ${start.reason}.`);
      // 5. stream, timeline after timeline
      let at: WalPoint = start;
      for (;;) {
        const end = await this.streamTimeline(conn, repo, nodeName, at, segmentSize);
        if (!end) return;
        at = await this.switchTimeline(conn, repo, at.timeline, end, segmentSize);
      }
    } finally {
      this.conn = null;
      await conn.close().catch(() => undefined);
      conn.destroy();
    }
  }

  /**
   * Streams `at.timeline` from `at.lsn`, archiving each completed segment.
   * Returns the timeline's end, or null when stopped or when another node
   * became primary (the caller reconnects to it).
   */
  private async streamTimeline(conn: ReplicationConnection, repo: Repository, nodeName: string, at: WalPoint, segmentSize: number): Promise<TimelineEnd | null> {
    const stream = await conn.startReplication({ slot: ARCHIVER_SLOT, lsn: at.lsn, timeline: at.timeline });
    this.stream = stream;
    const watch = setInterval(async () => {
      let now = nodeName;
      try {
        now = await currentPrimaryName(this.ctx);
      } catch {
        return; // an unreadable state: keep streaming from the node we have
      }
      if (now === nodeName) return;
      clearInterval(watch);
      this.log(`${now} is primary now, not ${nodeName}; reconnecting to it.`);
      stream.stop().catch(() => conn.destroy());
    }, this.statusIntervalMs);
    const seg = BigInt(segmentSize);
    let pos = at.lsn;
    // What the slot may release. Zero (ignored by the server) until this stream archived a segment.
    let flushed: Lsn = 0n;
    let lastStatus = Date.now();
    let sink: SegmentSink | null = null;
    const status = async (): Promise<void> => {
      if (this.stopping) return;
      await stream.sendStandbyStatus(pos, flushed, 0n);
      lastStatus = Date.now();
    };
    try {
      for await (const m of stream) {
        if (this.stopping) break;
        if (m.kind === 'keepalive') {
          if (!m.replyRequested) continue;
          // The server wants an answer, e.g. its shutdown waits until every standby confirmed all WAL.
          // Confirming the segment in progress is safe: WAL is kept by whole segments, so the one
          // holding the slot's restart_lsn stays on the server until it is archived and passed.
          flushed = pos;
          await status();
          continue;
        }
        if (m.start !== pos) {
          throw new PgmError('protocol.error', `${conn.address} sent WAL from ${formatLsn(m.start)} where ${formatLsn(pos)} was expected.`, { hint: 'the archiver reconnects and streams the segment again.' });
        }
        this.flowing = true;
        let data = m.data;
        while (data.length > 0) {
          const segEnd = floorToSegment(pos, segmentSize) + seg;
          const n = Math.min(data.length, Number(segEnd - pos));
          sink ??= await openSegment(repo, walFileName(at.timeline, pos, segmentSize));
          await sink.write(data.subarray(0, n));
          data = data.subarray(n);
          pos += BigInt(n);
          if (pos === segEnd) {
            const out = await sink.finish('segment');
            sink = null;
            flushed = pos;
            this.log(out.created ? `archived ${out.entry.name} (${formatBytes(out.entry.size)}) at ${formatLsn(pos)}.` : `${out.entry.name} was already archived with the same content.`);
            await status();
          }
        }
        if (Date.now() - lastStatus >= this.statusIntervalMs) await status();
      }
      const end = stream.timelineEnd;
      if (this.stopping || !end) {
        if (sink) this.log(`stopped at ${formatLsn(pos)}; ${sink.name} (${formatBytes(sink.size)} so far) will be streamed again from its start.`);
        return null;
      }
      // the timeline ended inside this segment: keep what it has, under PostgreSQL's name for it
      if (sink) {
        const out = await sink.finish('partial');
        sink = null;
        this.log(`archived ${out.entry.name} (${formatBytes(out.entry.size)}), the end of timeline ${at.timeline} at ${formatLsn(end.startLsn)}.`);
      }
      return end;
    } finally {
      clearInterval(watch);
      await sink?.abort();
      this.stream = null;
    }
  }

  /** Archives the next timeline's history file and says where streaming continues. */
  private async switchTimeline(conn: ReplicationConnection, repo: Repository, from: number, end: TimelineEnd, segmentSize: number): Promise<WalPoint> {
    const history = await conn.timelineHistory(end.nextTimeline);
    const out = await storeSegment(repo, historyName(end.nextTimeline), history.content);
    const next = { lsn: floorToSegment(end.startLsn, segmentSize), timeline: end.nextTimeline };
    this.log(
      `timeline ${from} ended at ${formatLsn(end.startLsn)}; ${out.created ? 'archived' : 'already had'} ${out.entry.name} and continue on timeline ${next.timeline} from ${formatLsn(next.lsn)}.`,
    );
    return next;
  }

  /** Makes sure the physical slot exists (re-creating it if it was invalidated); returns its restart_lsn. */
  private async ensureSlot(conn: ReplicationConnection, nodeName: string): Promise<Lsn | null> {
    const read = async () => {
      const [r] = await conn.query(`READ_REPLICATION_SLOT ${ARCHIVER_SLOT}`);
      const row = r?.rows[0] ?? [];
      return { type: row[0] ?? null, restart: row[1] ? parseLsn(row[1]) : null };
    };
    let slot = await read();
    if (slot.type !== null && slot.type !== 'physical') {
      throw new PgmError('backup.failed', `${nodeName} has a ${slot.type} replication slot named ${ARCHIVER_SLOT}, which the WAL archiver needs as a physical slot.`, {
        hint: `drop it on ${nodeName} (SELECT pg_drop_replication_slot('${ARCHIVER_SLOT}')); the archiver creates its own.`,
      });
    }
    if (slot.type !== null && slot.restart === null) {
      await conn.query(`DROP_REPLICATION_SLOT ${ARCHIVER_SLOT}`);
      this.log(`dropped the slot ${ARCHIVER_SLOT} on ${nodeName}: it was invalidated and keeps no WAL.`);
      slot = { type: null, restart: null };
    }
    if (slot.type === null) {
      try {
        await conn.query(`CREATE_REPLICATION_SLOT ${ARCHIVER_SLOT} PHYSICAL RESERVE_WAL`);
      } catch (err) {
        if (!(err instanceof PgmError && err.data.sqlstate === '42710')) throw err; // created meanwhile: fine
      }
      slot = await read();
      this.log(`created the replication slot ${ARCHIVER_SLOT} on ${nodeName}; it keeps WAL from ${slot.restart === null ? '?' : formatLsn(slot.restart)}.`);
    }
    return slot.restart;
  }

  /**
   * Archives the history files of every timeline up to the server's (recovery
   * probes them one by one, so each matters) and returns the server's
   * timeline spans. Timelines the server has no history file for (branches
   * it does not descend from) are skipped.
   */
  private async archiveHistories(conn: ReplicationConnection, repo: Repository, timeline: number): Promise<TimelineSpan[]> {
    let current: string | null = null;
    for (let t = 2; t <= timeline; t++) {
      let content: Buffer;
      try {
        content = (await conn.timelineHistory(t)).content;
      } catch (err) {
        if (t === timeline || !(err instanceof PgmError && err.code === 'protocol.server_error')) throw err;
        continue;
      }
      const out = await storeSegment(repo, historyName(t), content);
      if (out.created) this.log(`archived ${out.entry.name}.`);
      if (t === timeline) current = content.toString('utf8');
    }
    return timelineSpans(timeline, current);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
