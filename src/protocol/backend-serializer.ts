/**
 * Backend (server → client) messages as Buffers, for a router that answers
 * clients itself (authentication, synthesized completions, errors). Pure
 * functions named after what they send; the wire letter is in each comment.
 */
import type { NoticeFields } from './messages.js';
import { cstring, int32, message } from './serializer.js';

/** R 0 */
export function authenticationOk(): Buffer {
  return message('R', int32(0));
}

/** R 10: the SASL mechanisms offered, each NUL-terminated, then an empty one. */
export function authenticationSasl(mechanisms: readonly string[]): Buffer {
  return message('R', int32(10), ...mechanisms.map(cstring), Buffer.from([0]));
}

/** R 11: server-first-message. */
export function authenticationSaslContinue(data: string): Buffer {
  return message('R', int32(11), Buffer.from(data, 'utf8'));
}

/** R 12: server-final-message. */
export function authenticationSaslFinal(data: string): Buffer {
  return message('R', int32(12), Buffer.from(data, 'utf8'));
}

/** S */
export function parameterStatus(name: string, value: string): Buffer {
  return message('S', cstring(name), cstring(value));
}

/** K: the process ID and secret key a client quotes in a CancelRequest. */
export function backendKeyData(processId: number, secretKey: Buffer): Buffer {
  return message('K', int32(processId), secretKey);
}

/** Z */
export function readyForQuery(status: 'I' | 'T' | 'E'): Buffer {
  return message('Z', Buffer.from(status, 'latin1'));
}

/** C */
export function commandComplete(tag: string): Buffer {
  return message('C', cstring(tag));
}

/** 1 */
export function parseComplete(): Buffer {
  return message('1');
}

/** 3 */
export function closeComplete(): Buffer {
  return message('3');
}

/** E: fields keyed by their one-letter codes (S, V, C, M, D, H …), sent in the order given. */
export function errorResponse(fields: NoticeFields): Buffer {
  return message('E', ...noticeBody(fields));
}

/** N */
export function noticeResponse(fields: NoticeFields): Buffer {
  return message('N', ...noticeBody(fields));
}

/** An ErrorResponse as PostgreSQL words one: severity (S and V), SQLSTATE, message, and an optional hint. */
export function pgError(severity: 'ERROR' | 'FATAL', sqlstate: string, text: string, hint?: string): Buffer {
  return errorResponse({ S: severity, V: severity, C: sqlstate, M: text, ...(hint ? { H: hint } : {}) });
}

function noticeBody(fields: NoticeFields): Buffer[] {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(fields)) parts.push(Buffer.from(k, 'latin1'), cstring(v.replace(/\0/g, '')));
  parts.push(Buffer.from([0]));
  return parts;
}
