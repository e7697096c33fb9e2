import fs from 'node:fs';
import path from 'node:path';
import { PgmError, type ErrorCode } from '../errors.js';

/**
 * What a failed child tool (initdb, pg_ctl, pg_dump, pg_restore, psql,
 * pg_rewind, …) said was wrong: its first line naming an error (`ERROR:`,
 * `FATAL:`, `PANIC:`, `error:`, `fatal:`), preceded by the server's own
 * complaint about a setting when one comes right before it (PostgreSQL logs
 * `invalid value for parameter …` as LOG, then `FATAL: configuration file …
 * contains errors`). Falls back to the last non-empty line.
 */
export function firstCause(output: string): string {
  const lines = output.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const i = lines.findIndex((l) => /\b(ERROR|FATAL|PANIC|error|fatal):/.test(l));
  if (i < 0) return lines[lines.length - 1] ?? 'no output';
  const prev = i > 0 ? lines[i - 1] : '';
  const setting = /\bLOG:\s+(invalid value|unrecognized configuration parameter|parameter "|could not)/.test(prev) ? `${stripPrefix(prev)} / ` : '';
  return setting + stripPrefix(lines[i]);
}

/** Drops a server log line's timestamp and pid prefix, keeping from the severity on. */
function stripPrefix(line: string): string {
  const m = /\b(LOG|ERROR|FATAL|PANIC):\s.*/.exec(line);
  return (m && m.index > 0 && /^\d{4}-\d\d-\d\d/.test(line) ? m[0] : line).replace(/\s+/g, ' ').replace(/[.:]$/, '');
}

/** Keeps a failed tool's whole output in `dir` (0600) and returns the file, or null when it cannot. */
export function keepOutput(dir: string | undefined, tool: string, output: string): string | null {
  if (!dir || output.trim() === '') return null;
  try {
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `${tool}-${new Date().toISOString().replace(/[:.]/g, '-')}.log`);
    fs.writeFileSync(file, output, { mode: 0o600 });
    return file;
  } catch {
    return null;
  }
}

/**
 * One sentence for a child tool that failed: `<tool> <what> failed: <first cause> (full output in FILE).`
 * `output` is everything the tool printed; `keptIn` a file that already holds it (pg_ctl's log).
 */
export function toolFailure(code: ErrorCode, tool: string, what: string, output: string, opts: { keepDir?: string; keptIn?: string; hint: string }): PgmError {
  const kept = opts.keptIn ?? keepOutput(opts.keepDir, tool, output);
  const cause = firstCause(output).replace(new RegExp(`^${tool.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(:\\S*)?:\\s+`), '');
  return new PgmError(code, `${tool}${what ? ` ${what}` : ''} failed: ${cause}${kept ? ` (full output in ${kept})` : ''}.`, {
    hint: opts.hint,
    data: { tool, output: kept },
  });
}
