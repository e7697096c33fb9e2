import fs from 'node:fs';
import path from 'node:path';
import type { ClusterContext } from '../cluster/context.js';
import { PgmError } from '../errors.js';
import { PosixStorage, fsReason, type Storage } from './storage.js';
import type { BackupInfo, BackupType, Compression, FileList, WalEntry } from './types.js';

/**
 * The backup repository: a directory holding
 *
 *   pgmaestro-repo.json          identity: cluster, system identifier, compression
 *   backups/<id>/backup.json     the completion marker (a BackupInfo), written last
 *   backups/<id>/files.json      every stored file with its size and SHA-256
 *   backups/<id>/backup_manifest PostgreSQL's manifest (hot physical backups)
 *   backups/<id>/data/...        the data directory's files (+ .gz when compressed)
 *   backups/<id>/tblspc/<oid>/...  tablespaces
 *   backups/<id>.partial/        a backup being written (never counts)
 *   wal/<segment>[.gz]           archived WAL segments and timeline history files
 *   wal/<segment>.json           their checksum record (a WalEntry), written after the segment
 *
 * The catalog is the set of completion markers: a backup is listed if and only
 * if its backup.json exists.
 */
export const REPO_IDENTITY = 'pgmaestro-repo.json';

export interface RepoIdentity {
  readonly version: 1;
  readonly cluster: string;
  readonly system_identifier: string | null;
}

export class Repository {
  constructor(
    readonly storage: Storage,
    readonly compression: Compression,
    readonly cluster: string,
  ) {}

  get root(): string {
    return this.storage.root;
  }

  /** Opens the repository configured for the cluster; for writing, creates it when missing and checks it is writable. */
  static open(ctx: ClusterContext, mode: 'read' | 'write' = 'write'): Repository {
    const { backup } = ctx.cfg;
    const storage = new PosixStorage(backup.repository, { uid: ctx.user.uid, gid: ctx.user.gid });
    const repo = new Repository(storage, backup.compression, ctx.cfg.cluster);
    try {
      if (mode === 'read') return repo.checkIdentity(ctx);
      if (fs.existsSync(backup.repository)) fs.accessSync(backup.repository, fs.constants.W_OK);
      storage.mkdir('backups');
      storage.mkdir('wal');
    } catch (err) {
      throw new PgmError('repository.write_failed', `cannot write the backup repository ${backup.repository}: ${fsReason(err)}.`, {
        hint: 'point backup.repository at a writable directory.',
        cause: err,
      });
    }
    return repo.checkIdentity(ctx);
  }

  private checkIdentity(ctx: ClusterContext): Repository {
    const id = this.identity();
    if (id && id.cluster !== ctx.cfg.cluster) {
      throw new PgmError('repository.invalid', `the repository ${this.root} belongs to cluster ${id.cluster}, not ${ctx.cfg.cluster}.`, {
        hint: 'give each cluster its own backup.repository.',
      });
    }
    return this;
  }

  identity(): RepoIdentity | null {
    if (!this.storage.exists(REPO_IDENTITY)) return null;
    return JSON.parse(this.storage.read(REPO_IDENTITY).toString('utf8')) as RepoIdentity;
  }

  /** Records the database system the repository serves; refuses a different one. */
  bindSystem(systemId: string): void {
    const id = this.identity();
    if (id?.system_identifier && id.system_identifier !== systemId) {
      throw new PgmError('repository.invalid', `the repository ${this.root} holds backups of database system ${id.system_identifier}, not ${systemId}.`, {
        hint: 'use a new backup.repository for a re-created cluster.',
      });
    }
    if (!id?.system_identifier) this.storage.put(REPO_IDENTITY, JSON.stringify({ version: 1, cluster: this.cluster, system_identifier: systemId }, null, 2) + '\n');
  }

  /** Completed backups, oldest first. */
  list(): BackupInfo[] {
    const out: BackupInfo[] = [];
    for (const name of this.storage.list('backups')) {
      if (name.endsWith('.partial')) continue;
      const marker = `backups/${name}/backup.json`;
      if (!this.storage.exists(marker)) continue;
      out.push(JSON.parse(this.storage.read(marker).toString('utf8')) as BackupInfo);
    }
    return out.sort((a, b) => a.start_time.localeCompare(b.start_time) || a.id.localeCompare(b.id));
  }

