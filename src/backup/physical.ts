import { PgmError } from '../errors.js';
import { formatLsn } from '../postgres/lsn.js';
import { baseBackup, uploadManifest } from '../protocol/basebackup.js';
import { ReplicationConnection } from '../protocol/connection.js';
import { adminTarget, currentPrimaryName, findNode, requireSecrets, type ClusterContext } from '../cluster/context.js';
import type { Secrets } from '../cluster/secrets.js';
import { withClient } from '../postgres/sql.js';
import { Progress } from './progress.js';
import type { Repository } from './repository.js';
import { chooseSource, type BackupSource } from './source.js';
import { tarStoreSink } from './tar-store.js';
import { BackupFiles } from './backup-files.js';
import type { BackupInfo, FileList, StoredEntry } from './types.js';
import { sha256 } from './catalog.js';
import { checkManifest } from './manifest-check.js';

export interface HotBackupOptions {
  readonly type: 'full' | 'incr';
  /** --from NODE */
  readonly from?: string;
  /** incr: --parent ID (default: the newest backup of the same timeline) */
  readonly parent?: string;
  readonly quiet?: boolean;
}

/**
 * A hot physical backup streamed by pgmaestro's BASE_BACKUP client straight
 * into the repository (no intermediate copy): full, or PostgreSQL 17+
 * incremental against a parent's manifest. The backup exists only once
 * `repo.complete` has written its marker; killed before, it leaves a partial
 * folder that the next backup or expire removes.
 */
export async function hotBackup(ctx: ClusterContext, repo: Repository, opts: HotBackupOptions): Promise<BackupInfo> {
  const secrets = requireSecrets(ctx);

  const phases = new Phases();
  // 1. choose the source node and, for an incremental, check it can take one
  const source = await chooseSource(ctx, secrets, opts.from);
  if (opts.type === 'incr') checkIncrementalSupport(source);
  if (!source.isPrimary) await freshRestartpoint(ctx, secrets, source);

  phases.mark('source chosen');
  // 2. start the backup in its folder (it counts only once its marker is written)
  const { id, dir } = await repo.begin(opts.type);
  const stored = new BackupFiles(repo.storage, () => repo.codecPool(), repo.codec, dir);
  const startTime = new Date();
  const entries: StoredEntry[] = [];
  const progress = new Progress(`backup ${id} from ${source.node.name}`, process.stderr, opts.quiet);
  let done = 0;
  let total: number | null = null;

  phases.mark('begun (leftovers removed)');
  // 3. stream every archive and the manifest into the repository
  const conn = await ReplicationConnection.connect({
    host: source.node.replication,
    port: source.node.port,
    user: ctx.cfg.replicationUser,
    password: secrets.replicationPassword,
    replication: 'true',
    applicationName: `pgmaestro_backup_${id}`,
  });
  let result: Awaited<ReturnType<typeof baseBackup>>;
  let systemId: string;
  let parent: BackupInfo | null = null;
  let manifest: Buffer | null = null;
  try {
    const system = await conn.identifySystem();
    systemId = system.systemId;
    await repo.bindSystem(systemId);
    parent = opts.type === 'incr' ? await chooseParent(repo, system.timeline, opts.parent) : null;
    if (parent) await uploadManifest(conn, await readManifest(repo, parent));
    result = await baseBackup(
      conn,
      { label: `pgmaestro ${opts.type} ${id}`, checkpoint: 'fast', wal: true, progress: true, manifest: true, manifestChecksums: 'CRC32C', incremental: parent !== null },
      {
        start(info) {
          phases.mark('backup started on the server (checkpoint done)');
          const kb = info.tablespaces.map((t) => t.sizeKb ?? 0);
          total = kb.reduce((a, b) => a + b, 0) * 1024;
        },
        async archive(name) {
          const m = /^(\d+)\.tar$/.exec(name);
          const prefix = name === 'base.tar' ? 'data' : m ? `tblspc/${m[1]}` : null;
          if (!prefix) throw new PgmError('backup.failed', `the server sent an archive named ${name}, which pgmaestro does not expect.`, { hint: 'use an uncompressed, server-side-plain backup (the default).' });
          return tarStoreSink(stored, prefix, entries, (n) => {
            done += n;
            progress.update(done, total);
          });
        },
        async manifest() {
          const parts: Buffer[] = [];
          return {
            write: async (c) => void parts.push(Buffer.from(c)),
            end: async () => {
              manifest = Buffer.concat(parts);
              await repo.storage.put(`${dir}/backup_manifest`, manifest);
            },
            abort: () => undefined,
          };
        },
      },
    );
    phases.mark('streamed (BASE_BACKUP: checkpoint, archives, manifest)');
    await stored.finish(); // every file durable before the marker says the backup exists
    phases.mark('last files completed and fsynced');
  } catch (err) {
    conn.destroy();
    await stored.abort();
    await repo.storage.remove(dir).catch(() => undefined);
    if (err instanceof PgmError) throw err;
    throw new PgmError('backup.failed', `the ${opts.type} backup from ${source.node.name} failed: ${(err as Error).message}.`, { hint: 'fix the cause and run it again; nothing incomplete was kept.', cause: err });
  }
  await conn.close().catch(() => undefined);
  progress.finish(done);

  // 4. complete: the catalog checked against PostgreSQL's manifest, then the file list, then the marker
  const files = entries.filter((e) => e.kind === 'file');
  const catalog: FileList = { version: 3, entries };
  try {
    if (entries.some((e) => e.kind === 'dir' && e.path === '')) throw new Error('internal: a file of the backup was not stored');
    if (!manifest) throw new PgmError('backup.failed', `${source.node.name} sent no backup_manifest.`, { hint: 'take the backup from a PostgreSQL 15+ server.' });
    checkManifest(id, manifest, catalog);
  } catch (err) {
    await repo.storage.remove(dir).catch(() => undefined);
    throw err;
  }
  const info = {
    id,
    type: opts.type,
    parent: parent?.id ?? null,
    node: source.node.name,
    start_time: startTime.toISOString(),
    stop_time: new Date().toISOString(),
    start_lsn: formatLsn(result.startLsn),
    stop_lsn: formatLsn(result.endLsn),
    timeline: result.startTimeline,
    size_bytes: files.reduce((n, e) => n + (e.kind === 'file' ? e.size : 0), 0),
    stored_bytes: files.reduce((n, e) => n + (e.kind === 'file' ? e.stored_size : 0), 0),
    compression: repo.compression,
    pg_version: source.version,
    system_identifier: systemId,
    manifest_sha256: sha256(manifest),
  };
  phases.mark(`catalog checked against the manifest (${files.length} files)`);
  const completed = await repo.complete(info, catalog);
  phases.mark('catalog and marker written');
  phases.report(`backup ${id}`);
  return completed;
}

