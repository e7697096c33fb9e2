import fs from 'node:fs';
import path from 'node:path';
import { adminTarget, findNode, requireSecrets, type ClusterContext } from '../cluster/context.js';
import type { NodeConfig } from '../config/types.js';
import { withClient } from '../postgres/sql.js';
import { PgmError } from '../errors.js';
import { postmasterRunning, readControlCheckpoint, readSystemIdentifier } from '../postgres/control.js';
import { formatLsn, parseLsn } from '../postgres/lsn.js';
import { Progress } from './progress.js';
import type { Repository } from './repository.js';
import type { BackupInfo, StoredEntry } from './types.js';

const SKIP = new Set(['postmaster.pid', 'postmaster.opts']);

/**
 * `backup cold --node N`: stop the node cleanly, copy its data directory (and
 * tablespaces) into the repository with a checksum per file, start it again —
 * also when the copy fails. A clean shutdown makes the copy consistent by
 * itself; with archived WAL it is also a base for point-in-time restore.
 */
export async function coldBackup(ctx: ClusterContext, repo: Repository, nodeName: string, opts: { quiet?: boolean } = {}): Promise<BackupInfo> {
  const node = findNode(ctx.cfg, nodeName);
  if (!fs.existsSync(path.join(node.dataDir, 'PG_VERSION'))) {
    throw new PgmError('node.down', `node ${node.name} has no data directory to back up.`, { hint: 'run pgmaestro up first.' });
  }
  const wasRunning = postmasterRunning(node.dataDir);
  const systemId = readSystemIdentifier(node.dataDir)!;
  repo.bindSystem(systemId);
  const { id, dir } = repo.begin('cold');
  repo.claim(dir);
  const startTime = new Date();
  const entries: StoredEntry[] = [];
  const progress = new Progress(`cold backup ${id} of ${node.name}`, process.stderr, opts.quiet);
  let done = 0;

  // 1. note how far a replica has replayed (its copy is consistent only from
  //    there: its shutdown restartpoint may be older), then stop it cleanly
  const replayed = wasRunning ? await replayPosition(ctx, node) : null;
  await ctx.control(node).stop('fast');
  let info: BackupInfo;
  try {
    const control = readControlCheckpoint(node.dataDir);
    if (control.state !== 1 && control.state !== 2) {
      throw new PgmError('backup.failed', `node ${node.name} did not shut down cleanly (pg_control state ${control.state}).`, { hint: 'start it (pgmaestro up) so it recovers, then retry.' });
    }
    // 2. copy every file with its checksum
    const copyTree = async (root: string, prefix: string): Promise<void> => {
      for (const name of fs.readdirSync(root).sort()) {
        if (prefix === 'data' && SKIP.has(name)) continue;
        const abs = path.join(root, name);
        const logical = `${prefix}/${name}`;
        const st = fs.lstatSync(abs);
        if (st.isSymbolicLink()) {
          const target = fs.readlinkSync(abs);
          entries.push({ kind: 'link', path: logical, target });
          if (/^data\/pg_tblspc\/\d+$/.test(logical)) {
            entries.push({ kind: 'dir', path: `tblspc/${name}` });
            await copyTree(fs.realpathSync(abs), `tblspc/${name}`);
          }
        } else if (st.isDirectory()) {
          entries.push({ kind: 'dir', path: logical });
          await copyTree(abs, logical);
        } else if (st.isFile()) {
          const w = await repo.storage.writer(`${dir}/${logical}`, repo.compression, { deferSync: true });
          for await (const chunk of fs.createReadStream(abs, { highWaterMark: 1 << 20 })) {
            await w.write(chunk as Buffer);
            done += (chunk as Buffer).length;
            progress.update(done, null);
          }
          const r = await w.end();
          entries.push({ kind: 'file', path: logical, size: r.size, stored: path.posix.relative(dir, r.stored), stored_size: r.storedSize, sha256: r.sha256 });
        }
      }
    };
    entries.push({ kind: 'dir', path: 'data' });
    await copyTree(node.dataDir, 'data');
    progress.finish(done);
    const files = entries.filter((e): e is Extract<StoredEntry, { kind: 'file' }> => e.kind === 'file');
    info = {
      id,
      type: 'cold',
      parent: null,
      node: node.name,
      start_time: startTime.toISOString(),
      stop_time: new Date().toISOString(),
      start_lsn: formatLsn(control.redo),
      stop_lsn: formatLsn(replayed !== null && replayed > control.checkpoint ? replayed : control.checkpoint),
      timeline: control.timeline,
      size_bytes: files.reduce((n, e) => n + e.size, 0),
      stored_bytes: files.reduce((n, e) => n + e.stored_size, 0),
      compression: repo.compression,
      pg_version: ctx.bins.version,
      system_identifier: systemId,
    };
    await repo.storage.syncDeferred();
    repo.complete(info, { version: 1, entries });
  } catch (err) {
    repo.storage.remove(dir);
    throw err;
  } finally {
    // 3. start it again, whatever happened
    if (wasRunning) await ctx.control(node).start();
  }
  return info;
}

async function replayPosition(ctx: ClusterContext, node: NodeConfig): Promise<bigint | null> {
  const secrets = requireSecrets(ctx);
  return withClient(adminTarget(ctx, node, secrets), async (c) => {
    const r = await c.query<{ l: string | null }>('SELECT pg_last_wal_replay_lsn()::text AS l');
    return r.rows[0].l ? parseLsn(r.rows[0].l) : null;
  });
}
