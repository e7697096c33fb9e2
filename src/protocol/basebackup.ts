import { PgmError } from '../errors.js';
import { parseLsn } from '../postgres/lsn.js';
import type { Lsn } from '../postgres/lsn.js';
import { unexpected } from './conn-errors.js';
import type { RawQueryResult, ReplicationConnection } from './connection.js';
import { decodeBaseBackupMessage } from './copy-messages.js';

export interface BaseBackupOptions {
  label: string;
  checkpoint?: 'fast' | 'spread';
  /** Include the WAL needed for consistency in the main archive (pg_wal/). Default true. */
  wal?: boolean;
  /** Wait for the end-of-backup WAL to be archived. Default false. */
  wait?: boolean;
  /** Ask for sizes up front and progress reports. Default true. */
  progress?: boolean;
  /** Default true. */
  manifest?: boolean;
  manifestChecksums?: 'NONE' | 'CRC32C' | 'SHA224' | 'SHA256' | 'SHA384' | 'SHA512';
  /** PostgreSQL 17+: incremental against the manifest sent with uploadManifest() on this connection. */
  incremental?: boolean;
  /** kB/s, 32..1048576. */
  maxRateKbps?: number;
}

export interface TablespaceInfo {
  /** null for the main data directory. */
  oid: number | null;
  location: string | null;
  /** Size estimate in kB; null unless `progress`. */
  sizeKb: number | null;
}

export interface BaseBackupStart {
  startLsn: Lsn;
  startTimeline: number;
  tablespaces: TablespaceInfo[];
}

export interface BaseBackupResult extends BaseBackupStart {
  endLsn: Lsn;
  endTimeline: number;
}

/** Where bytes go. `write` must resolve only when the chunk is accepted: that is the backpressure. */
export interface ByteSink {
  write(chunk: Buffer): Promise<void>;
  end(): Promise<void>;
  /** Called instead of `end` when the backup fails; release resources, don't throw. */
  abort?(err: Error): void;
}

export interface BaseBackupSink {
  /** Called once, before any archive, with the server's start position and tablespace list. */
  start?(info: BaseBackupStart): Promise<void> | void;
  /** `name` is e.g. 'base.tar' or '16384.tar'; `tablespacePath` is '' for the main data directory. */
  archive(name: string, tablespacePath: string): Promise<ByteSink>;
  manifest(): Promise<ByteSink>;
  /** Bytes the server has sent so far (it counts the whole backup, not one archive), against the total estimate. */
  progress?(bytesDone: number, totalKb: number | null): void;
}

/**
 * Runs BASE_BACKUP (PostgreSQL 15+ syntax) and streams every archive and the
 * manifest into `sink`, one chunk at a time, reading no further from the
 * server until the sink has accepted the previous chunk. On failure the
 * connection is destroyed (a COPY OUT cannot be cancelled in-band) and the
 * open sink is aborted.
 */
export async function baseBackup(conn: ReplicationConnection, opts: BaseBackupOptions, sink: BaseBackupSink): Promise<BaseBackupResult> {
  const step = await conn.execute(baseBackupCommand(opts));
  if (step.copy !== 'out' || step.results.length < 2) throw unexpected(conn, `${step.results.length} result sets and COPY ${step.copy ?? 'none'} for BASE_BACKUP`);
  const start = parseStart(step.results[0], step.results[1]);
  const totalKb = start.tablespaces.every((t) => t.sizeKb !== null) ? start.tablespaces.reduce((n, t) => n + (t.sizeKb ?? 0), 0) : null;

  let current: ByteSink | null = null;
  try {
    await sink.start?.(start);
    for (let payload = await conn.readCopyData(); payload !== null; payload = await conn.readCopyData()) {
      const m = decodeBaseBackupMessage(payload);
      if (m.kind === 'data') {
        if (!current) throw unexpected(conn, 'backup data before any archive');
        await current.write(m.data);
      } else if (m.kind === 'progress') {
        sink.progress?.(Number(m.bytesDone), totalKb);
      } else {
        const next = current;
        current = null;
        await next?.end();
        current = m.kind === 'archive' ? await sink.archive(m.name, m.tablespacePath) : await sink.manifest();
      }
    }
    const last = current;
    current = null;
    await last?.end();
  } catch (err) {
    current?.abort?.(err as Error);
    if (!conn.closed) conn.destroy(err as Error);
    throw err;
  }

  const end = await conn.continueQuery();
  const row = end.results[0]?.rows[0];
  if (end.copy !== null || !row || row[0] === null || row[1] === null) throw unexpected(conn, 'no end position after BASE_BACKUP');
  return { ...start, endLsn: parseLsn(row[0].toString()), endTimeline: Number(row[1].toString()) };
}

