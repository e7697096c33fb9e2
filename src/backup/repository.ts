import os from 'node:os';
import path from 'node:path';
import type { ClusterContext } from '../cluster/context.js';
import type { BackupConfig } from '../config/types.js';
import { PgmError } from '../errors.js';
import { encodeFileList, encodeMarker, parseFileList, parseMarker } from './catalog.js';
import { parseCompression, type Codec } from './codec.js';
import { CodecPool } from './codec-pool.js';
import type { Storage } from './storage.js';
import { PosixStorage } from './storage-posix.js';
import { S3Storage } from './storage-s3.js';
import type { BackupInfo, BackupType, FileList, WalEntry } from './types.js';

/**
 * The backup repository (a directory, or an S3 bucket and prefix) holding
 *
 *   pgmaestro-repo.json          identity: cluster, system identifier
 *   backups/<id>/backup.json     the completion marker (a BackupInfo with its own checksum), written last
 *   backups/<id>/files.json      every stored file with its size, SHA-256 and CRC-32C (its checksum is in backup.json)
 *   backups/<id>/backup_manifest PostgreSQL's manifest (hot physical backups; its checksum is in backup.json)
 *   backups/<id>/data/...        the data directory's files (+ .gz, .lz4, .zst when compressed)
 *   backups/<id>/tblspc/<oid>/...  tablespaces
 *   backups/<id>/.lock           while the backup is written: who writes it (host, pid)
 *   wal/<segment>[.gz|.lz4|.zst], wal/<segment>.json   archived WAL and its checksum record
 *   wal/open/<segment>.json, wal/open/<segment>/<n>    the segment in progress, flushed every wal_flush_interval
 *   wal/gaps/<lsn>.json          WAL the archive lost (the primary removed it before it was archived)
 *
 * A backup is listed if and only if its backup.json exists; a folder
 * without one is an interrupted backup (or one being written) and never counts.
 */
export const REPO_IDENTITY = 'pgmaestro-repo.json';

export interface RepoIdentity {
  readonly version: 1;
  readonly cluster: string;
  readonly system_identifier: string | null;
}

/** A backup whose records do not check out, and why. */
export interface DamagedBackup {
  readonly id: string;
  readonly problem: PgmError;
}

export class Repository {
  private pool: CodecPool | null = null;
  /** Every repository opened by this process, so a command can free their threads and sockets when it ends. */
  private static readonly opened = new Set<Repository>();

  static async closeAll(): Promise<void> {
    await Promise.allSettled([...Repository.opened].map((r) => r.close()));
  }

  constructor(
    readonly storage: Storage,
    readonly codec: Codec,
    readonly cluster: string,
    readonly processMax = 2,
  ) {}

  get compression(): Codec['kind'] {
    return this.codec.kind;
  }

  get location(): string {
    return this.storage.location;
  }

  /** Worker threads for compression and checksums, started on first use. */
  codecPool(): CodecPool {
    Repository.opened.add(this);
    return (this.pool ??= new CodecPool(this.processMax));
  }

  /** Opens the repository configured for the cluster; for writing, creates it when missing and checks it is writable. */
  static async open(ctx: ClusterContext, mode: 'read' | 'write' = 'write'): Promise<Repository> {
    const repo = new Repository(openStorage(ctx.cfg.backup), parseCompression(ctx.cfg.backup.compression), ctx.cfg.cluster, ctx.cfg.backup.processMax);
    Repository.opened.add(repo);
    await repo.storage.check(mode);
    const id = await repo.identity();
    if (id && id.cluster !== ctx.cfg.cluster) {
      throw new PgmError('repository.invalid', `the repository ${repo.location} belongs to cluster ${id.cluster}, not ${ctx.cfg.cluster}.`, {
        hint: 'give each cluster its own backup.repository.',
      });
    }
    return repo;
  }

  async close(): Promise<void> {
    Repository.opened.delete(this);
    await this.pool?.close();
    this.pool = null;
    await this.storage.close();
  }

  async identity(): Promise<RepoIdentity | null> {
    if (!(await this.storage.exists(REPO_IDENTITY))) return null;
    return JSON.parse((await this.storage.read(REPO_IDENTITY)).toString('utf8')) as RepoIdentity;
  }

  /** Records the database system the repository serves; refuses a different one. */
  async bindSystem(systemId: string): Promise<void> {
    const id = await this.identity();
    if (id?.system_identifier && id.system_identifier !== systemId) {
      throw new PgmError('repository.invalid', `the repository ${this.location} holds backups of database system ${id.system_identifier}, not ${systemId}.`, {
        hint: 'use a new backup.repository for a re-created cluster.',
      });
    }
    if (!id?.system_identifier) await this.storage.put(REPO_IDENTITY, JSON.stringify({ version: 1, cluster: this.cluster, system_identifier: systemId }, null, 2) + '\n');
  }

  /** Completed backups whose marker checks out, oldest first, and those whose marker does not. */
  async scan(): Promise<{ backups: BackupInfo[]; damaged: DamagedBackup[] }> {
    const backups: BackupInfo[] = [];
    const damaged: DamagedBackup[] = [];
    for (const name of await this.storage.list('backups')) {
      const marker = `backups/${name}/backup.json`;
      if (!(await this.storage.exists(marker))) continue;
      try {
        backups.push(parseMarker(name, await this.storage.read(marker)));
      } catch (err) {
        if (!(err instanceof PgmError)) throw err;
        damaged.push({ id: name, problem: err });
      }
    }
    return { backups, damaged };
  }

