import fs from 'node:fs';
import path from 'node:path';
import { PgmError, type ErrorCode } from '../errors.js';
import type { Binaries } from './binaries.js';
import { run, type ExecResult, type RunAs } from './exec.js';
import { toolFailure } from './tool-failure.js';

export interface ClientTool {
  readonly path: string;
  readonly major: number;
}

/**
 * A client program (pg_dump, pg_dumpall, pg_restore, psql, pg_rewind) whose
 * major version is at least `serverMajor`: from the cluster's installation,
 * else from any /usr/lib/postgresql/<major>/bin, newest first. Where none
 * exists the error says which package to install.
 */
export async function findClientTool(name: string, serverMajor: number, bins: Binaries): Promise<ClientTool> {
  const candidates = new Set<string>();
  const own = bins.tool(name);
  if (own) candidates.add(own);
  const root = '/usr/lib/postgresql';
  const majors = fs.existsSync(root) ? fs.readdirSync(root).filter((d) => /^\d+$/.test(d)).map(Number).sort((a, b) => b - a) : [];
  for (const m of majors) candidates.add(path.join(root, String(m), 'bin', name));
  const found: ClientTool[] = [];
  for (const p of candidates) {
    if (!fs.existsSync(p)) continue;
    const out = await run(p, ['--version']);
    const m = /\(PostgreSQL\)\s+(\d+)/.exec(out.stdout);
    if (out.code === 0 && m) found.push({ path: p, major: Number(m[1]) });
  }
  const usable = found.filter((t) => t.major >= serverMajor).sort((a, b) => b.major - a.major);
  if (usable.length > 0) return usable[0];
  const have = found.length > 0 ? `only ${found.map((t) => `${name} ${t.major}`).join(', ')} is installed` : `no ${name} is installed`;
  throw new PgmError('tool.missing', `${name} must be of PostgreSQL ${serverMajor} or later to work with this server, and ${have}.`, {
    hint: `install the client tools of PostgreSQL ${serverMajor} (Debian: apt-get install postgresql-client-${serverMajor}, from the PGDG repository if your release lacks it), or set postgres.bin_dir to an installation that has ${name}.`,
  });
}

/**
 * Runs a client tool to completion; when it fails, throws one sentence
 * carrying its first error line, its whole output kept in `keepDir`.
 */
export async function runClientTool(
  tool: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; user?: RunAs; keepDir: string; code: ErrorCode; hint: string },
): Promise<ExecResult> {
  const r = await run(tool, args, { env: opts.env, user: opts.user });
  if (r.code !== 0) throw toolFailure(opts.code, path.basename(tool), '', r.stderr + r.stdout, { keepDir: opts.keepDir, hint: opts.hint });
  return r;
}
