import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { RunAs } from '../postgres/exec.js';
import type { Repository } from '../backup/repository.js';
import type { BackupInfo } from '../backup/types.js';
import { WrittenTree } from '../protocol/written-tree.js';
import { checkManifest } from '../backup/manifest-check.js';
import { readManifest } from '../backup/physical.js';
import { combineInto } from './combine.js';
import { eachLimited } from '../backup/storage.js';
import { repoMember, toDataRel, type RepoMember } from './repo-member.js';
import { PackCache } from '../backup/stored-file.js';

/** Where a restored instance keeps tablespace `oid`: beside its data directory. */
export function restoredTablespaceDir(targetDir: string, oid: string): string {
  return path.join(`${targetDir}_tablespaces`, oid);
}

/**
 * Writes the data directory that `chain` (oldest full .. newest) describes
 * into `targetDir`: the newest backup's directories and tablespace links,
 * then every file — copied from a single backup, or reconstructed from the
 * chain by pgmaestro's own incremental combine. Every byte read is checked
 * against its stored checksum; a damaged file fails the restore naming it.
 */
export async function materialize(repo: Repository, chain: readonly BackupInfo[], targetDir: string, owner: RunAs): Promise<{ bytes: number }> {
  const packs = new PackCache();
  const members = await Promise.all(chain.map((b) => repoMember(repo, b, packs)));
  // the catalog of every hot backup against PostgreSQL's own manifest, before anything is written
  for (const [i, b] of chain.entries()) if (b.type === 'full' || b.type === 'incr') checkManifest(b.id, await readManifest(repo, b), { version: 3, entries: members[i].entries });
  const newest = members[members.length - 1];
  const own = async (p: string, link = false) => {
    if (owner.uid === undefined || owner.gid === undefined) return;
    await (link ? fsp.lchown(p, owner.uid, owner.gid) : fsp.chown(p, owner.uid, owner.gid));
  };
  const abs = (rel: string) => path.join(targetDir, rel);

  // 1. the files, tablespaces first written under pg_tblspc/<oid>/
  const concurrency = Math.max(4, 2 * repo.processMax);
  if (members.length > 1) {
    await combineInto(members, targetDir, { uid: owner.uid, gid: owner.gid }, { concurrency, syncFileSystem: true });
  } else {
    const tree = new WrittenTree({ uid: owner.uid, gid: owner.gid });
    await tree.prepareRoot(targetDir);
    await eachLimited(byStorageOrder(newest), concurrency, (rel) => tree.writeFile(abs(rel), newest.open(rel)));
    await tree.syncAll(16, { fileSystem: true });
  }

  // 2. the directories without files, then each tablespace moved beside the
  //    data directory with its pg_tblspc link pointing there
  for (const e of newest.entries) {
    if (e.kind !== 'dir') continue;
    const dir = abs(toDataRel(e.path));
    if (!fs.existsSync(dir)) {
      await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
      await own(dir);
    }
  }
  for (const e of newest.entries) {
    if (e.kind !== 'link') continue;
    const link = abs(toDataRel(e.path));
    const ts = restoredTablespaceDir(targetDir, path.basename(e.path));
    await fsp.mkdir(path.dirname(ts), { recursive: true, mode: 0o700 });
    await own(path.dirname(ts));
    if (fs.existsSync(link)) await fsp.rename(link, ts);
    else await fsp.mkdir(ts, { mode: 0o700 });
    await own(ts);
    await fsp.symlink(ts, link);
    await own(link, true);
  }
  let bytes = 0;
  for (const rel of newest.files) {
    const st = fs.statSync(abs(rel), { throwIfNoEntry: false });
    bytes += st?.size ?? 0;
  }
  return { bytes };
}

/** The files of a backup in the order they are stored: packed ones by pack and offset (one sequential read of each pack), then the rest. */
export function byStorageOrder(m: RepoMember): string[] {
  const key = (rel: string) => {
    const e = m.entry(rel)!;
    return e.offset === undefined ? [1, e.stored, 0] as const : [0, e.stored, e.offset] as const;
  };
  return [...m.files].sort((a, b) => {
    const [x, y] = [key(a), key(b)];
    return x[0] - y[0] || (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : x[2] - y[2]);
  });
}
