import { PgmError } from '../errors.js';

/**
 * Incremental tar (ustar) parser: feed it the archive in chunks split at any
 * byte, get back what each chunk completes. Pure: no I/O, no policy about
 * which entries are acceptable (that is the extractor's job).
 *
 * PostgreSQL writes plain ustar: 512-byte headers, octal numbers (base-256
 * for values too large for octal), data padded to 512 bytes. For other
 * writers this also reads the ustar name prefix, GNU long names ('L', 'K')
 * and pax extended headers ('x'; 'g' is read and ignored). An all-zero
 * block ends the archive; anything after it is ignored.
 *
 * Entry data is returned as views into the input chunks (no copy).
 */
export type TarEvent =
  /** An entry starts; its `size` bytes follow as 'data' events, then 'entryEnd'. */
  | { kind: 'entry'; header: TarHeader }
  | { kind: 'data'; data: Buffer }
  | { kind: 'entryEnd' };

export interface TarHeader {
  name: string;
  type: TarEntryType;
  size: number;
  /** Symlink or hard link target ('' for other types). */
  linkname: string;
  mode: number;
}

export type TarEntryType = 'file' | 'link' | 'symlink' | 'character-device' | 'block-device' | 'directory' | 'fifo' | 'contiguous-file' | `unknown-${string}`;

const BLOCK = 512;
/** GNU long names and pax records are small; a larger one is a broken or hostile archive. */
const MAX_META = 1 << 20;

const TYPES: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '1': 'link',
  '2': 'symlink',
  '3': 'character-device',
  '4': 'block-device',
  '5': 'directory',
  '6': 'fifo',
  '7': 'contiguous-file',
};

export class UstarParser {
  /** A header split across chunks is gathered here. */
  private readonly block = Buffer.alloc(BLOCK);
  private blockFilled = 0;
  /** Data bytes of the current entry still to come, then padding to skip. */
  private dataLeft = 0;
  private padLeft = 0;
  /** Set while the current "entry" is a GNU/pax meta entry whose data is collected, not returned. */
  private meta: { type: string; parts: Buffer[]; size: number } | null = null;
  /** Overrides for the next real entry, from meta entries. */
  private next: { name?: string; linkname?: string; size?: number } = {};
  private inEntry = false;
  private ended = false;

  parse(chunk: Buffer): TarEvent[] {
    const out: TarEvent[] = [];
    let offset = 0;
    while (offset < chunk.length && !this.ended) {
      if (this.dataLeft > 0) {
        const n = Math.min(this.dataLeft, chunk.length - offset);
        const data = chunk.subarray(offset, offset + n);
        if (this.meta) this.meta.parts.push(data);
        else out.push({ kind: 'data', data });
        this.dataLeft -= n;
        offset += n;
        if (this.dataLeft === 0) this.finishEntry(out);
        continue;
      }
      if (this.padLeft > 0) {
        const n = Math.min(this.padLeft, chunk.length - offset);
        this.padLeft -= n;
        offset += n;
        continue;
      }
      // A header: straight from the chunk when it is whole there.
      let header: Buffer;
      if (this.blockFilled === 0 && chunk.length - offset >= BLOCK) {
        header = chunk.subarray(offset, offset + BLOCK);
        offset += BLOCK;
      } else {
        const n = Math.min(BLOCK - this.blockFilled, chunk.length - offset);
        chunk.copy(this.block, this.blockFilled, offset, offset + n);
        this.blockFilled += n;
        offset += n;
        if (this.blockFilled < BLOCK) break;
        this.blockFilled = 0;
        header = this.block;
      }
      this.header(header, out);
    }
    return out;
  }

  /** Throws unless the input so far ends between entries (or at the end-of-archive block). */
  end(): void {
    if (this.ended) return;
    if (this.inEntry || this.dataLeft > 0 || this.padLeft > 0 || this.blockFilled > 0 || this.meta !== null || Object.keys(this.next).length > 0) {
      throw badArchive('it ends in the middle of an entry');
    }
  }

