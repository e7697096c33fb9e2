import { spawn } from 'node:child_process';
import { toolFailure } from '../postgres/tool-failure.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { adminTarget, currentPrimaryName, findNode, requireSecrets, type ClusterContext } from '../cluster/context.js';
import { PgmError } from '../errors.js';
import { quoteIdent, withClient } from '../postgres/sql.js';
import { findClientTool, runClientTool } from '../postgres/tools.js';
import type { Repository } from './repository.js';
import { verifiedReader } from '../restore/repo-member.js';
import type { BackupInfo, StoredEntry } from './types.js';

export type LogicalFormat = 'plain' | 'custom' | 'directory';

export interface LogicalOptions {
  /** One database, or null with `all` for pg_dumpall. */
  readonly db: string | null;
  readonly all: boolean;
  readonly tables: readonly string[];
  readonly format: LogicalFormat;
  readonly from?: string;
}

/**
 * `backup logical`: pg_dump of one database (optionally some tables) or
 * pg_dumpall of the whole cluster, from a client installation whose major is
 * at least the server's, stored in the repository with checksums and
 * catalogued beside the physical backups.
 */
export async function logicalBackup(ctx: ClusterContext, repo: Repository, opts: LogicalOptions): Promise<BackupInfo> {
  const secrets = requireSecrets(ctx);
  const node = findNode(ctx.cfg, opts.from ?? (await currentPrimaryName(ctx)));
  const target = adminTarget(ctx, node, secrets);
  const { major, version } = await withClient(target, async (c) => {
    const r = await c.query<{ num: string; ver: string }>("SELECT current_setting('server_version_num') AS num, current_setting('server_version') AS ver");
    return { major: Math.floor(Number(r.rows[0].num) / 10000), version: r.rows[0].ver.split(' ')[0] };
  });
  const tool = await findClientTool(opts.all ? 'pg_dumpall' : 'pg_dump', major, ctx.bins);

  const { id, dir } = repo.begin('logical');
  repo.claim(dir);
  const startTime = new Date();
  const entries: StoredEntry[] = [];
  const conn = ['-h', node.admin, '-p', String(node.port), '-U', ctx.cfg.superuser, '--no-password'];
  const env = { ...process.env, PGPASSFILE: ctx.paths.superuserPassfile, PGCONNECT_TIMEOUT: '10' };
  try {
    if (opts.all) {
      await dumpToRepo(repo, dir, 'dumpall.sql', tool.path, [...conn, '-l', 'postgres'], env, entries, ctx.paths.logsDir);
    } else if (opts.format === 'directory') {
      const scratch = path.join(repo.root, dir, 'dump.dir');
      await runTool(tool.path, [...conn, '-Fd', '-f', scratch, ...tableArgs(opts.tables), opts.db!], env, ctx.paths.logsDir);
      for (const f of fs.readdirSync(scratch).sort()) {
        const w = await repo.storage.writer(`${dir}/dump/${f}`, 'none');
        for await (const chunk of fs.createReadStream(path.join(scratch, f))) await w.write(chunk as Buffer);
        const r = await w.end();
        entries.push({ kind: 'file', path: `dump/${f}`, size: r.size, stored: `dump/${f}`, stored_size: r.storedSize, sha256: r.sha256 });
      }
      fs.rmSync(scratch, { recursive: true, force: true });
    } else {
      const fmt = opts.format === 'plain' ? 'p' : 'c';
      await dumpToRepo(repo, dir, opts.format === 'plain' ? 'dump.sql' : 'dump.custom', tool.path, [...conn, `-F${fmt}`, ...tableArgs(opts.tables), opts.db!], env, entries, ctx.paths.logsDir);
    }
  } catch (err) {
    repo.storage.remove(dir);
    throw err;
  }
  const files = entries.filter((e): e is Extract<StoredEntry, { kind: 'file' }> => e.kind === 'file');
  const info: BackupInfo = {
    id,
    type: 'logical',
    parent: null,
    node: node.name,
    start_time: startTime.toISOString(),
    stop_time: new Date().toISOString(),
    start_lsn: null,
    stop_lsn: null,
    timeline: null,
    size_bytes: files.reduce((n, e) => n + e.size, 0),
    stored_bytes: files.reduce((n, e) => n + e.stored_size, 0),
    compression: opts.format === 'plain' || opts.all ? repo.compression : 'none',
    pg_version: version,
    system_identifier: null,
    logical: { databases: opts.db ? [opts.db] : [], tables: [...opts.tables], format: opts.all ? 'dumpall' : opts.format, tool: tool.path },
  };
  repo.complete(info, { version: 1, entries });
  return info;
}

