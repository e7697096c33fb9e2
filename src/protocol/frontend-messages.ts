/**
 * Frontend (client → server) messages of protocol 3.0, as a router meets
 * them. Each variant names its wire letter; `bytes` is the whole message as
 * received (type byte and length included), so a router passes it on
 * untouched unless it must rewrite it. Views into the parser's input: treat
 * as read-only.
 */

/** The untyped packets a connection may open with. */
export type StartupPacket =
  /** 80877103 */
  | { kind: 'sslRequest' }
  /** 80877104 */
  | { kind: 'gssEncRequest' }
  /** 80877102: process ID and secret key of the backend whose query to cancel. */
  | { kind: 'cancelRequest'; processId: number; secretKey: Buffer }
  /** Protocol 3.x: the parameters in the order sent (user, database, options, …). */
  | { kind: 'startup'; major: number; minor: number; params: Map<string, string> }
  /** Any other protocol number (2.0, a future one): refused. */
  | { kind: 'unsupported'; code: number };

export type FrontendMessage =
  /** Q */
  | { kind: 'query'; sql: string; bytes: Buffer }
  /** P: `paramTypes` are the raw Int16 count and Int32 OIDs, kept to re-issue the Parse elsewhere. */
  | { kind: 'parse'; name: string; sql: string; paramTypes: Buffer; bytes: Buffer }
  /** B: `rest` is everything after the statement name (formats, values, result formats). */
  | { kind: 'bind'; portal: string; statement: string; rest: Buffer; bytes: Buffer }
  /** D: 'S' statement or 'P' portal. */
  | { kind: 'describe'; target: 'S' | 'P'; name: string; bytes: Buffer }
  /** C */
  | { kind: 'close'; target: 'S' | 'P'; name: string; bytes: Buffer }
  /** E */
  | { kind: 'execute'; portal: string; maxRows: number; bytes: Buffer }
  /** S */
  | { kind: 'sync'; bytes: Buffer }
  /** H */
  | { kind: 'flush'; bytes: Buffer }
  /** F: the legacy fast-path function call. */
  | { kind: 'functionCall'; bytes: Buffer }
  /** d */
  | { kind: 'copyData'; bytes: Buffer }
  /** c */
  | { kind: 'copyDone'; bytes: Buffer }
  /** f */
  | { kind: 'copyFail'; bytes: Buffer }
  /** X */
  | { kind: 'terminate'; bytes: Buffer }
  /**
   * p: PasswordMessage, SASLInitialResponse or SASLResponse; which one depends
   * on the authentication exchange, so the body is kept raw (see
   * `decodeSaslInitial`).
   */
  | { kind: 'password'; body: Buffer; bytes: Buffer }
  /** Any other letter. */
  | { kind: 'unknown'; code: string; bytes: Buffer };

export type FrontendKind = FrontendMessage['kind'];
