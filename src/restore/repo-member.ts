import type { Repository } from '../backup/repository.js';
import { dataRel } from '../backup/manifest-check.js';
import { BLOCK, kindOfStored } from '../backup/codec.js';
import { PackCache, readCheckedBlocks, verifiedReader as storedReader } from '../backup/stored-file.js';
import type { BackupInfo, StoredEntry } from '../backup/types.js';
import { PgmError } from '../errors.js';
import type { ChainMember } from './chain.js';

type FileEntry = Extract<StoredEntry, { kind: 'file' }>;

/** A stored backup of a chain, with its catalog at hand (a rebuild reads blocks of its files directly). */
export interface RepoMember extends ChainMember {
  readonly entries: readonly StoredEntry[];
  /** The catalog entry of data-directory file `rel`. */
  entry(rel: string): FileEntry | undefined;
}

/**
 * A stored backup as a ChainMember. Paths are those of the data directory:
 * tablespace files appear under `pg_tblspc/<oid>/`. Its catalog is read
 * strictly (checked against its marker); every read verifies the stored
 * bytes against their recorded SHA-256 and fails naming the file.
 */
export async function repoMember(repo: Repository, b: BackupInfo, packs = new PackCache()): Promise<RepoMember> {
  const entries = (await repo.files(b)).entries;
  const byRel = new Map<string, FileEntry>();
  for (const e of entries) if (e.kind === 'file') byRel.set(dataRel(e.path), e);
  return {
    id: b.id,
    entries,
    entry: (rel) => byRel.get(rel),
    files: new Set(byRel.keys()),
    blockReader(rel: string) {
      const e = byRel.get(rel);
      // packed or compressed: its blocks are not at fixed offsets; it is read from the start (open)
      if (!e || e.offset !== undefined || kindOfStored(e.stored) !== 'none') return null;
      return (from: number, to: number) => readCheckedBlocks(repo.storage, `backups/${b.id}/${e.stored}`, e, from, to, `backup ${b.id}`);
    },
    open(rel: string): AsyncIterable<Buffer> {
      const e = byRel.get(rel);
      if (!e) throw new PgmError('backup.corrupt', `backup ${b.id} has no file ${rel}.`, { hint: 'run pgmaestro backup verify.' });
      return storedReader(repo.storage, `backups/${b.id}/${e.stored}`, e, `backup ${b.id}`, packs, e.stored_size > BLOCK ? repo.codecPool() : undefined);
    },
  };
}

export const toDataRel = dataRel;
