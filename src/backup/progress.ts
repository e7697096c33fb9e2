import { formatBytes } from '../util/format.js';

/**
 * Progress of a long copy: a redrawn bar with bytes, rate and ETA on a
 * terminal; on anything else a plain line at most every 10 %, so logs stay short.
 */
export class Progress {
  private readonly started = Date.now();
  private lastDraw = 0;
  private lastDecile = -1;
  private readonly tty: boolean;

  constructor(
    private readonly label: string,
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly quiet = false,
  ) {
    this.tty = Boolean(out.isTTY);
  }

  update(done: number, total: number | null): void {
    if (this.quiet) return;
    const now = Date.now();
    const secs = Math.max((now - this.started) / 1000, 0.001);
    const rate = done / secs;
    const frac = total && total > 0 ? Math.min(done / total, 1) : null;
    if (this.tty) {
      if (now - this.lastDraw < 200) return;
      this.lastDraw = now;
      const width = 24;
      const bar = frac === null ? '' : `[${'='.repeat(Math.round(frac * width)).padEnd(width)}] ${(frac * 100).toFixed(0).padStart(3)}% `;
      const eta = frac !== null && rate > 0 && total ? ` ETA ${Math.max(0, (total - done) / rate).toFixed(0)} s` : '';
      this.out.write(`\r${this.label} ${bar}${formatBytes(done)}${total ? `/${formatBytes(total)}` : ''} ${formatBytes(rate)}/s${eta}   `);
      return;
    }
    const decile = frac === null ? Math.floor(secs / 10) : Math.floor(frac * 10);
    if (decile > this.lastDecile) {
      this.lastDecile = decile;
      this.out.write(`${this.label}: ${formatBytes(done)}${total ? ` of ${formatBytes(total)}` : ''} at ${formatBytes(rate)}/s\n`);
    }
  }

  finish(done: number): void {
    if (this.quiet) return;
    const secs = (Date.now() - this.started) / 1000;
    this.out.write(`${this.tty ? '\r' : ''}${this.label}: ${formatBytes(done)} in ${secs.toFixed(1)} s (${formatBytes(done / Math.max(secs, 0.001))}/s)${this.tty ? '            ' : ''}\n`);
  }
}
