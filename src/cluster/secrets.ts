import fs from 'node:fs';
import type { ClusterConfig } from '../config/types.js';
import type { RunAs } from '../postgres/exec.js';
import { generateSecret } from '../postgres/scram.js';
import { ensureOwnedDir } from '../postgres/osuser.js';
import { writeFileAtomic } from '../util/fsx.js';
import { clusterPaths } from './paths.js';

export interface Secrets {
  readonly superuserPassword: string;
  readonly replicationPassword: string;
  readonly superuserPassfile: string;
  readonly replicationPassfile: string;
}

/**
 * Creates the cluster's secrets once (generated, mode 0600, owned by the
 * PostgreSQL OS user, in a 0700 directory) and returns them. Passwords only
 * ever live in these files: never in postgresql.conf, a command line or a log.
 */
export function ensureSecrets(cfg: ClusterConfig, user: RunAs): Secrets {
  const p = clusterPaths(cfg);
  ensureOwnedDir(p.secretsDir, user, 0o700);
  const superuserPassword = readOrCreate(p.superuserPassword, user);
  const replicationPassword = readOrCreate(p.replicationPassword, user);
  writeOwned(p.superuserPassfile, `*:*:*:${cfg.superuser}:${superuserPassword}\n`, user);
  writeOwned(p.replicationPassfile, `*:*:*:${cfg.replicationUser}:${replicationPassword}\n`, user);
  return { superuserPassword, replicationPassword, superuserPassfile: p.superuserPassfile, replicationPassfile: p.replicationPassfile };
}

/** Reads existing secrets without creating anything (status, down). Null when the cluster was never provisioned. */
export function readSecrets(cfg: ClusterConfig): Secrets | null {
  const p = clusterPaths(cfg);
  try {
    return {
      superuserPassword: fs.readFileSync(p.superuserPassword, 'utf8').trim(),
      replicationPassword: fs.readFileSync(p.replicationPassword, 'utf8').trim(),
      superuserPassfile: p.superuserPassfile,
      replicationPassfile: p.replicationPassfile,
    };
  } catch {
    return null;
  }
}

/** A secret kept in `file` (0600, owned by the PostgreSQL OS user), generated the first time. */
export function readOrCreate(file: string, user: RunAs): string {
  try {
    const existing = fs.readFileSync(file, 'utf8').trim();
    if (existing !== '') return existing;
  } catch {
    // first run
  }
  const secret = generateSecret();
  writeOwned(file, secret + '\n', user);
  return secret;
}

/** Writes a secret file (0600, owned by the PostgreSQL OS user) unless it already holds `content`. */
export function writeOwned(file: string, content: string, user: RunAs): void {
  try {
    if (fs.readFileSync(file, 'utf8') === content && (fs.statSync(file).mode & 0o777) === 0o600) return;
  } catch {
    // absent
  }
  writeFileAtomic(file, content, 0o600, user);
}
