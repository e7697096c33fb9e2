import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ClusterContext } from '../cluster/context.js';
import { requireSecrets } from '../cluster/context.js';
import { portFree } from '../cluster/ports.js';
import { pgStop } from '../postgres/control.js';
import { parseLsn } from '../postgres/lsn.js';
import { withClient, quoteIdent } from '../postgres/sql.js';
import { checkChainLabels } from '../restore/combine.js';
import { chainOf } from '../restore/plan.js';
import { repoMember } from '../restore/repo-member.js';
import { restore } from '../restore/restore.js';
import type { Repository } from './repository.js';
import type { BackupInfo } from './types.js';
import { archiveGaps } from './wal-archive.js';

export interface VerifyReport {
  readonly backups: number;
  readonly files: number;
  readonly bytes: number;
  readonly wal_segments: number;
  readonly problems: string[];
  readonly lines: string[];
}

/**
 * `backup verify [ID] [--restore]`: re-reads every stored file of the chosen
 * backups (with their ancestors) and every archived WAL file against its
 * SHA-256; checks each incremental's label against its parent; checks that
 * the WAL archive is continuous from the oldest backup's start to its newest
 * segment; with --restore, restores the newest into a scratch instance and
 * runs amcheck on every database.
 */
export async function verify(ctx: ClusterContext, repo: Repository, opts: { id?: string; restore: boolean }): Promise<VerifyReport> {
  const all = repo.list();
  const chosen: BackupInfo[] = opts.id ? chainOf(all, repo.get(opts.id)) : all;
  const problems: string[] = [];
  const lines: string[] = [];
  let files = 0;
  let bytes = 0;

  // 1. every stored file against its checksum
  for (const b of chosen) {
    let bad = 0;
    for (const e of repo.files(b.id).entries) {
      if (e.kind !== 'file') continue;
      files++;
      const rel = `backups/${b.id}/${e.stored}`;
      let got: { sha256: string; size: number } | null = null;
      try {
        got = await repo.storage.checksum(rel);
      } catch {
        got = null;
      }
      bytes += got?.size ?? 0;
      if (!got || got.sha256 !== e.sha256 || got.size !== e.stored_size) {
        bad++;
        problems.push(`backup ${b.id}: ${e.stored} ${got ? 'does not match its checksum' : 'is missing'}`);
      }
    }
    lines.push(`${b.id} (${b.type}): ${bad === 0 ? 'every file matches its checksum' : `${bad} damaged file(s)`}`);
  }

  // 2. chains: every incremental's parent exists and its label follows it
  for (const b of chosen.filter((x) => x.type === 'incr')) {
    try {
      const chain = chainOf(all, b);
      await checkChainLabels(chain.map((m) => repoMember(repo, m)));
    } catch (err) {
      problems.push(`backup ${b.id}: ${(err as Error).message.replace(/\.$/, '')}`);
    }
  }

  // 3. WAL: checksums and continuity from the oldest backup's start
  const wal = [...repo.walEntries().values()];
  for (const e of wal) {
    const got = await repo.storage.checksum(`wal/${e.stored}`).catch(() => null);
    if (!got || got.sha256 !== e.sha256) problems.push(`WAL ${e.name}: ${got ? 'does not match its checksum' : 'is missing'}`);
  }
  const physical = all.filter((b) => b.start_lsn !== null && b.timeline !== null);
  const oldest = physical.sort((a, b) => (parseLsn(a.start_lsn!) < parseLsn(b.start_lsn!) ? -1 : 1))[0];
  if (oldest && ctx.cfg.backup.walArchive) {
    const gaps = archiveGaps(repo, { lsn: parseLsn(oldest.start_lsn!), timeline: oldest.timeline! }).missing;
    if (gaps.length > 0) problems.push(`the WAL archive misses ${gaps.length} segment(s) after ${oldest.start_lsn}: ${gaps.slice(0, 3).join(', ')}${gaps.length > 3 ? ', …' : ''}`);
    lines.push(`WAL: ${wal.length} archived file(s), ${gaps.length === 0 ? 'continuous' : `${gaps.length} missing`} from ${oldest.start_lsn}`);
  }

  // 4. optionally, a real restore and amcheck
  if (opts.restore && problems.length === 0 && physical.length > 0) lines.push(await restoreAndCheck(ctx, repo));
  return { backups: chosen.length, files, bytes, wal_segments: wal.length, problems, lines };
}

async function restoreAndCheck(ctx: ClusterContext, repo: Repository): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgmaestro-verify-'));
  fs.chmodSync(dir, 0o755);
  const target = path.join(dir, 'data');
  let port = 40000 + Math.floor(Math.random() * 20000);
  while (!(await portFree('127.0.0.1', port))) port++;
  try {
    await restore(ctx, repo, { targetDir: target, port, target: { kind: 'latest' }, start: true }, () => undefined);
    const secrets = requireSecrets(ctx);
    const conn = { host: '127.0.0.1', port, user: ctx.cfg.superuser, password: secrets.superuserPassword };
    const dbs = await withClient(conn, async (c) => (await c.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datallowconn')).rows.map((r) => r.datname));
    let indexes = 0;
    for (const db of dbs) {
      indexes += await withClient({ ...conn, database: db }, async (c) => {
        await c.query('CREATE EXTENSION IF NOT EXISTS amcheck');
        const r = await c.query(
          `SELECT bt_index_check(c.oid, true) FROM pg_class c JOIN pg_am a ON a.oid = c.relam
            WHERE a.amname = 'btree' AND c.relkind = 'i' AND c.relpersistence <> 't'`,
        );
        return r.rowCount ?? 0;
      }, 600_000);
    }
    return `restore: the newest backup restored and recovered; amcheck found no corruption in ${indexes} indexes of ${dbs.length} databases (${dbs.map(quoteIdent).join(', ')})`;
  } finally {
    await pgStop(ctx.bins, ctx.user, target, 'immediate').catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
