/** Bytes for humans: 512 B, 16 MiB, 38.6 MiB, 1.20 GiB. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${Math.round(n)} B`;
  const fixed = (x: number, digits: number) => (Number.isInteger(x) ? String(x) : x.toFixed(digits));
  if (n < 1 << 30) return `${fixed(n / (1 << 20), 1)} MiB`;
  return `${fixed(n / (1 << 30), 2)} GiB`;
}
