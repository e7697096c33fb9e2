/**
 * Backend (server → client) messages of the PostgreSQL frontend/backend
 * protocol 3.0 that a replication client meets. Each variant names its wire
 * letter; the parser produces exactly these objects and nothing else.
 *
 * Byte payloads (`Buffer`) may be views into the parser's input chunk: treat
 * them as read-only.
 */

/** One column of a RowDescription ('T'). */
export interface FieldDescription {
  name: string;
  tableOid: number;
  columnAttr: number;
  typeOid: number;
  typeSize: number;
  typeModifier: number;
  /** 0 = text, 1 = binary. */
  format: number;
}

/**
 * The fields of an ErrorResponse ('E') or NoticeResponse ('N'), keyed by the
 * protocol's one-letter field codes: 'S' severity (localized), 'V' severity
 * (never localized), 'C' SQLSTATE, 'M' message, 'D' detail, 'H' hint, …
 */
export type NoticeFields = Record<string, string>;

export type BackendMessage =
  /** R, code 0 */
  | { kind: 'authenticationOk' }
  /** R, code 3 */
  | { kind: 'authenticationCleartextPassword' }
  /** R, code 5: we refuse MD5, but must recognise it to say so. */
  | { kind: 'authenticationMD5Password'; salt: Buffer }
  /** R, code 10: the SASL mechanisms the server offers. */
  | { kind: 'authenticationSASL'; mechanisms: string[] }
  /** R, code 11: server-first-message. */
  | { kind: 'authenticationSASLContinue'; data: string }
  /** R, code 12: server-final-message. */
  | { kind: 'authenticationSASLFinal'; data: string }
  /** R, any other code (Kerberos, GSS, SSPI…), none of which we support. */
  | { kind: 'authenticationOther'; code: number }
  /** S */
  | { kind: 'parameterStatus'; name: string; value: string }
  /** K: the secret key is 4 bytes in protocol 3.0 and variable length in 3.2. */
  | { kind: 'backendKeyData'; processId: number; secretKey: Buffer }
  /** Z: 'I' idle, 'T' in a transaction block, 'E' in a failed transaction block. */
  | { kind: 'readyForQuery'; status: 'I' | 'T' | 'E' }
  /** T */
  | { kind: 'rowDescription'; fields: FieldDescription[] }
  /** D: `null` is SQL NULL; text-format values are raw bytes of the client encoding. */
  | { kind: 'dataRow'; values: (Buffer | null)[] }
  /** C */
  | { kind: 'commandComplete'; tag: string }
  /** I */
  | { kind: 'emptyQueryResponse' }
  /** E */
  | { kind: 'errorResponse'; fields: NoticeFields }
  /** N */
  | { kind: 'noticeResponse'; fields: NoticeFields }
  /** G */
  | { kind: 'copyInResponse'; format: number; columnFormats: number[] }
  /** H */
  | { kind: 'copyOutResponse'; format: number; columnFormats: number[] }
  /** W */
  | { kind: 'copyBothResponse'; format: number; columnFormats: number[] }
  /** d */
  | { kind: 'copyData'; data: Buffer }
  /** c */
  | { kind: 'copyDone' }
  /** v: the newest minor version the server supports, and the startup options it did not recognise. */
  | { kind: 'negotiateProtocolVersion'; newestMinor: number; unrecognized: string[] }
  /** Any other letter; the body is kept so the caller can decide. */
  | { kind: 'unknown'; code: string; body: Buffer };

export type BackendMessageKind = BackendMessage['kind'];

export type MessageOf<K extends BackendMessageKind> = Extract<BackendMessage, { kind: K }>;
