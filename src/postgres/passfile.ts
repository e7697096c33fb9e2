import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * libpq passfiles (`host:port:database:user:password`, `*` matches
 * anything, `\:` and `\\` escape), read the way libpq reads them: the first
 * matching line wins. pgmaestro writes them so that no password ever sits
 * in a connection string, and reads the user's own for a DSN it is given.
 */

export interface PassEntry {
  readonly host: string;
  readonly port: string;
  readonly database: string;
  readonly user: string;
  readonly password: string;
}

/** Splits one line into its five fields; null for comments, blank or short lines. */
export function parsePassLine(line: string): PassEntry | null {
  if (line.trim() === '' || line.startsWith('#')) return null;
  const fields: string[] = [];
  let cur = '';
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (ch === '\\' && i + 1 < line.length) {
      cur += line[++i];
    } else if (ch === ':' && fields.length < 4) {
      fields.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  fields.push(cur);
  if (fields.length < 5) return null;
  const [host, port, database, user, password] = fields;
  return { host, port, database, user, password };
}

/** The password for a connection, or null when no line matches. */
export function findPassword(text: string, want: { host: string; port: number; database: string; user: string }): string | null {
  const match = (field: string, value: string) => field === '*' || field === value;
  for (const line of text.split(/\r?\n/)) {
    const e = parsePassLine(line);
    if (!e) continue;
    const hostOk = match(e.host, want.host) || (e.host === 'localhost' && (want.host === '127.0.0.1' || want.host === '::1'));
    if (hostOk && match(e.port, String(want.port)) && match(e.database, want.database) && match(e.user, want.user)) return e.password;
  }
  return null;
}

/** One passfile line for `user` on every host, port and database. */
export function passLine(user: string, password: string): string {
  const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
  return `*:*:*:${esc(user)}:${esc(password)}`;
}

/** The passfile libpq would read: `file` when given, else $PGPASSFILE, else ~/.pgpass. */
export function defaultPassfile(file: string | null): string {
  return file ?? process.env.PGPASSFILE ?? path.join(os.homedir(), '.pgpass');
}

/** Reads the password for a connection from a passfile; null when the file or the line is missing. */
export function readPassword(file: string, want: { host: string; port: number; database: string; user: string }): string | null {
  try {
    return findPassword(fs.readFileSync(file, 'utf8'), want);
  } catch {
    return null;
  }
}