/** The BASE_BACKUP command text; the label is quoted as a string literal. */
export function baseBackupCommand(opts: BaseBackupOptions): string {
  const options = [
    `LABEL ${quoteLiteral(opts.label)}`,
    `PROGRESS ${opts.progress === false ? 'false' : 'true'}`,
    `CHECKPOINT '${opts.checkpoint ?? 'fast'}'`,
    `WAL ${opts.wal === false ? 'false' : 'true'}`,
    `WAIT ${opts.wait ? 'true' : 'false'}`,
  ];
  if (opts.manifest === false) options.push(`MANIFEST 'no'`);
  else options.push(`MANIFEST 'yes'`, `MANIFEST_CHECKSUMS '${opts.manifestChecksums ?? 'SHA256'}'`);
  if (opts.incremental) options.push('INCREMENTAL');
  if (opts.maxRateKbps !== undefined) {
    if (!Number.isInteger(opts.maxRateKbps) || opts.maxRateKbps < 32 || opts.maxRateKbps > 1048576) {
      throw new PgmError('protocol.error', `MAX_RATE ${opts.maxRateKbps} kB/s is out of range.`, { hint: 'Use an integer between 32 and 1048576 kB/s.' });
    }
    options.push(`MAX_RATE ${opts.maxRateKbps}`);
  }
  return `BASE_BACKUP ( ${options.join(', ')} )`;
}

/**
 * UPLOAD_MANIFEST (PostgreSQL 17+): sends the parent backup's manifest so the
 * next BASE_BACKUP ( INCREMENTAL ) on this connection can be taken against it.
 */
export async function uploadManifest(conn: ReplicationConnection, manifest: Buffer): Promise<void> {
  const step = await conn.execute('UPLOAD_MANIFEST');
  if (step.copy !== 'in') throw unexpected(conn, `COPY ${step.copy ?? 'none'} for UPLOAD_MANIFEST`);
  const CHUNK = 64 * 1024;
  for (let offset = 0; offset < manifest.length; offset += CHUNK) await conn.sendCopyData(manifest.subarray(offset, offset + CHUNK));
  await conn.sendCopyDone();
  const end = await conn.continueQuery();
  if (end.copy !== null) throw unexpected(conn, `COPY ${end.copy} after UPLOAD_MANIFEST`);
}

/** A replication-grammar string literal: quotes doubled; backslashes are literal there. */
export function quoteLiteral(s: string): string {
  if (s.includes('\0')) throw new PgmError('protocol.error', 'A backup label cannot contain a NUL character.', { hint: 'Choose another label.' });
  return `'${s.replace(/'/g, "''")}'`;
}

function parseStart(first: RawQueryResult, second: RawQueryResult): BaseBackupStart {
  const text = (v: Buffer | null | undefined) => (v === null || v === undefined ? null : v.toString('utf8'));
  const row = first.rows[0] ?? [];
  const num = (v: Buffer | null | undefined) => {
    const t = text(v);
    return t === null ? null : Number(t);
  };
  return {
    startLsn: parseLsn(text(row[0]) ?? ''),
    startTimeline: num(row[1]) ?? 0,
    tablespaces: second.rows.map((r) => ({ oid: num(r[0]), location: text(r[1]), sizeKb: num(r[2]) })),
  };
}
