/**
 * A WAL position. PostgreSQL prints it as two hex halves `X/Y`; we hold it as a
 * bigint so arithmetic (lag in bytes, segment numbers) is exact.
 */
export type Lsn = bigint;

export const INVALID_LSN: Lsn = 0n;

export function parseLsn(text: string): Lsn {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  if (!m) throw new Error(`not a WAL position: ${JSON.stringify(text)}`);
  return (BigInt('0x' + m[1]) << 32n) | BigInt('0x' + m[2]);
}

export function formatLsn(lsn: Lsn): string {
  const hi = (lsn >> 32n) & 0xffffffffn;
  const lo = lsn & 0xffffffffn;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}

/** Bytes from `b` to `a` (a - b), never negative. */
export function lsnDiff(a: Lsn, b: Lsn): bigint {
  return a > b ? a - b : 0n;
}

/** WAL file name for the segment holding `lsn` on timeline `tli`. */
export function walFileName(tli: number, lsn: Lsn, segmentSize: number): string {
  const seg = lsn / BigInt(segmentSize);
  const perXlogId = 0x100000000n / BigInt(segmentSize);
  const hex = (n: bigint | number) => n.toString(16).toUpperCase().padStart(8, '0');
  return hex(tli) + hex(seg / perXlogId) + hex(seg % perXlogId);
}
