import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { PgmError } from '../errors.js';

/**
 * SCRAM-SHA-256 client (RFC 5802 / RFC 7677) as PostgreSQL speaks it: no
 * channel binding (gs2 header `n,,`). The functions are pure given the client
 * nonce; `ScramClient` strings them together for one exchange. The exchange
 * succeeds only if the server proves it knows the password too (server
 * signature), so a fake server cannot complete authentication.
 */

export const MECHANISM = 'SCRAM-SHA-256';
const GS2_HEADER = 'n,,';

export interface ServerFirst {
  /** The combined nonce: the client's nonce followed by the server's. */
  nonce: string;
  salt: Buffer;
  iterations: number;
  raw: string;
}

export interface ClientFinal {
  /** client-final-message, to send as the SASLResponse. */
  message: string;
  /** base64 ServerSignature that the server-final-message must carry. */
  expectedServerSignature: string;
}

/** A random nonce of printable characters without ','. */
export function makeNonce(): string {
  return randomBytes(18).toString('base64');
}

/**
 * client-first-message-bare. PostgreSQL ignores the SCRAM user name (it uses the
 * startup packet's) so the connection sends ''; the RFC test vector needs 'user'.
 */
export function clientFirstMessageBare(user: string, clientNonce: string): string {
  return `n=${user.replace(/=/g, '=3D').replace(/,/g, '=2C')},r=${clientNonce}`;
}

export function clientFirstMessage(user: string, clientNonce: string): string {
  return GS2_HEADER + clientFirstMessageBare(user, clientNonce);
}

export function parseServerFirst(raw: string, clientNonce: string): ServerFirst {
  const attrs = parseAttributes(raw);
  const nonce = attrs.get('r');
  const salt = attrs.get('s');
  const iterations = Number(attrs.get('i'));
  if (attrs.has('m')) throw authError('the server requires a SCRAM extension we do not support');
  if (!nonce || salt === undefined || !Number.isInteger(iterations) || iterations < 1) {
    throw authError(`malformed SCRAM server-first-message ${JSON.stringify(raw)}`);
  }
  if (!nonce.startsWith(clientNonce) || nonce.length === clientNonce.length) {
    throw authError('the server\'s SCRAM nonce does not extend ours');
  }
  return { nonce, salt: Buffer.from(salt, 'base64'), iterations, raw };
}

/**
 * What proves a SCRAM identity: the ClientKey (to build the proof) and the
 * ServerKey (to check the server's signature). Derived from the password, or
 * recovered by a server from a client's proof (see scram-server.ts): a router
 * then authenticates its own server connections as that user without ever
 * knowing the password.
 */
export interface ScramKeys {
  readonly clientKey: Buffer;
  readonly serverKey: Buffer;
}

export function keysFromPassword(password: string, salt: Buffer, iterations: number): ScramKeys {
  const salted = pbkdf2Sync(saslPrep(password), salt, iterations, 32, 'sha256');
  return { clientKey: hmac(salted, 'Client Key'), serverKey: hmac(salted, 'Server Key') };
}

export function clientFinal(opts: { password: string; clientFirstBare: string; serverFirst: ServerFirst } | { keys: ScramKeys; clientFirstBare: string; serverFirst: ServerFirst }): ClientFinal {
  const { serverFirst } = opts;
  const withoutProof = `c=${Buffer.from(GS2_HEADER).toString('base64')},r=${serverFirst.nonce}`;
  const authMessage = `${opts.clientFirstBare},${serverFirst.raw},${withoutProof}`;

  const { clientKey, serverKey } = 'keys' in opts ? opts.keys : keysFromPassword(opts.password, serverFirst.salt, serverFirst.iterations);
  const storedKey = createHash('sha256').update(clientKey).digest();
  const clientSignature = hmac(storedKey, authMessage);
  const proof = Buffer.alloc(clientKey.length);
  for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i] ^ clientSignature[i];
  const serverSignature = hmac(serverKey, authMessage);

  return { message: `${withoutProof},p=${proof.toString('base64')}`, expectedServerSignature: serverSignature.toString('base64') };
}

/** Throws unless the server-final-message carries the expected signature. */
export function verifyServerFinal(raw: string, expectedServerSignature: string): void {
  const attrs = parseAttributes(raw);
  const error = attrs.get('e');
  if (error !== undefined) throw authError(`the server rejected SCRAM authentication (${error})`);
  const v = attrs.get('v');
  if (v === undefined) throw authError(`malformed SCRAM server-final-message ${JSON.stringify(raw)}`);
  const got = Buffer.from(v, 'base64');
  const want = Buffer.from(expectedServerSignature, 'base64');
  if (got.length !== want.length || !timingSafeEqual(got, want)) {
    throw authError('the server\'s SCRAM signature is wrong, so it does not know the password (possible impostor)');
  }
}

/** One SCRAM exchange: first() → SASLInitialResponse, final(server-first) → SASLResponse, verify(server-final). */
export class ScramClient {
  private readonly bare: string;
  private expected: string | null = null;

  /** `secret`: the password, or the keys recovered from an earlier proof (same salt and iterations). */
  constructor(
    private readonly user: string,
    private readonly secret: string | ScramKeys,
    private readonly nonce: string = makeNonce(),
  ) {
    this.bare = clientFirstMessageBare(user, nonce);
  }

  first(): string {
    return GS2_HEADER + this.bare;
  }

  final(serverFirstRaw: string): string {
    const serverFirst = parseServerFirst(serverFirstRaw, this.nonce);
    const out =
      typeof this.secret === 'string'
        ? clientFinal({ password: this.secret, clientFirstBare: this.bare, serverFirst })
        : clientFinal({ keys: this.secret, clientFirstBare: this.bare, serverFirst });
    this.expected = out.expectedServerSignature;
    return out.message;
  }

  verify(serverFinalRaw: string): void {
    if (this.expected === null) throw authError('the server sent SCRAM server-final before server-first');
    verifyServerFinal(serverFinalRaw, this.expected);
  }
}

export function hmac(key: Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

export function parseAttributes(raw: string): Map<string, string> {
  const attrs = new Map<string, string>();
  for (const part of raw.split(',')) {
    const eq = part.indexOf('=');
    if (eq !== 1) continue;
    attrs.set(part[0], part.slice(2));
  }
  return attrs;
}

/**
 * An approximation of SASLprep (RFC 4013) that matches PostgreSQL for every
 * ASCII password and common non-ASCII ones: non-ASCII spaces become ' ',
 * "mapped to nothing" characters are dropped, then NFKC. Like PostgreSQL, a
 * password with prohibited (control) characters is used as is.
 */
function saslPrep(password: string): string {
  if (/^[\x00-\x7f]*$/.test(password)) return password;
  const mapped = password
    .replace(/[\u00a0\u1680\u2000-\u200b\u202f\u205f\u3000]/g, ' ')
    .replace(/[\u00ad\u034f\u1806\u180b-\u180d\u200c\u200d\u2060\ufe00-\ufe0f\ufeff]/g, '')
    .normalize('NFKC');
  return /[\u0000-\u001f\u007f-\u009f]/.test(mapped) ? password : mapped;
}

function authError(what: string): PgmError {
  return new PgmError('protocol.auth_failed', `SCRAM authentication failed: ${what}.`, {
    hint: 'Check the password and that pg_hba.conf uses scram-sha-256 for this connection.',
  });
}
