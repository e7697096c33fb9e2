import fs from 'node:fs';
import pg from 'pg';
import type { TestCluster } from './cluster.js';

/** Adds or replaces the `ha:` section of a test cluster's config. */
export function setHa(c: TestCluster, lines: string[]): void {
  const text = fs.readFileSync(c.file, 'utf8').replace(/\nha:\n(  .*\n)*/, '\n');
  fs.writeFileSync(c.file, text.replace('\nnodes:\n', `\nha:\n${lines.map((l) => `  ${l}`).join('\n')}\n\nnodes:\n`));
}

/**
 * Writes through the endpoint in a loop, each insert in its own connection
 * and transaction, counting the acknowledged ones (their ids) and the errors.
 */
export class Writer {
  readonly acked: number[] = [];
  errors = 0;
  firstErrorAt: number | null = null;
  lastAckAt = 0;
  private stopped = false;
  private done: Promise<void> | null = null;

  constructor(
    private readonly port: number,
    private readonly password: string,
  ) {}

  start(): this {
    this.done = (async () => {
      let id = 1;
      while (!this.stopped) {
        const c = new pg.Client({ host: '127.0.0.1', port: this.port, user: 'postgres', password: this.password, database: 'postgres', connectionTimeoutMillis: 15_000 });
        c.on('error', () => undefined);
        try {
          await c.connect();
          await c.query('INSERT INTO acked VALUES ($1)', [id]);
          this.acked.push(id);
          this.lastAckAt = Date.now();
        } catch {
          this.errors++;
          this.firstErrorAt ??= Date.now();
          await new Promise((r) => setTimeout(r, 50));
        } finally {
          await c.end().catch(() => undefined);
        }
        id++;
      }
    })();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}
