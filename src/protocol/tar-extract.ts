import path from 'node:path';
import tarStream from 'tar-stream';
import { PgmError } from '../errors.js';
import type { ByteSink } from './basebackup.js';
import type { WrittenTree } from './written-tree.js';

/**
 * A ByteSink that unpacks a ustar stream under `root` as bytes arrive. Only
 * directories, regular files and symlinks are accepted; a name that is
 * absolute, contains '..', or passes through a symlink from the same archive
 * fails the extraction with 'clone.failed'. `linkTarget` decides what each
 * symlink points to (given its archive-relative name and original target).
 *
 * Backpressure: `write` resolves only once the extractor can take more, which
 * is when the files before it have been handed to the file system.
 */
export function tarSink(root: string, tree: WrittenTree, linkTarget: (name: string, original: string) => string): ByteSink {
  const extract = tarStream.extract();
  let failure: Error | null = null;
  const done = unpack(extract, root, tree, linkTarget).catch((err: Error) => {
    failure = err;
    extract.destroy(err);
    throw err;
  });
  done.catch(() => {}); // surfaced by write() or end()

  return {
    async write(chunk) {
      if (failure) throw failure;
      if (!extract.write(chunk)) await Promise.race([new Promise<void>((resolve) => extract.once('drain', () => resolve())), done]);
      if (failure) throw failure;
    },
    async end() {
      if (failure) throw failure;
      extract.end(undefined);
      await done;
    },
    abort(err) {
      failure ??= err;
      extract.destroy(err);
    },
  };
}

async function unpack(extract: tarStream.Extract, root: string, tree: WrittenTree, linkTarget: (name: string, original: string) => string): Promise<void> {
  for await (const entry of extract) {
    const { name, type, linkname } = entry.header;
    const rel = safeRelativePath(name);
    if (rel === '') {
      entry.resume(); // './' names the root itself, which exists
      continue;
    }
    const abs = path.join(root, rel);
    for (let dir = path.dirname(abs); dir.length > root.length; dir = path.dirname(dir)) {
      if (tree.isLink(dir)) throw badEntry(name, 'it lies below a symlink of the same archive');
    }
    switch (type) {
      case 'directory':
        entry.resume();
        await tree.mkdir(abs);
        break;
      case 'file':
      case 'contiguous-file':
        await tree.writeFile(abs, entry as AsyncIterable<Buffer>);
        break;
      case 'symlink':
        entry.resume();
        await tree.symlink(linkTarget(rel, linkname ?? ''), abs);
        break;
      default:
        throw badEntry(name, `its type "${type}" is not a directory, regular file or symlink`);
    }
  }
}

/**
 * The archive name as a relative path with '/' separators and no trailing
 * slash ('' for the root itself). Throws 'clone.failed' for absolute names and
 * any '..' component, so nothing is written outside the target directory.
 */
export function safeRelativePath(name: string): string {
  if (name.startsWith('/') || name.includes('\0')) throw badEntry(name, 'it is absolute');
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw badEntry(name, 'it contains ".."');
  return parts.join('/');
}

function badEntry(name: string, why: string): PgmError {
  return new PgmError('clone.failed', `The backup archive has an entry ${JSON.stringify(name)} that pgmaestro refuses to extract because ${why}.`, {
    hint: 'The source server sent an unexpected archive; check its version and that it is a genuine PostgreSQL server.',
    data: { entry: name },
  });
}
