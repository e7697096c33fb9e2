import crypto from 'node:crypto';
import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { generateSecret } from '../postgres/scram.js';
import { writeFileAtomic } from '../util/fsx.js';

/**
 * Who may see the console and who may act through it. Two generated tokens,
 * each in its own 0600 file of the cluster's secrets directory:
 *
 *   console.token            read-only: the page, its live updates, /metrics
 *   console-operator.token   the same, plus the operator actions (switchover, backup now)
 *
 * A script sends `Authorization: Bearer <token>`; a browser types the token
 * once into the login form and gets a session cookie (HttpOnly,
 * SameSite=Strict) holding a value derived from the token, never the token.
 * Editing a token file takes effect at once and ends the sessions made with
 * the old token. A multi-host agent can put another ConsoleAuth in front
 * (the cluster's client certificate) behind the same interface.
 */
export type Access = 'read' | 'operator';

export interface ConsoleAuth {
  /** The access a request carries; null when it carries none (the server answers 401). */
  access(req: http.IncomingMessage): Access | null;
  /** The session cookie for a token typed into the login form; null for a wrong token. */
  login(token: string): { readonly access: Access; readonly cookie: string } | null;
}

export const SESSION_COOKIE = 'pgmaestro_console';

export interface TokenFiles {
  readonly read: string;
  readonly operator: string;
}

export function tokenFiles(secretsDir: string): TokenFiles {
  return { read: path.join(secretsDir, 'console.token'), operator: path.join(secretsDir, 'console-operator.token') };
}

/** Generates the tokens that do not exist yet (0600, in a 0700 directory). */
export function ensureConsoleTokens(secretsDir: string): TokenFiles {
  const files = tokenFiles(secretsDir);
  if (!fs.existsSync(secretsDir)) fs.mkdirSync(secretsDir, { recursive: true, mode: 0o700 });
  for (const f of [files.read, files.operator]) {
    let existing = '';
    try {
      existing = fs.readFileSync(f, 'utf8').trim();
    } catch {
      // first start
    }
    if (existing === '') writeFileAtomic(f, generateSecret(32) + '\n', 0o600);
    else if ((fs.statSync(f).mode & 0o077) !== 0) fs.chmodSync(f, 0o600);
  }
  return files;
}

interface Known {
  readonly access: Access;
  readonly token: Buffer;
  readonly session: Buffer;
}

export class TokenAuth implements ConsoleAuth {
  private key = '';
  private known: Known[] = [];

  constructor(private readonly files: TokenFiles) {}

  access(req: http.IncomingMessage): Access | null {
    const known = this.load();
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (bearer) return match(known, Buffer.from(bearer[1]), 'token');
    const cookie = cookieValue(req.headers.cookie, SESSION_COOKIE);
    return cookie === null ? null : match(known, Buffer.from(cookie), 'session');
  }

  login(token: string): { access: Access; cookie: string } | null {
    const known = this.load();
    const access = match(known, Buffer.from(token.trim()), 'token');
    if (!access) return null;
    return { access, cookie: known.find((k) => k.access === access)!.session.toString() };
  }

  /** The token files, re-read when one of them changed. */
  private load(): Known[] {
    const stats = [this.files.read, this.files.operator].map((f) => {
      try {
        const s = fs.statSync(f);
        return `${s.mtimeMs}:${s.size}:${s.ino}`;
      } catch {
        return 'missing';
      }
    });
    const key = stats.join('|');
    if (key === this.key) return this.known;
    const known: Known[] = [];
    for (const [access, file] of [['operator', this.files.operator], ['read', this.files.read]] as const) {
      let token = '';
      try {
        token = fs.readFileSync(file, 'utf8').trim();
      } catch {
        continue; // a missing file grants nothing
      }
      if (token.length < 16) continue; // an emptied or truncated file grants nothing either
      known.push({ access, token: Buffer.from(token), session: Buffer.from(crypto.createHmac('sha256', token).update('pgmaestro console session v1').digest('base64url')) });
    }
    this.key = key;
    this.known = known;
    return known;
  }
}

/** Compares in constant time (over digests, so lengths do not leak either). */
function match(known: readonly Known[], given: Buffer, what: 'token' | 'session'): Access | null {
  const g = crypto.createHash('sha256').update(given).digest();
  let found: Access | null = null;
  for (const k of known) {
    const want = crypto.createHash('sha256').update(what === 'token' ? k.token : k.session).digest();
    if (crypto.timingSafeEqual(g, want) && found === null) found = k.access;
  }
  return found;
}

export function cookieValue(header: string | undefined, name: string): string | null {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i <= 0 || part.slice(0, i).trim() !== name) continue;
    try {
      return decodeURIComponent(part.slice(i + 1).trim());
    } catch {
      return null; // not a cookie we set
    }
  }
  return null;
}
