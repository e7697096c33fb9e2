import crypto from 'node:crypto';
import { Transform } from 'node:stream';
import zlib from 'node:zlib';
import fs from 'node:fs';
import path from 'node:path';
import { PgmError } from '../errors.js';
import type { Repository } from '../backup/repository.js';
import type { BackupInfo, StoredEntry } from '../backup/types.js';
import type { ChainMember } from './chain.js';

type FileEntry = Extract<StoredEntry, { kind: 'file' }>;

/**
 * A stored backup as a ChainMember. Paths are those of the data directory:
 * tablespace files appear under `pg_tblspc/<oid>/`. Every read verifies the
 * stored bytes against their recorded SHA-256 and fails naming the file.
 */
export function repoMember(repo: Repository, b: BackupInfo): ChainMember & { entries: readonly StoredEntry[] } {
  const entries = repo.files(b.id).entries;
  const byRel = new Map<string, FileEntry>();
  for (const e of entries) if (e.kind === 'file') byRel.set(toDataRel(e.path), e);
  return {
    id: b.id,
    entries,
    files: new Set(byRel.keys()),
    open(rel: string): AsyncIterable<Buffer> {
      const e = byRel.get(rel);
      if (!e) throw new PgmError('backup.corrupt', `backup ${b.id} has no file ${rel}.`, { hint: 'run pgmaestro backup verify.' });
      return verifiedReader(repo, b.id, e);
    },
  };
}

/** `data/x` -> `x`; `tblspc/<oid>/x` -> `pg_tblspc/<oid>/x`. */
export function toDataRel(p: string): string {
  if (p === 'data') return '';
  if (p.startsWith('data/')) return p.slice(5);
  const m = /^tblspc\/(\d+)(?:\/(.*))?$/.exec(p);
  if (m) return m[2] ? `pg_tblspc/${m[1]}/${m[2]}` : `pg_tblspc/${m[1]}`;
  return p;
}

/** The original bytes of a stored file, checked against its SHA-256 as they are read. */
export function verifiedReader(repo: Repository, id: string, e: FileEntry): AsyncIterable<Buffer> {
  const abs = path.join(repo.root, 'backups', id, e.stored);
  const hash = crypto.createHash('sha256');
  const corrupt = (why: string) =>
    new PgmError('backup.corrupt', `backup ${id} is damaged: ${e.stored} ${why}.`, {
      hint: `run pgmaestro backup verify ${id}; restore from another backup or take a new one.`,
      data: { backup: id, file: e.stored },
    });
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      cb(null, chunk);
    },
    flush(cb) {
      const got = hash.digest('hex');
      cb(got === e.sha256 ? null : corrupt('does not match its checksum'));
    },
  });
  const raw = fs.createReadStream(abs, { highWaterMark: 1 << 20 });
  raw.on('error', (err) => tap.destroy(corrupt(`cannot be read (${(err as NodeJS.ErrnoException).code ?? err.message})`)));
  const verified = raw.pipe(tap);
  if (!e.stored.endsWith('.gz')) return verified;
  const gunzip = zlib.createGunzip();
  verified.on('error', (err) => gunzip.destroy(err));
  gunzip.on('error', () => undefined);
  return verified.pipe(gunzip).on('error', () => undefined) as unknown as AsyncIterable<Buffer>;
}