/**
 * `restore --logical ID --db D`: replays a dump into database D (created when
 * missing) with psql (plain, dumpall) or pg_restore (custom, directory).
 */
export async function logicalRestore(ctx: ClusterContext, repo: Repository, id: string, db: string): Promise<string> {
  const b = repo.get(id);
  if (b.type !== 'logical' || !b.logical) {
    throw new PgmError('backup.unsupported', `backup ${id} is a ${b.type} backup, not a logical one.`, { hint: 'restore physical backups with restore --target-dir DIR --port P.' });
  }
  const secrets = requireSecrets(ctx);
  const node = findNode(ctx.cfg, await currentPrimaryName(ctx));
  const target = adminTarget(ctx, node, secrets);
  const major = await withClient(target, async (c) => {
    const exists = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [db]);
    if (exists.rowCount === 0) await c.query(`CREATE DATABASE ${quoteIdent(db)}`);
    return Math.floor(Number((await c.query<{ n: string }>("SELECT current_setting('server_version_num') AS n")).rows[0].n) / 10000);
  });
  const conn = ['-h', node.admin, '-p', String(node.port), '-U', ctx.cfg.superuser, '--no-password'];
  const env = { ...process.env, PGPASSFILE: ctx.paths.superuserPassfile };
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'pgmaestro-logical-'));
  try {
    // Materialise the dump with checksums verified, then hand it to the tool.
    for (const e of repo.files(id).entries) {
      if (e.kind !== 'file') continue;
      const dest = path.join(scratch, e.path);
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      const out = fs.createWriteStream(dest);
      for await (const chunk of verifiedReader(repo, id, e)) if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
      await new Promise<void>((r, j) => out.end((err?: Error | null) => (err ? j(err) : r())));
    }
    const fmt = b.logical.format;
    if (fmt === 'plain' || fmt === 'dumpall') {
      const psql = await findClientTool('psql', major, ctx.bins);
      await runTool(psql.path, [...conn, '-d', db, '-v', 'ON_ERROR_STOP=1', '-q', '-f', path.join(scratch, fmt === 'plain' ? 'dump.sql' : 'dumpall.sql')], env, ctx.paths.logsDir);
    } else {
      const pgRestore = await findClientTool('pg_restore', major, ctx.bins);
      await runTool(pgRestore.path, [...conn, '-d', db, '--no-owner', '--exit-on-error', fmt === 'custom' ? path.join(scratch, 'dump.custom') : path.join(scratch, 'dump')], env, ctx.paths.logsDir);
    }
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  return `restored logical backup ${id} (${b.logical.format}) into database ${db} on ${node.name}`;
}

function tableArgs(tables: readonly string[]): string[] {
  return tables.flatMap((t) => ['-t', t]);
}

async function dumpToRepo(repo: Repository, dir: string, name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv, entries: StoredEntry[], keepDir: string): Promise<void> {
  const w = await repo.storage.writer(`${dir}/${name}`, name.endsWith('.sql') ? repo.compression : 'none');
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exit = new Promise<number>((resolve) => {
    child.on('error', (err) => {
      stderr += `error: cannot run ${cmd}: ${err.message}\n`;
      resolve(127);
    });
    child.on('close', (code) => resolve(code ?? 1));
  });
  try {
    for await (const chunk of child.stdout) await w.write(chunk as Buffer);
  } catch (err) {
    child.kill();
    await w.abort();
    throw err;
  }
  if ((await exit) !== 0) {
    await w.abort();
    throw toolFailed(cmd, stderr, keepDir);
  }
  const r = await w.end();
  entries.push({ kind: 'file', path: name, size: r.size, stored: path.posix.relative(dir, r.stored), stored_size: r.storedSize, sha256: r.sha256 });
}

const TOOL_HINT = 'fix the cause (a wrong database or table name, tables that already exist?) and run it again; nothing incomplete was kept.';

async function runTool(cmd: string, args: string[], env: NodeJS.ProcessEnv, keepDir: string): Promise<void> {
  await runClientTool(cmd, args, { env, keepDir, code: 'backup.failed', hint: TOOL_HINT });
}

function toolFailed(cmd: string, stderr: string, keepDir: string): PgmError {
  return toolFailure('backup.failed', path.basename(cmd), '', stderr, { keepDir, hint: TOOL_HINT });
}
