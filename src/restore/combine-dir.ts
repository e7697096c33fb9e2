import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { ChainMember } from './chain.js';

/** A backup unpacked into a plain directory (as cloneInto or pg_basebackup -Fp leave it). */
export interface DirectoryMember extends ChainMember {
  readonly dir: string;
  /** Every directory below `dir`, relative, parents before children ('base', 'base/5', 'pg_wal/summaries'). */
  readonly dirs: readonly string[];
}

/**
 * Lists `dir` once: regular files go in `files`, directories in `dirs`;
 * symlinks are neither followed nor listed. `open` streams a file in 256 KiB
 * chunks.
 */
export async function directoryMember(id: string, dir: string): Promise<DirectoryMember> {
  const root = path.resolve(dir);
  const files = new Set<string>();
  const dirs: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const e of await fsp.readdir(path.join(root, rel), { withFileTypes: true })) {
      const child = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isFile()) files.add(child);
      else if (e.isDirectory()) {
        dirs.push(child);
        await walk(child);
      }
    }
  };
  await walk('');
  return {
    id,
    dir: root,
    files,
    dirs,
    open: (rel) => fs.createReadStream(path.join(root, rel), { highWaterMark: 256 * 1024 }),
  };
}
