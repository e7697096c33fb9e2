/**
 * A backup of a restore chain, as the incremental reconstruction sees it:
 * a set of files relative to the data directory root, each readable as a
 * stream of its original (decompressed) bytes. The repository provides one
 * implementation (stored, maybe compressed files); tests may provide one over
 * plain directories.
 */
export interface ChainMember {
  readonly id: string;
  /** Regular files of this backup, relative to the data directory ('base/5/16384', 'base/5/INCREMENTAL.16384', 'backup_label'). */
  readonly files: ReadonlySet<string>;
  /** The original bytes of `rel`, in order. */
  open(rel: string): AsyncIterable<Buffer>;
  /**
   * Where `rel` can be read at any offset (stored uncompressed on its own),
   * a function giving its original bytes from block `from` to block `to`
   * (1 MiB blocks; shorter at its end), checked; else null (or absent):
   * `open` only.
   */
  blockReader?(rel: string): ((from: number, to: number) => Promise<Buffer>) | null;
}
