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
import type { BackupInfo, StoredEntry } from './types.js';

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

  // 1. choose the source node and, for an incremental, check it can take one
  const source = await chooseSource(ctx, secrets, opts.from);
  if (opts.type === 'incr') checkIncrementalSupport(source);
  if (!source.isPrimary) await freshRestartpoint(ctx, secrets, source);

  // 2. start the backup in a partial folder
  const { id, dir } = repo.begin(opts.type);
  repo.claim(dir);
  const startTime = new Date();
  const entries: StoredEntry[] = [];
  const progress = new Progress(`backup ${id} from ${source.node.name}`, process.stderr, opts.quiet);
  let done = 0;
  let total: number | null = null;

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
  try {
    const system = await conn.identifySystem();
    systemId = system.systemId;
    repo.bindSystem(systemId);
    parent = opts.type === 'incr' ? chooseParent(repo, system.timeline, opts.parent) : null;
    if (parent) await uploadManifest(conn, repo.storage.read(`backups/${parent.id}/backup_manifest`));
    let manifestWriter: Awaited<ReturnType<typeof repo.storage.writer>> | null = null;
    result = await baseBackup(
      conn,
      { label: `pgmaestro ${opts.type} ${id}`, checkpoint: 'fast', wal: true, progress: true, manifest: true, manifestChecksums: 'CRC32C', incremental: parent !== null },
      {
        start(info) {
          const kb = info.tablespaces.map((t) => t.sizeKb ?? 0);
          total = kb.reduce((a, b) => a + b, 0) * 1024;
        },
        async archive(name) {
          const m = /^(\d+)\.tar$/.exec(name);
          const prefix = name === 'base.tar' ? 'data' : m ? `tblspc/${m[1]}` : null;
          if (!prefix) throw new PgmError('backup.failed', `the server sent an archive named ${name}, which pgmaestro does not expect.`, { hint: 'use an uncompressed, server-side-plain backup (the default).' });
          return tarStoreSink(repo, dir, prefix, entries, (n) => {
            done += n;
            progress.update(done, total);
          });
        },
        async manifest() {
          manifestWriter = await repo.storage.writer(`${dir}/backup_manifest`, 'none');
          const w = manifestWriter;
          return { write: (c) => w.write(c), end: async () => void (await w.end()), abort: () => void w.abort() };
        },
      },
    );
  } catch (err) {
    conn.destroy();
    repo.storage.remove(dir);
    if (err instanceof PgmError) throw err;
    throw new PgmError('backup.failed', `the ${opts.type} backup from ${source.node.name} failed: ${(err as Error).message}.`, { hint: 'fix the cause and run it again; nothing incomplete was kept.', cause: err });
  }
  await conn.close().catch(() => undefined);
  progress.finish(done);

  // 4. complete: the file list, then the marker
  const files = entries.filter((e) => e.kind === 'file');
  const info: BackupInfo = {
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
  };
  await repo.storage.syncDeferred(); // every file durable before the marker says the backup exists
  repo.complete(info, { version: 1, entries });
  return info;
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
function chooseParent(repo: Repository, timeline: number, wanted: string | undefined): BackupInfo {
  if (wanted) {
    const p = repo.get(wanted);
    if (p.type !== 'full' && p.type !== 'incr') {
      throw new PgmError('backup.unsupported', `backup ${wanted} is a ${p.type} backup; an incremental needs a hot full or incremental parent.`, { hint: 'pass --parent with a full or incr backup id.' });
    }
    return p;
  }
  const hot = repo.list().filter((b) => (b.type === 'full' || b.type === 'incr') && b.timeline === timeline);
  const p = hot[hot.length - 1];
  if (!p) {
    throw new PgmError('backup.unsupported', `there is no full backup on timeline ${timeline} for an incremental to build on.`, { hint: 'take one first with pgmaestro backup full.' });
  }
  return p;
}