  /** Completed backups, oldest first. */
  async list(): Promise<BackupInfo[]> {
    return (await this.scan()).backups;
  }

  /** Completed backups for a restore: refuses while any marker is damaged (its backup might be the one the target needs). */
  async listForRestore(): Promise<BackupInfo[]> {
    const { backups, damaged } = await this.scan();
    // a backup of an earlier repository format is known not to be usable, not damaged: restore plans without it
    const bad = damaged.filter((d) => d.problem.data.legacy === undefined);
    if (bad.length > 0) throw bad[0].problem;
    return backups;
  }

  async get(id: string): Promise<BackupInfo> {
    const { backups, damaged } = await this.scan();
    const bad = damaged.find((d) => d.id === id);
    if (bad) throw bad.problem;
    const b = backups.find((x) => x.id === id);
    if (!b) {
      const ids = backups.map((x) => x.id);
      throw new PgmError('backup.unknown', `there is no backup '${id}' in ${this.location}.`, {
        hint: ids.length > 0 ? `pgmaestro backup list shows the ${ids.length} backups (newest: ${ids[ids.length - 1]}).` : 'the repository has no backups yet; take one with pgmaestro backup full.',
      });
    }
    return b;
  }

  /** The backup's catalog, checked against the checksum in its marker and parsed strictly. */
  async files(info: BackupInfo): Promise<FileList> {
    return parseFileList(info, await this.storage.read(`backups/${info.id}/files.json`));
  }

  /** Starts a backup: removes leftovers of interrupted ones, and returns the new id and its folder (locked by this process). */
  async begin(type: BackupType, now = new Date()): Promise<{ id: string; dir: string }> {
    await this.removeLeftovers();
    const suffix = { full: 'F', incr: 'I', cold: 'C', logical: 'L' }[type];
    const base = `${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, '')}${suffix}`;
    let id = base;
    for (let n = 2; await this.storage.exists(`backups/${id}`); n++) id = `${base}-${n}`;
    const dir = `backups/${id}`;
    await this.storage.put(`${dir}/.lock`, JSON.stringify({ host: os.hostname(), pid: process.pid, started: now.toISOString() }) + '\n');
    return { id, dir };
  }

  /** Makes a backup exist: files.json, then the marker recording its checksum — in that order. */
  async complete(info: Omit<BackupInfo, 'catalog_sha256' | 'checksum'>, files: FileList): Promise<BackupInfo> {
    const dir = `backups/${info.id}`;
    const list = encodeFileList(files);
    await this.storage.put(`${dir}/files.json`, list.bytes);
    const marker = encodeMarker({ ...info, catalog_sha256: list.sha256 });
    await this.storage.put(`${dir}/backup.json`, marker.bytes);
    await this.storage.remove(`${dir}/.lock`);
    return marker.info;
  }

  /** Removes a backup: the marker first, so a crash midway leaves a folder that is not listed. */
  async remove(id: string): Promise<void> {
    await this.storage.remove(`backups/${id}/backup.json`);
    await this.storage.remove(`backups/${id}`);
  }

  /** Folders without a marker are what interrupted work left, unless a live process on this host still writes them. */
  async removeLeftovers(): Promise<string[]> {
    const removed: string[] = [];
    for (const name of await this.storage.list('backups')) {
      if (await this.storage.exists(`backups/${name}/backup.json`)) continue;
      if (await this.inProgress(name)) continue;
      await this.storage.remove(`backups/${name}`);
      removed.push(name);
    }
    return removed;
  }

  private async inProgress(name: string): Promise<boolean> {
    try {
      const lock = JSON.parse((await this.storage.read(`backups/${name}/.lock`)).toString('utf8')) as { host: string; pid: number; started: string };
      if (lock.host !== os.hostname()) return Date.now() - Date.parse(lock.started) < 86400_000; // another host's: trust it for a day
      if (lock.pid === process.pid) return false;
      process.kill(lock.pid, 0);
      return true;
    } catch {
      return false;
    }
  }

  /** Archived WAL files with their records, by name. */
  async walEntries(): Promise<Map<string, WalEntry>> {
    const out = new Map<string, WalEntry>();
    const names = (await this.storage.list('wal')).filter((n) => n.endsWith('.json'));
    const records = await Promise.all(names.map(async (n) => JSON.parse((await this.storage.read(`wal/${n}`)).toString('utf8')) as WalEntry));
    for (const e of records) out.set(e.name, e);
    return out;
  }
}

/** The storage backend `backup.repository` names: `s3://BUCKET/PREFIX`, else a directory. */
export function openStorage(cfg: BackupConfig): Storage {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(cfg.repository);
  if (!m) return new PosixStorage(cfg.repository);
  return new S3Storage({
    bucket: m[1],
    prefix: m[2].replace(/\/+$/, ''),
    endpoint: cfg.s3.endpoint,
    region: cfg.s3.region,
    credentialsFile: cfg.s3.credentialsFile,
    pathStyle: cfg.s3.pathStyle,
    timeoutMs: cfg.s3.timeoutMs,
  });
}

/** A path for a repository location in messages (directories are shown as given). */
export function describeLocation(location: string): string {
  return location.startsWith('s3://') ? location : path.resolve(location);
}
