import fs from 'node:fs/promises';
import path from 'node:path';
import { PgmError } from '../errors.js';
import { WrittenTree } from '../protocol/written-tree.js';
import type { ChainMember } from './chain.js';
import { checkLabelChain, parseBackupLabel, rewriteBackupLabel } from './combine-label.js';
import type { BackupLabel } from './combine-label.js';
import { NEWEST, ZERO, combinePlan, planReconstruction } from './combine-plan.js';
import type { CombineStep, OlderVersion } from './combine-plan.js';
import { BLOCK } from '../backup/codec.js';
import { BLCKSZ, ExactReader, incrementalTarget, isIncrementalName, readIncremental } from './incremental-file.js';
import type { IncrementalReader } from './incremental-file.js';

export { checkLabelChain, parseBackupLabel, rewriteBackupLabel } from './combine-label.js';
export type { BackupLabel } from './combine-label.js';
export { NEWEST, ZERO, combinePlan, describePlan, olderSource, planReconstruction } from './combine-plan.js';
export type { BlockPlan, CombinePlan, CombineStep, OlderVersion } from './combine-plan.js';

export interface CombineResult {
  /** Regular files written, backup_label included. */
  readonly files: number;
  readonly copied: number;
  readonly reconstructed: number;
  /** File content bytes written. */
  readonly bytes: number;
}

/** Pages in one output window: the size of a stored block, so a window of a whole file is one checked block. */
const WINDOW = BLOCK / BLCKSZ;
/** Files written at the same time by combineInto. */
const CONCURRENCY = 8;

/**
 * Streams the file that `rel` (an INCREMENTAL file of the newest member of
 * `chain`, which runs oldest = a full backup .. newest) stands for into
 * `out`, one window of WINDOW pages (1 MiB) at a time. INCREMENTAL files are
 * read front to back, side by side; of the whole file at the bottom only
 * the windows that still supply a page are read — straight from the stored
 * file where the member allows it (uncompressed, stored on its own),
 * otherwise front to back, only as far as needed. Every block read is
 * checked against its checksum before it is used (stored-file.ts), so no
 * source has to be read to its end for the check to cover what was taken.
 * A window taken whole from the full file is written as read, without a
 * copy. Returns the bytes written.
 */
export async function reconstructFile(chain: readonly ChainMember[], rel: string, out: { write(chunk: Buffer): Promise<void> }): Promise<number> {
  const newest = chain.at(-1);
  if (newest === undefined || !isIncrementalName(rel) || !newest.files.has(rel)) {
    throw new PgmError('restore.failed', `${rel} is not an INCREMENTAL file of the newest backup of the chain.`, { hint: 'Reconstruct only the INCREMENTAL files combinePlan() lists.' });
  }
  const target = incrementalTarget(rel);
  const cursors: BlockCursor[] = [];
  let full: FullSource | null = null;
  try {
    // Read the headers: the newest incremental's, then older versions' until a whole file.
    const latest = await readIncremental(newest.open(rel), `${rel} of backup ${newest.id}`);
    cursors.push(incrementalCursor(latest));
    const older: OlderVersion[] = [];
    for (let k = chain.length - 2; k >= 0; k--) {
      const m = chain[k];
      if (m.files.has(target)) {
        older.push({ kind: 'full' });
        full = fullSource(m, target);
        break;
      }
      if (!m.files.has(rel)) throw missingIn(m.id, newest.id, target);
      const inc = await readIncremental(m.open(rel), `${rel} of backup ${m.id}`);
      older.push({ kind: 'incremental', ...inc.header });
      cursors.push(incrementalCursor(inc));
    }
    if (older.at(-1)?.kind !== 'full') {
      throw new PgmError('backup.corrupt', `The backup chain is broken: no backup has ${target} whole; the oldest, ${chain[0].id}, has it as ${rel}.`, {
        hint: `Start the chain with the full backup that backup ${chain[0].id} was taken against.`,
        data: { backup: chain[0].id, newest: newest.id, file: target },
      });
    }

    // Decide where each block comes from, then merge the sources window by window.
    const plan = planReconstruction(latest.header, older);
    const fullIndex = older.length; // olderSource(older.length - 1)
    const used = new Set(plan.sources);
    await Promise.all(cursors.map((c, s) => (s === NEWEST || used.has(s) ? undefined : c.close())));
    for (let first = 0; first < plan.lengthBlocks; first += WINDOW) {
      const n = Math.min(WINDOW, plan.lengthBlocks - first);
      const w = first / WINDOW;
      let fromFull = 0;
      for (let b = first; b < first + n; b++) if (plan.sources[b] === fullIndex) fromFull++;
      const fullWindow = fromFull > 0 ? await full!.window(w) : null;
      if (fromFull === n && fullWindow!.length >= n * BLCKSZ) {
        await out.write(fullWindow!.length === n * BLCKSZ ? fullWindow! : fullWindow!.subarray(0, n * BLCKSZ));
        continue;
      }
      const buf = Buffer.allocUnsafe(n * BLCKSZ);
      for (let b = first; b < first + n; b++) {
        const s = plan.sources[b];
        const at = (b - first) * BLCKSZ;
        if (s === fullIndex && fullWindow!.length >= at + BLCKSZ) fullWindow!.copy(buf, at, at, at + BLCKSZ);
        else if (s === ZERO || s === fullIndex) buf.fill(0, at, at + BLCKSZ); // past the end of the whole file (or a partial page): zeros
        else (await cursors[s].take(b)).copy(buf, at);
      }
      await out.write(buf);
    }
    // the newest incremental is read to its end: bytes after its last page are damage
    await cursors[NEWEST].finish();
    return plan.lengthBlocks * BLCKSZ;
  } finally {
    await Promise.allSettled([...cursors.map((c) => c.close()), full?.close()]);
  }
}