  get(id: string): BackupInfo {
    const b = this.list().find((x) => x.id === id);
    if (!b) {
      const ids = this.list().map((x) => x.id);
      throw new PgmError('backup.unknown', `there is no backup '${id}' in ${this.root}.`, {
        hint: ids.length > 0 ? `pgmaestro backup list shows the ${ids.length} backups (newest: ${ids[ids.length - 1]}).` : 'the repository has no backups yet; take one with pgmaestro backup full.',
      });
    }
    return b;
  }

  files(id: string): FileList {
    return JSON.parse(this.storage.read(`backups/${id}/files.json`).toString('utf8')) as FileList;
  }

  /** Starts a backup: removes leftovers of interrupted ones and returns the new id and its partial folder. */
  begin(type: BackupType, now = new Date()): { id: string; dir: string } {
    this.removeLeftovers();
    const suffix = { full: 'F', incr: 'I', cold: 'C', logical: 'L' }[type];
    let id = `${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, '')}${suffix}`;
    // a backup begun in the same second (or its partial folder) keeps its id; this one gets the next free one
    const taken = (x: string) => this.storage.exists(`backups/${x}`) || this.storage.exists(`backups/${x}.partial`);
    for (let n = 2; taken(id); n++) id = `${id.replace(/-\d+$/, '')}-${n}`;
    const dir = `backups/${id}.partial`;
    this.storage.mkdir(dir);
    return { id, dir };
  }

  /** Makes a backup exist: files.json, then the folder renamed into place, then the marker — in that order. */
  complete(info: BackupInfo, files: FileList): void {
    const partial = `backups/${info.id}.partial`;
    this.storage.put(`${partial}/files.json`, JSON.stringify(files) + '\n');
    this.storage.rename(partial, `backups/${info.id}`);
    this.storage.put(`backups/${info.id}/backup.json`, JSON.stringify(info, null, 2) + '\n');
  }

  /** Removes a backup: the marker first, so a crash midway leaves a folder that is not listed. */
  remove(id: string): void {
    this.storage.remove(`backups/${id}/backup.json`);
    this.storage.remove(`backups/${id}`);
  }

  /** Partial folders and unmarked folders are what interrupted work left; none is ever a backup. */
  removeLeftovers(): string[] {
    const removed: string[] = [];
    for (const name of this.storage.list('backups')) {
      const complete = !name.endsWith('.partial') && this.storage.exists(`backups/${name}/backup.json`);
      if (!complete && !this.inProgress(name)) {
        this.storage.remove(`backups/${name}`);
        removed.push(name);
      }
    }
    return removed;
  }

  /** A partial folder whose writer is alive (its pid file names a live process). */
  private inProgress(name: string): boolean {
    const pidFile = path.join(this.root, 'backups', name, '.pid');
    try {
      const pid = Number(fs.readFileSync(pidFile, 'utf8'));
      if (pid === process.pid) return false;
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }

  /** Marks a partial folder as being written by this process. */
  claim(dir: string): void {
    this.storage.put(`${dir}/.pid`, String(process.pid));
  }

  /** Archived WAL files with their records, by name. */
  walEntries(): Map<string, WalEntry> {
    const out = new Map<string, WalEntry>();
    for (const name of this.storage.list('wal')) {
      if (!name.endsWith('.json')) continue;
      const e = JSON.parse(this.storage.read(`wal/${name}`).toString('utf8')) as WalEntry;
      out.set(e.name, e);
    }
    return out;
  }

  /**
   * The restore_command PostgreSQL runs (as its OS user, through sh) to fetch
   * archived WAL from this repository. No pgmaestro process is needed.
   */
  restoreCommand(): string {
    const dir = path.join(this.root, 'wal').replace(/'/g, "'\\''");
    return `f='${dir}'/%f; if [ -f "$f.gz" ]; then gzip -dc "$f.gz" > "%p"; elif [ -f "$f" ]; then cp "$f" "%p"; else exit 1; fi`;
  }
}
