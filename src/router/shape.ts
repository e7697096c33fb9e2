/**
 * The shape of a statement text: the text with every literal (numbers,
 * strings, bit strings, dollar-quoted strings) replaced by `?`, so that
 * `... WHERE aid = 1` and `... WHERE aid = 2` share one classification in
 * the router's cache. Literals never change whether a statement reads or
 * writes; identifiers, keywords, operators and comments (hints live there)
 * are kept as they are — except in an option list such as `EXPLAIN (ANALYZE 0)`,
 * so such a text has no shape. Pure. Returns null when the text is not
 * scanned with certainty (an unterminated literal or comment, a text about
 * pgmaestro's own settings or with options whose values matter): the caller
 * then uses the exact text.
 *
 * Scans as PostgreSQL does with standard_conforming_strings on (its default;
 * a session that turns it off is pinned and goes to the primary anyway):
 * backslashes escape only in E'' strings.
 */
export function shapeOf(sql: string): string | null {
  if (/pgmaestro/i.test(sql) || /^\s*explain\s*\(/i.test(sql)) return null;
  let out = '';
  let i = 0;
  let copied = 0;
  const n = sql.length;
  const literal = (start: number, end: number) => {
    out += sql.slice(copied, start) + '?';
    copied = end;
  };
  while (i < n) {
    const c = sql.charCodeAt(i);
    // -- comment
    if (c === 0x2d && sql.charCodeAt(i + 1) === 0x2d) {
      const e = sql.indexOf('\n', i);
      i = e === -1 ? n : e + 1;
      continue;
    }
    // /* comment */, nested
    if (c === 0x2f && sql.charCodeAt(i + 1) === 0x2a) {
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql.charCodeAt(i) === 0x2f && sql.charCodeAt(i + 1) === 0x2a) {
          depth++;
          i += 2;
        } else if (sql.charCodeAt(i) === 0x2a && sql.charCodeAt(i + 1) === 0x2f) {
          depth--;
          i += 2;
        } else i++;
      }
      if (depth > 0) return null;
      continue;
    }
    // "quoted identifier"
    if (c === 0x22) {
      const e = endOfQuoted(sql, i + 1, 0x22, false);
      if (e < 0) return null;
      i = e;
      continue;
    }
    // 'string', E'string', B'bits', X'hex', U&'string', N'string'
    if (c === 0x27 || (isPrefix(sql, i) && !isIdentChar(sql.charCodeAt(i - 1)))) {
      const start = i;
      let backslash = false;
      if (c !== 0x27) {
        const p = sql[i].toLowerCase();
        backslash = p === 'e';
        i += p === 'u' ? 2 : 1;
      }
      const e = endOfQuoted(sql, i + 1, 0x27, backslash);
      if (e < 0) return null;
      literal(start, e);
      i = e;
      continue;
    }
    // $tag$ … $tag$ (but $1 is a parameter)
    if (c === 0x24 && !isIdentChar(sql.charCodeAt(i - 1))) {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 64));
      if (m) {
        const close = sql.indexOf(m[0], i + m[0].length);
        if (close < 0) return null;
        literal(i, close + m[0].length);
        i = close + m[0].length;
        continue;
      }
    }
    // a number not part of an identifier or a parameter ($1)
    if (isDigit(c) || (c === 0x2e && isDigit(sql.charCodeAt(i + 1)))) {
      const prev = sql.charCodeAt(i - 1);
      if (!isIdentChar(prev) && prev !== 0x24) {
        const m = /^(?:0[xX][0-9A-Fa-f_]+|0[oO][0-7_]+|0[bB][01_]+|(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?)/.exec(sql.slice(i, i + 128));
        if (m) {
          literal(i, i + m[0].length);
          i += m[0].length;
          continue;
        }
      }
    }
    i++;
  }
  return out + sql.slice(copied);
}

/** Index just past the closing quote of a literal whose body starts at `from`; -1 when unterminated. */
function endOfQuoted(sql: string, from: number, quote: number, backslash: boolean): number {
  let i = from;
  while (i < sql.length) {
    const c = sql.charCodeAt(i);
    if (backslash && c === 0x5c) {
      i += 2;
      continue;
    }
    if (c === quote) {
      if (sql.charCodeAt(i + 1) === quote) {
        i += 2; // doubled quote
        continue;
      }
      return i + 1;
    }
    i++;
  }
  return -1;
}

/** E' B' X' N' U&' at `i`. */
function isPrefix(sql: string, i: number): boolean {
  const c = sql[i];
  if (c === undefined) return false;
  const l = c.toLowerCase();
  if ((l === 'e' || l === 'b' || l === 'x' || l === 'n') && sql.charCodeAt(i + 1) === 0x27) return true;
  return l === 'u' && sql[i + 1] === '&' && sql.charCodeAt(i + 2) === 0x27;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isIdentChar(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f || c >= 0x80;
}
