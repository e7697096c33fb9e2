import fs from 'node:fs';
import path from 'node:path';
import type { NodeConfig } from '../config/types.js';
import { PgmError } from '../errors.js';
import { readSystemIdentifier } from '../postgres/control.js';
import { ensureOwnedDir } from '../postgres/osuser.js';
import { cloneInto } from '../protocol/clone.js';
import { ReplicationConnection } from '../protocol/connection.js';
import { writeNodeFiles } from './configure.js';
import type { ClusterContext } from './context.js';
import { moveIntoPlace, writeMarker } from './datadir.js';
import { partialDir } from './paths.js';
import type { Log } from './provision.js';
import type { Secrets } from './secrets.js';

/** Where a clone puts the tablespaces of `node`: beside its data directory, so nodes sharing a machine never share a tablespace. */
export function tablespaceDir(node: NodeConfig, oid: number): string {
  return path.join(`${node.dataDir}_tablespaces`, String(oid));
}

/**
 * Builds `node` as a replica of `primary` with pgmaestro's own BASE_BACKUP
 * client: stream the archives into a partial directory (the backup's WAL
 * included), write the standby files and the marker, then rename into place.
 * Interrupted, it leaves only the partial directory, which the next run removes.
 * The caller has created the node's slot on the primary before calling.
 */
export async function cloneReplica(ctx: ClusterContext, node: NodeConfig, primary: NodeConfig, secrets: Secrets, log: Log): Promise<{ bytes: number; ms: number }> {
  const started = Date.now();
  const partial = partialDir(node.dataDir);
  fs.rmSync(partial, { recursive: true, force: true });
  fs.rmSync(`${node.dataDir}_tablespaces`, { recursive: true, force: true }); // only a previous partial clone's: the data dir is empty
  fs.mkdirSync(path.dirname(node.dataDir), { recursive: true });
  ensureOwnedDir(partial, ctx.user, 0o700);

  const conn = await ReplicationConnection.connect({
    host: primary.replication,
    port: primary.port,
    user: ctx.cfg.replicationUser,
    password: secrets.replicationPassword,
    replication: 'true',
    applicationName: `pgmaestro_clone_${node.name}`,
  });
  let result: Awaited<ReturnType<typeof cloneInto>>;
  try {
    let lastReport = Date.now();
    result = await cloneInto(conn, {
      targetDir: partial,
      tablespaceTarget: (oid) => {
        const dir = tablespaceDir(node, oid);
        fs.mkdirSync(path.dirname(dir), { recursive: true });
        return dir;
      },
      uid: ctx.user.uid,
      gid: ctx.user.gid,
      label: `pgmaestro clone of ${node.name}`,
      checkpoint: 'fast',
      wal: true,
      onProgress: (done, total) => {
        if (Date.now() - lastReport < 5000) return;
        lastReport = Date.now();
        log(`${node.name}: cloning, ${Math.round(done / 1048576)} MB${total ? ` of ${Math.round(total / 1048576)} MB` : ''}`);
      },
    });
  } catch (err) {
    throw err instanceof PgmError ? err : new PgmError('clone.failed', `cloning ${node.name} from ${primary.name} failed: ${(err as Error).message}.`, { hint: 'fix the cause and run `pgmaestro up` again; the partial copy is discarded.', cause: err });
  } finally {
    await conn.close().catch(() => undefined);
  }

  // The primary's own logs and identity came along in the archive: they are not this node's.
  fs.rmSync(path.join(partial, 'log'), { recursive: true, force: true });
  ensureOwnedDir(path.join(partial, 'log'), ctx.user, 0o700);
  writeNodeFiles(ctx, node, { kind: 'replica', upstream: primary }, partial);
  writeMarker(partial, ctx.cfg, node, readSystemIdentifier(partial) ?? '', ctx.user);
  moveIntoPlace(partial, node.dataDir);
  return { bytes: result.bytes, ms: Date.now() - started };
}
