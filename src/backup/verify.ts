import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ClusterContext } from '../cluster/context.js';
import { requireSecrets } from '../cluster/context.js';
import { portFree } from '../cluster/ports.js';
import { PgmError } from '../errors.js';
import { pgStop } from '../postgres/control.js';
import { parseLsn } from '../postgres/lsn.js';
import { withClient, quoteIdent } from '../postgres/sql.js';
import { checkChainLabels } from '../restore/combine.js';
import { chainOf } from '../restore/plan.js';
import { repoMember } from '../restore/repo-member.js';
import { restore } from '../restore/restore.js';
import { checkManifest } from './manifest-check.js';
import { readManifest } from './physical.js';
import type { Repository } from './repository.js';
import { eachLimited } from './storage.js';
import { PackCache, storedChecksum, verifiedReader } from './stored-file.js';
import type { BackupInfo } from './types.js';
import { archiveGaps } from './wal-archive.js';
import { readGaps } from './wal-gaps.js';

export interface VerifyReport {
  readonly backups: number;
  readonly files: number;
  readonly bytes: number;
  readonly wal_segments: number;
  readonly problems: string[];
  readonly lines: string[];
}

/**
 * `backup verify [ID] [--restore]`: every record of the chosen backups (with
 * their ancestors) is checked — the marker against its own checksum, the
 * catalog against the checksum in the marker (and parsed strictly), the
 * catalog against PostgreSQL's backup_manifest — then every stored file
 * against its block checksums, each incremental's label against its parent, every
 * archived WAL file, and the archive's continuity from the oldest backup's
 * start; with --restore, the newest backup is restored into a scratch
 * instance and amcheck runs on every database. Each problem names the file.
 */
export async function verify(ctx: ClusterContext, repo: Repository, opts: { id?: string; restore: boolean }): Promise<VerifyReport> {
  const problems: string[] = [];
  const lines: string[] = [];
  const { backups: all, damaged } = await repo.scan();
  // a damaged marker anywhere is reported (it may be the parent of the backup asked for)
  for (const d of damaged) problems.push(d.problem.message.replace(/\.$/, ''));
  if (opts.id && damaged.some((d) => d.id === opts.id)) return { backups: 1, files: 0, bytes: 0, wal_segments: 0, problems, lines };
  let chosen: BackupInfo[] = all;
  if (opts.id) {
    const b = await repo.get(opts.id);
    try {
      chosen = chainOf(all, b);
    } catch (err) {
      if (!(err instanceof PgmError)) throw err;
      problems.push(err.message.replace(/\.$/, ''));
      chosen = [b];
    }
  }
  let files = 0;
  let bytes = 0;

  // 1. each backup's catalog, its manifest, and every stored file against its checksum
  for (const b of chosen) {
    let bad = 0;
    const note = (err: unknown) => {
      bad++;
      problems.push((err as Error).message.replace(/\.$/, ''));
    };
    let list;
    try {
      list = await repo.files(b);
      if (b.type === 'full' || b.type === 'incr') checkManifest(b.id, await readManifest(repo, b), list);
    } catch (err) {
      note(err);
      lines.push(`${b.id} (${b.type}): damaged`);
      continue;
    }
    const stored = list.entries.filter((e) => e.kind === 'file');
    const packs = new PackCache();
    await eachLimited(stored, 8, async (e) => {
      if (e.kind !== 'file') return;
      files++;
      try {
        for await (const c of verifiedReader(repo.storage, `backups/${b.id}/${e.stored}`, e, `backup ${b.id}`, packs)) bytes += c.length;
      } catch (err) {
        if (!(err instanceof PgmError)) throw err;
        const file = e.offset === undefined ? e.stored : `${e.stored} (${e.path} at offset ${e.offset})`;
        note(new Error(`backup ${b.id} is damaged: ${file} ${err.code === 'backup.corrupt' && /cannot be read|missing/.test(err.message) ? 'is missing or unreadable' : 'does not match its checksum'}`));
      }
    });
    lines.push(`${b.id} (${b.type}): ${bad === 0 ? 'every file matches its checksum' : `${bad} damaged file(s)`}`);
  }

  // 2. chains: every incremental's parent exists and its label follows it
  for (const b of chosen.filter((x) => x.type === 'incr')) {
    if (damaged.some((d) => d.id === b.parent)) continue; // already reported
    try {
      const chain = chainOf(all, b);
      await checkChainLabels(await Promise.all(chain.map((m) => repoMember(repo, m))));
    } catch (err) {
      if (!(err instanceof PgmError)) throw err;
      if (!problems.some((p) => p.startsWith(`backup ${b.id}`))) problems.push(`backup ${b.id}: ${err.message.replace(/\.$/, '')}`);
    }
  }

  // 3. WAL: checksums, continuity from the oldest backup's start, recorded gaps
  const wal = [...(await repo.walEntries()).values()];
  await eachLimited(wal, 8, async (e) => {
    const got = await storedChecksum(repo.storage, `wal/${e.stored}`).catch(() => null);
    if (!got || got.sha256 !== e.sha256) problems.push(`WAL ${e.name}: ${got ? 'does not match its checksum' : 'is missing'}`);
  });
  const physical = all.filter((b) => b.start_lsn !== null && b.timeline !== null);
  const oldest = physical.sort((a, b) => (parseLsn(a.start_lsn!) < parseLsn(b.start_lsn!) ? -1 : 1))[0];
  if (oldest && ctx.cfg.backup.walArchive) {
    const gaps = (await archiveGaps(repo, { lsn: parseLsn(oldest.start_lsn!), timeline: oldest.timeline! })).missing;
    const recorded = await readGaps(repo);
    if (gaps.length > 0) problems.push(`the WAL archive misses ${gaps.length} segment(s) after ${oldest.start_lsn}: ${gaps.slice(0, 3).join(', ')}${gaps.length > 3 ? ', …' : ''}${recorded.length > 0 ? ` (${recorded[0].reason})` : ''}`);
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
    fs.rmSync(`${target}_tablespaces`, { recursive: true, force: true });
    fs.rmSync(`${target}_wal`, { recursive: true, force: true });
  }
}