/**
 * Writes the data directory that `chain` (oldest = a full backup .. newest)
 * restores to into `targetDir`, which must be missing or empty: the newest
 * backup's regular files, INCREMENTAL ones reconstructed, backup_label made a
 * full backup's. Files 0600, directories 0700, owned by `owner` when given;
 * everything is fsynced before it returns. Directories without files and
 * symlinks (pg_tblspc) are the caller's, as is a backup_manifest. Errors:
 * 'backup.corrupt' for an inconsistent chain, 'restore.failed' for the file
 * system; on failure what was written is left for the caller to remove.
 */
export async function combineInto(chain: readonly ChainMember[], targetDir: string, owner: { uid?: number; gid?: number } = {}, opts: { concurrency?: number; syncFileSystem?: boolean } = {}): Promise<CombineResult> {
  const root = path.resolve(targetDir);
  try {
    // Check that the backups form one chain, and decide what each file is made of.
    await checkChainLabels(chain);
    const plan = combinePlan(chain);

    // Write every file.
    const tree = new WrittenTree(owner);
    await prepareTarget(tree, root);
    const newest = chain[chain.length - 1];
    await eachLimited(plan.steps, opts.concurrency ?? CONCURRENCY, (step) => writeStep(tree, root, chain, newest, step));

    // Make it durable.
    await tree.syncAll(16, { fileSystem: opts.syncFileSystem });
    const count = (kind: CombineStep['kind']) => plan.steps.filter((s) => s.kind === kind).length;
    return { files: plan.steps.length, copied: count('copy'), reconstructed: count('reconstruct'), bytes: tree.bytes };
  } catch (err) {
    if (err instanceof PgmError) throw err;
    const e = err as NodeJS.ErrnoException;
    throw new PgmError('restore.failed', `Combining backups into ${root} failed: ${e.message}.`, {
      hint: 'Check free space, permissions and ownership of the target directory.',
      cause: err,
      data: { targetDir: root, errno: e.code, path: e.path },
    });
  }
}

