import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { hmac, makeNonce, parseAttributes, type ScramKeys } from './scram.js';

/**
 * The server side of SCRAM-SHA-256 as PostgreSQL speaks it, checked against
 * a stored verifier (pg_authid.rolpassword) — no password needed or kept.
 * Channel binding is not offered, so a client may send gs2 flag 'n' or 'y'
 * (it could bind but thinks we cannot), never 'p'. Pure given the server
 * nonce.
 *
 * Verifying a proof also yields the client's ClientKey (proof XOR
 * ClientSignature): with the verifier's ServerKey that is what a router needs
 * to authenticate its own connections to PostgreSQL as the same user.
 */

export interface Verifier {
  readonly iterations: number;
  readonly salt: Buffer;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

/** `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`; null for anything else (MD5, no password). */
export function parseVerifier(text: string | null): Verifier | null {
  if (!text) return null;
  const m = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]{43}=):([A-Za-z0-9+/]{43}=)$/.exec(text);
  if (!m) return null;
  const storedKey = Buffer.from(m[3], 'base64');
  const serverKey = Buffer.from(m[4], 'base64');
  if (storedKey.length !== 32 || serverKey.length !== 32) return null;
  return { iterations: Number(m[1]), salt: Buffer.from(m[2], 'base64'), storedKey, serverKey };
}

/** A verifier no password matches, with a salt derived from the user name: a missing role looks like a wrong password (PostgreSQL does the same). */
export function mockVerifier(user: string, secret: Buffer): Verifier {
  const salt = createHash('sha256').update(secret).update(user).digest().subarray(0, 16);
  return { iterations: 4096, salt, storedKey: randomBytes(32), serverKey: randomBytes(32) };
}

export type ScramServerStep = { ok: true; message: string } | { ok: false; reason: string };

export class ScramServer {
  private clientFirstBare = '';
  private gs2Header = '';
  private nonce = '';
  private serverFirst = '';
  private done = false;

  constructor(
    private readonly verifier: Verifier,
    private readonly serverNonce: string = makeNonce(),
  ) {}

  /** client-first-message → server-first-message. */
  first(clientFirst: string): ScramServerStep {
    // gs2-header: flag, authzid, then the bare message.
    const m = /^([nyp])(=[^,]*)?,(a=[^,]*)?,(.*)$/.exec(clientFirst);
    if (!m) return { ok: false, reason: 'malformed SCRAM message (client-first-message)' };
    if (m[1] === 'p') return { ok: false, reason: 'channel binding is not supported by this server' };
    if (m[3]) return { ok: false, reason: 'client uses authorization identity, but it is not supported' };
    this.gs2Header = clientFirst.slice(0, clientFirst.length - m[4].length);
    this.clientFirstBare = m[4];
    const attrs = parseAttributes(this.clientFirstBare);
    if (attrs.has('m')) return { ok: false, reason: 'client requires an unsupported SCRAM extension' };
    const clientNonce = attrs.get('r');
    if (!clientNonce || !/^[\x21-\x2b\x2d-\x7e]+$/.test(clientNonce)) return { ok: false, reason: 'malformed SCRAM message (client nonce)' };
    this.nonce = clientNonce + this.serverNonce;
    this.serverFirst = `r=${this.nonce},s=${this.verifier.salt.toString('base64')},i=${this.verifier.iterations}`;
    return { ok: true, message: this.serverFirst };
  }

  /**
   * client-final-message → server-final-message and the client's keys, or
   * the reason the proof is refused.
   */
  final(clientFinal: string): { ok: true; message: string; keys: ScramKeys } | { ok: false; reason: string } {
    if (!this.serverFirst || this.done) return { ok: false, reason: 'SCRAM messages out of order' };
    this.done = true;
    const p = clientFinal.lastIndexOf(',p=');
    if (p < 0) return { ok: false, reason: 'malformed SCRAM message (no proof)' };
    const withoutProof = clientFinal.slice(0, p);
    const attrs = parseAttributes(withoutProof);
    if (attrs.get('c') !== Buffer.from(this.gs2Header).toString('base64')) return { ok: false, reason: 'unexpected SCRAM channel-binding attribute in client-final-message' };
    if (attrs.get('r') !== this.nonce) return { ok: false, reason: 'SCRAM nonce mismatch' };
    const proof = Buffer.from(clientFinal.slice(p + 3), 'base64');
    if (proof.length !== 32) return { ok: false, reason: 'malformed SCRAM message (invalid proof)' };

    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    const clientSignature = hmac(this.verifier.storedKey, authMessage);
    const clientKey = Buffer.alloc(32);
    for (let i = 0; i < 32; i++) clientKey[i] = proof[i] ^ clientSignature[i];
    const stored = createHash('sha256').update(clientKey).digest();
    if (!timingSafeEqual(stored, this.verifier.storedKey)) return { ok: false, reason: 'wrong password' };
    const serverSignature = hmac(this.verifier.serverKey, authMessage);
    return { ok: true, message: `v=${serverSignature.toString('base64')}`, keys: { clientKey, serverKey: this.verifier.serverKey } };
  }
}