  private header(h: Buffer, out: TarEvent[]): void {
    if (isZero(h)) {
      if (this.meta !== null || Object.keys(this.next).length > 0) throw badArchive('it ends after an extended header');
      this.ended = true;
      return;
    }
    if (checksum(h) !== readNumber(h, 148, 8)) throw badArchive('a header checksum does not match');
    const typeflag = String.fromCharCode(h[156]);
    let size = readNumber(h, 124, 12);
    if (typeflag === 'L' || typeflag === 'K' || typeflag === 'x' || typeflag === 'g') {
      if (size > MAX_META) throw badArchive(`an extended header of ${size} bytes is too large`);
      this.meta = { type: typeflag, parts: [], size };
      this.startData(size, out);
      return;
    }

    let name = cstring(h, 0, 100);
    const magic = h.toString('latin1', 257, 263);
    if (magic === 'ustar\0') {
      const prefix = cstring(h, 345, 155);
      if (prefix !== '') name = `${prefix}/${name}`;
    }
    let linkname = cstring(h, 157, 100);
    if (this.next.name !== undefined) name = this.next.name;
    if (this.next.linkname !== undefined) linkname = this.next.linkname;
    if (this.next.size !== undefined) size = this.next.size;
    this.next = {};

    const header: TarHeader = { name, type: TYPES[typeflag] ?? `unknown-${typeflag}`, size, linkname, mode: readNumber(h, 100, 8) };
    out.push({ kind: 'entry', header });
    this.inEntry = true;
    this.startData(size, out);
  }

  private startData(size: number, out: TarEvent[]): void {
    this.dataLeft = size;
    this.padLeft = (BLOCK - (size % BLOCK)) % BLOCK;
    if (size === 0) this.finishEntry(out);
  }

  private finishEntry(out: TarEvent[]): void {
    const meta = this.meta;
    if (meta === null) {
      this.inEntry = false;
      out.push({ kind: 'entryEnd' });
      return;
    }
    this.meta = null;
    const text = Buffer.concat(meta.parts, meta.size);
    if (meta.type === 'L') this.next.name = cstring(text, 0, text.length);
    else if (meta.type === 'K') this.next.linkname = cstring(text, 0, text.length);
    else if (meta.type === 'x') Object.assign(this.next, paxRecords(text));
  }
}

/** The fields of a pax extended header that matter here: path, linkpath, size. */
function paxRecords(text: Buffer): { name?: string; linkname?: string; size?: number } {
  const out: { name?: string; linkname?: string; size?: number } = {};
  for (let offset = 0; offset < text.length; ) {
    // "<length> <key>=<value>\n", length counting the whole record.
    const space = text.indexOf(0x20, offset);
    const length = space === -1 ? NaN : Number(text.toString('latin1', offset, space));
    if (!Number.isInteger(length) || length <= space - offset + 1 || offset + length > text.length || text[offset + length - 1] !== 0x0a) {
      throw badArchive('a pax extended header is malformed');
    }
    const record = text.toString('utf8', space + 1, offset + length - 1);
    const eq = record.indexOf('=');
    const key = record.slice(0, eq);
    const value = record.slice(eq + 1);
    if (key === 'path') out.name = value;
    else if (key === 'linkpath') out.linkname = value;
    else if (key === 'size') {
      if (!/^\d+$/.test(value)) throw badArchive(`a pax size ${JSON.stringify(value)} is not a number`);
      out.size = Number(value);
    }
    offset += length;
  }
  return out;
}

/** A numeric header field: octal digits (leading spaces allowed), or GNU base-256 when the first byte has its high bit set. */
function readNumber(h: Buffer, offset: number, length: number): number {
  if (h[offset] & 0x80) {
    let v = h[offset] & 0x7f;
    for (let i = 1; i < length; i++) v = v * 256 + h[offset + i];
    if (!Number.isSafeInteger(v)) throw badArchive('a header number is too large');
    return v;
  }
  let i = offset;
  const end = offset + length;
  while (i < end && h[i] === 0x20) i++;
  let v = 0;
  for (; i < end && h[i] >= 0x30 && h[i] <= 0x37; i++) v = v * 8 + (h[i] - 0x30);
  return v;
}

/** Sum of the header bytes with the checksum field counted as spaces. */
function checksum(h: Buffer): number {
  let sum = 8 * 0x20;
  for (let i = 0; i < 148; i++) sum += h[i];
  for (let i = 156; i < BLOCK; i++) sum += h[i];
  return sum;
}

function isZero(h: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (h[i] !== 0) return false;
  return true;
}

function cstring(buf: Buffer, offset: number, length: number): string {
  const nul = buf.indexOf(0, offset);
  const end = nul === -1 || nul > offset + length ? offset + length : nul;
  return buf.toString('utf8', offset, end);
}

function badArchive(why: string): PgmError {
  return new PgmError('clone.failed', `The backup archive cannot be read: ${why}.`, {
    hint: 'The source server sent a damaged or unexpected archive; check its version and retry the clone.',
    data: { why },
  });
}
