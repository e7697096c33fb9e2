import { PgmError } from '../errors.js';
import type { Lsn } from '../postgres/lsn.js';

/**
 * The sub-protocols carried inside CopyData payloads: streaming replication
 * (START_REPLICATION, CopyBoth) and BASE_BACKUP's single COPY OUT stream.
 * Pure encode/decode; each payload's first byte says what it is.
 */

/** 'w' XLogData: WAL bytes starting at `start`; `end` is the server's current end of WAL. */
export interface XLogData {
  kind: 'xlogdata';
  start: Lsn;
  end: Lsn;
  /** Server clock, microseconds since 2000-01-01 00:00 UTC. */
  sendTime: bigint;
  data: Buffer;
}

/** 'k' primary keepalive. `replyRequested` means: send a standby status update now or be disconnected. */
export interface Keepalive {
  kind: 'keepalive';
  end: Lsn;
  sendTime: bigint;
  replyRequested: boolean;
}

export type ReplicationMessage = XLogData | Keepalive;

/**
 * 'r' standby status update. Each position is the LSN just after the last byte
 * written / flushed to durable storage / applied; the server recycles WAL (and
 * advances a slot) only up to `flushed`.
 */
export interface StandbyStatus {
  written: Lsn;
  flushed: Lsn;
  applied: Lsn;
  clientTime: bigint;
  replyRequested: boolean;
}

export type BaseBackupMessage =
  /** 'n': a new archive starts; `tablespacePath` is '' for the main data directory. */
  | { kind: 'archive'; name: string; tablespacePath: string }
  /** 'd': bytes of the current archive, or of the manifest after 'm'. */
  | { kind: 'data'; data: Buffer }
  /** 'p': bytes done so far (see basebackup.ts for what the server counts). */
  | { kind: 'progress'; bytesDone: bigint }
  /** 'm': the manifest follows as 'd' messages. */
  | { kind: 'manifest' };

const PG_EPOCH_OFFSET_US = 946_684_800_000_000n; // 2000-01-01 minus 1970-01-01, in µs

/** Now, in PostgreSQL's timestamp representation (µs since 2000-01-01 UTC). */
export function pgTimestampNow(nowMs: number = Date.now()): bigint {
  return BigInt(Math.floor(nowMs)) * 1000n - PG_EPOCH_OFFSET_US;
}

export function pgTimestampToDate(ts: bigint): Date {
  return new Date(Number((ts + PG_EPOCH_OFFSET_US) / 1000n));
}

export function decodeReplicationMessage(payload: Buffer): ReplicationMessage {
  const type = payload.length > 0 ? String.fromCharCode(payload[0]) : '';
  if (type === 'w' && payload.length >= 25) {
    return {
      kind: 'xlogdata',
      start: payload.readBigUInt64BE(1),
      end: payload.readBigUInt64BE(9),
      sendTime: payload.readBigInt64BE(17),
      data: payload.subarray(25),
    };
  }
  if (type === 'k' && payload.length === 18) {
    return { kind: 'keepalive', end: payload.readBigUInt64BE(1), sendTime: payload.readBigInt64BE(9), replyRequested: payload[17] !== 0 };
  }
  throw malformed('replication', payload);
}

export function encodeXLogData(m: Omit<XLogData, 'kind'>): Buffer {
  const head = Buffer.allocUnsafe(25);
  head[0] = 0x77; // 'w'
  head.writeBigUInt64BE(m.start, 1);
  head.writeBigUInt64BE(m.end, 9);
  head.writeBigInt64BE(m.sendTime, 17);
  return Buffer.concat([head, m.data]);
}

export function encodeKeepalive(m: Omit<Keepalive, 'kind'>): Buffer {
  const out = Buffer.allocUnsafe(18);
  out[0] = 0x6b; // 'k'
  out.writeBigUInt64BE(m.end, 1);
  out.writeBigInt64BE(m.sendTime, 9);
  out[17] = m.replyRequested ? 1 : 0;
  return out;
}

export function encodeStandbyStatus(s: StandbyStatus): Buffer {
  const out = Buffer.allocUnsafe(34);
  out[0] = 0x72; // 'r'
  out.writeBigUInt64BE(s.written, 1);
  out.writeBigUInt64BE(s.flushed, 9);
  out.writeBigUInt64BE(s.applied, 17);
  out.writeBigInt64BE(s.clientTime, 25);
  out[33] = s.replyRequested ? 1 : 0;
  return out;
}

export function decodeStandbyStatus(payload: Buffer): StandbyStatus {
  if (payload.length !== 34 || payload[0] !== 0x72) throw malformed('standby status', payload);
  return {
    written: payload.readBigUInt64BE(1),
    flushed: payload.readBigUInt64BE(9),
    applied: payload.readBigUInt64BE(17),
    clientTime: payload.readBigInt64BE(25),
    replyRequested: payload[33] !== 0,
  };
}

export function decodeBaseBackupMessage(payload: Buffer): BaseBackupMessage {
  const type = payload.length > 0 ? String.fromCharCode(payload[0]) : '';
  switch (type) {
    case 'n': {
      const nameEnd = payload.indexOf(0, 1);
      const pathEnd = nameEnd === -1 ? -1 : payload.indexOf(0, nameEnd + 1);
      if (pathEnd === -1) break;
      return { kind: 'archive', name: payload.toString('utf8', 1, nameEnd), tablespacePath: payload.toString('utf8', nameEnd + 1, pathEnd) };
    }
    case 'd':
      return { kind: 'data', data: payload.subarray(1) };
    case 'p':
      if (payload.length !== 9) break;
      return { kind: 'progress', bytesDone: payload.readBigInt64BE(1) };
    case 'm':
      return { kind: 'manifest' };
  }
  throw malformed('base backup', payload);
}

export function encodeBaseBackupMessage(m: BaseBackupMessage): Buffer {
  switch (m.kind) {
    case 'archive':
      return Buffer.concat([Buffer.from('n'), Buffer.from(m.name + '\0' + m.tablespacePath + '\0', 'utf8')]);
    case 'data':
      return Buffer.concat([Buffer.from('d'), m.data]);
    case 'progress': {
      const out = Buffer.allocUnsafe(9);
      out[0] = 0x70; // 'p'
      out.writeBigInt64BE(m.bytesDone, 1);
      return out;
    }
    case 'manifest':
      return Buffer.from('m');
  }
}

function malformed(what: string, payload: Buffer): PgmError {
  const type = payload.length > 0 ? `0x${payload[0].toString(16).padStart(2, '0')}` : 'none';
  return new PgmError('protocol.error', `the server sent a malformed ${what} CopyData message (type byte ${type}, ${payload.length} bytes).`, {
    hint: 'This is a protocol bug or an unsupported server version; report it with the server version.',
  });
}