/**
 * A backup from a standby starts at its latest restartpoint, which can only
 * follow a checkpoint replayed from the primary: without one, a quiet standby
 * would start the backup before its parent ended (and PostgreSQL refuses such
 * an incremental). So checkpoint the primary and wait until the standby has
 * replayed that checkpoint.
 */
async function freshRestartpoint(ctx: ClusterContext, secrets: Secrets, source: BackupSource): Promise<void> {
  const primary = findNode(ctx.cfg, await currentPrimaryName(ctx));
  const lsn = await withClient(adminTarget(ctx, primary, secrets), async (c) => {
    await c.query('CHECKPOINT');
    return (await c.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l;
  });
  await withClient(adminTarget(ctx, source.node, secrets), async (c) => {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const r = await c.query<{ ok: boolean }>('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [lsn]);
      if (r.rows[0].ok) return;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new PgmError('backup.failed', `replica ${source.node.name} did not replay the primary's checkpoint at ${lsn} within 60 s.`, {
      hint: 'check its replication (pgmaestro status), or take the backup from the primary with --from.',
    });
  });
}

function checkIncrementalSupport(source: BackupSource): void {
  if (source.major < 17) {
    throw new PgmError('backup.unsupported', `incremental backups need PostgreSQL 17 or later, and ${source.node.name} runs ${source.version}.`, {
      hint: 'take full backups (pgmaestro backup full), or move the cluster to PostgreSQL 17+.',
    });
  }
  if (!source.summarizeWal) {
    throw new PgmError('backup.unsupported', `incremental backups need summarize_wal = on, and it is off on ${source.node.name}.`, {
      hint: 'set summarize_wal: on in postgres.settings (pgmaestro turns it on by default) and run pgmaestro up.',
    });
  }
}

/** The parent of an incremental: `--parent`, else the newest hot backup of the source's timeline. */
async function chooseParent(repo: Repository, timeline: number, wanted: string | undefined): Promise<BackupInfo> {
  if (wanted) {
    const p = await repo.get(wanted);
    if (p.type !== 'full' && p.type !== 'incr') {
      throw new PgmError('backup.unsupported', `backup ${wanted} is a ${p.type} backup; an incremental needs a hot full or incremental parent.`, { hint: 'pass --parent with a full or incr backup id.' });
    }
    return p;
  }
  const hot = (await repo.list()).filter((b) => (b.type === 'full' || b.type === 'incr') && b.timeline === timeline);
  const p = hot[hot.length - 1];
  if (!p) {
    throw new PgmError('backup.unsupported', `there is no full backup on timeline ${timeline} for an incremental to build on.`, { hint: 'take one first with pgmaestro backup full.' });
  }
  return p;
}

/** A backup's backup_manifest, checked against the checksum its marker records. */
export async function readManifest(repo: Repository, b: BackupInfo): Promise<Buffer> {
  const m = await repo.storage.read(`backups/${b.id}/backup_manifest`);
  if (b.manifest_sha256 === null || sha256(m) !== b.manifest_sha256) {
    throw new PgmError('backup.corrupt', `backup ${b.id} is damaged: backups/${b.id}/backup_manifest does not match the checksum recorded in backup.json.`, {
      hint: `run pgmaestro backup verify ${b.id}; take a new full backup.`,
      data: { backup: b.id, file: `backups/${b.id}/backup_manifest` },
    });
  }
  return m;
}

/** With PGMAESTRO_TIMING set, where a backup's time went, one line per step on stderr (issue 19's breakdown). */
class Phases {
  private last = performance.now();
  private readonly lines: string[] = [];
  mark(what: string): void {
    const now = performance.now();
    this.lines.push(`${((now - this.last) / 1000).toFixed(3).padStart(8)} s  ${what}`);
    this.last = now;
  }
  report(label: string): void {
    if (process.env.PGMAESTRO_TIMING) process.stderr.write(`${label} timing (process up ${(performance.now() / 1000).toFixed(3)} s):\n${this.lines.join('\n')}\n`);
  }
}
