import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import pg from 'pg';
import type { TestCluster } from './cluster.js';
import { cli, type CliResult } from './cluster.js';

export interface BackupJson {
  id: string;
  type: string;
  parent: string | null;
  start_lsn: string | null;
  stop_lsn: string | null;
  stop_time: string;
  timeline: number | null;
  size_bytes: number;
}

export async function backup(c: TestCluster, ...args: string[]): Promise<BackupJson> {
  const r = await c.run('backup', ...args, '--json');
  assert.equal(r.code, 0, `backup ${args.join(' ')} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as BackupJson;
}

export async function list(c: TestCluster): Promise<BackupJson[]> {
  const r = await c.run('backup', 'list', '--json');
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { backups: BackupJson[] }).backups;
}

/** Restores with the CLI into a fresh directory and starts it; returns the directory. */
export async function restoreTo(c: TestCluster, port: number, ...target: string[]): Promise<{ dir: string; r: CliResult }> {
  const dir = path.join(c.dir, `restore-${port}-${Date.now()}`);
  const r = await cli(['restore', '-c', c.file, '--target-dir', dir, '--port', String(port), ...target, '--start']);
  return { dir, r };
}

/** Stops a restored instance (immediate) and removes it. */
export async function dropRestore(dir: string): Promise<void> {
  const pidFile = path.join(dir, 'postmaster.pid');
  if (fs.existsSync(pidFile)) {
    const pid = Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]);
    try {
      process.kill(pid, 'SIGQUIT');
    } catch {
      // gone
    }
    for (let i = 0; i < 100 && fs.existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 100));
  }
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(`${dir}_tablespaces`, { recursive: true, force: true });
}

/** A per-table fingerprint of every user table of every database. */
export async function fingerprint(password: string, port: number): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const q = async (db: string, text: string) => {
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: db });
    await c.connect();
    try {
      return (await c.query(text)).rows;
    } finally {
      await c.end();
    }
  };
  const dbs = (await q('postgres', "SELECT datname FROM pg_database WHERE datallowconn AND datname <> 'template1' ORDER BY 1")).map((r) => r.datname as string);
  for (const db of dbs) {
    const tables = (await q(db, "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) AS t FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1")).map((r) => r.t as string);
    for (const t of tables) {
      const [row] = await q(db, `SELECT count(*)::text || ':' || coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') AS f FROM ${t} x`);
      out[`${db}.${t}`] = row.f as string;
    }
  }
  return out;
}