/** Checks the backup_label of every member against its parent's; throws 'backup.corrupt' naming both backups. */
export async function checkChainLabels(chain: readonly ChainMember[]): Promise<void> {
  const labels: { id: string; label: BackupLabel }[] = [];
  for (const m of chain) {
    if (!m.files.has('backup_label')) {
      throw new PgmError('backup.corrupt', `Backup ${m.id} has no backup_label.`, { hint: 'The backup is incomplete; take a new full backup.', data: { backup: m.id } });
    }
    labels.push({ id: m.id, label: parseBackupLabel(await readText(m, 'backup_label'), `backup ${m.id}`) });
  }
  checkLabelChain(labels);
}

async function writeStep(tree: WrittenTree, root: string, chain: readonly ChainMember[], newest: ChainMember, step: CombineStep): Promise<void> {
  const file = path.join(root, step.rel);
  if (step.kind === 'copy') return tree.writeFile(file, newest.open(step.rel));
  if (step.kind === 'label') return tree.writeFile(file, once(Buffer.from(rewriteBackupLabel(await readText(newest, step.rel)))));
  const out = await tree.openFile(file);
  try {
    await reconstructFile(chain, step.from, out);
  } finally {
    await out.close();
  }
}

/** Gives out pages of an INCREMENTAL file in ascending block order, reading it front to back. */
interface BlockCursor {
  /** Page of block `b` (greater than any taken before); the plan only asks for blocks the file has. */
  take(b: number): Promise<Buffer>;
  /** Reads to the end so that bytes after the last page are noticed. */
  finish(): Promise<void>;
  close(): Promise<void>;
}

function incrementalCursor(file: IncrementalReader): BlockCursor {
  return {
    async take(b) {
      for (;;) {
        const r = await file.pages.next();
        if (r.done || r.value.block > b) throw new Error(`internal: block ${b} planned from an INCREMENTAL file that lacks it`);
        if (r.value.block === b) return r.value.data;
      }
    },
    async finish() {
      while (!(await file.pages.next()).done);
    },
    close: () => file.close(),
  };
}

/** The whole file at the bottom of a reconstruction, by windows of WINDOW pages, asked for in ascending order. */
interface FullSource {
  /** The file's bytes of window `w` (shorter at its end, empty past it), checked. */
  window(w: number): Promise<Buffer>;
  close(): Promise<void>;
}

function fullSource(m: ChainMember, rel: string): FullSource {
  const read = m.blockReader?.(rel);
  if (read) return { window: (w) => read(w, w + 1), close: async () => undefined };
  // front to back, opened only when a window is first asked for, skipping windows nobody needs
  let reader: ExactReader | null = null;
  let at = 0;
  return {
    async window(w) {
      reader ??= new ExactReader(m.open(rel));
      const skip = w * BLOCK - at;
      const skipped = await reader.skip(skip);
      at += skipped;
      if (skipped < skip) return Buffer.alloc(0);
      const data = await reader.read(BLOCK);
      at += data.length;
      return data;
    },
    close: async () => reader?.close(),
  };
}

async function prepareTarget(tree: WrittenTree, root: string): Promise<void> {
  const entries = await fs.readdir(root).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  if (entries.length > 0) {
    throw new PgmError('restore.failed', `${root} is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', …' : ''}).`, {
      hint: 'Restore into an empty or missing directory; remove the leftovers of an earlier attempt first.',
      data: { targetDir: root },
    });
  }
  await tree.prepareRoot(root);
}

async function readText(m: ChainMember, rel: string): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of m.open(rel)) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

function missingIn(id: string, newestId: string, target: string): PgmError {
  return new PgmError('backup.corrupt', `The backup chain is broken: backup ${id} has no version of ${target}, which backup ${newestId} stores as incremental.`, {
    hint: `Backup ${newestId} was not taken against this chain, or backup ${id} is damaged; verify the repository and restore from a complete chain.`,
    data: { backup: id, newest: newestId, file: target },
  });
}

async function* once(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}

/** Runs `f` over `items`, `limit` at a time; after a failure starts no more and throws it once all have stopped. */
async function eachLimited<T>(items: readonly T[], limit: number, f: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (next < items.length && !failed) {
      try {
        await f(items[next++]);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  // Wait for every worker so nothing is still writing when the caller cleans up.
  const results = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, worker));
  const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) throw failure.reason;
}
